"""``config.pbtxt`` parsing, merging with what the model file declares, and back to the proto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from luminary.errors import InvalidArgumentError
from luminary.serving._config import DEFAULT_MAX_BATCH_SIZE, build_spec, read_config, to_proto
from luminary.serving._proto import model_config_pb2 as mc
from luminary.serving._types import QueuePolicy, TensorConfig

TRITON_CONFIG = """
name: "jet_tagger"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [
  {
    name: "constituents"
    data_type: TYPE_FP32
    dims: [ 30, 10 ]
  }
]
output [
  {
    name: "probabilities"
    data_type: TYPE_FP32
    dims: [ 5 ]
    label_filename: "labels.txt"
  }
]
dynamic_batching {
  preferred_batch_size: [ 16, 32 ]
  max_queue_delay_microseconds: 200
  priority_levels: 2
  default_priority_level: 2
  default_queue_policy {
    timeout_action: REJECT
    default_timeout_microseconds: 50000
    allow_timeout_override: true
    max_queue_size: 128
  }
}
instance_group [ { count: 2, kind: KIND_CPU } ]
parameters { key: "intra_op_thread_count" value: { string_value: "3" } }
optimization {
  execution_accelerators {
    cpu_execution_accelerator: [ { name: "openvino" } ]
  }
  input_pinned_memory { enable: true }
}
model_warmup [
  {
    name: "zeros"
    batch_size: 1
    inputs { key: "constituents" value: { data_type: TYPE_FP32 dims: [ 30, 10 ] zero_data: true } }
  }
]
response_cache { enable: true }
version_labels: [ 1, 2 ]
"""

DECLARED_IN = (TensorConfig("constituents", "FP32", (-1, 30, 10)),)
DECLARED_OUT = (TensorConfig("probabilities", "FP32", (-1, 5)),)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jet_tagger" / "config.pbtxt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def spec_from(config: Any, inputs: Any = DECLARED_IN, outputs: Any = DECLARED_OUT) -> Any:
    return build_spec("jet_tagger", "1", "onnxruntime", "onnxruntime_onnx", inputs, outputs, config)


def test_a_triton_config_parses_with_unknown_fields_skipped(tmp_path: Path) -> None:
    config = read_config(write(tmp_path, TRITON_CONFIG))
    assert config.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("constituents", mc.TYPE_FP32, [30, 10])
    ]
    assert [(o.name, list(o.dims)) for o in config.output] == [("probabilities", [5])]
    db = config.dynamic_batching
    assert list(db.preferred_batch_size) == [16, 32]
    assert db.max_queue_delay_microseconds == 200
    assert db.priority_levels == 2
    assert db.default_queue_policy.max_queue_size == 128
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert config.parameters["intra_op_thread_count"].string_value == "3"


def test_the_spec_takes_batching_instances_and_threads_from_the_config(tmp_path: Path) -> None:
    spec = spec_from(read_config(write(tmp_path, TRITON_CONFIG)))
    assert spec.max_batch_size == 64
    assert spec.batched
    assert spec.inputs == (TensorConfig("constituents", "FP32", (30, 10)),)
    assert spec.outputs == (TensorConfig("probabilities", "FP32", (5,)),)
    b = spec.batching
    assert b.enabled
    assert b.preferred_batch_sizes == (16, 32)
    assert b.max_queue_delay_us == 200
    assert (b.priority_levels, b.default_priority) == (2, 2)
    assert b.queue == QueuePolicy(
        timeout_us=50_000, allow_timeout_override=True, max_queue_size=128
    )
    assert (spec.instances, spec.kind) == (2, "KIND_CPU")
    assert spec.intra_op_threads == 3


@pytest.mark.parametrize(
    "block",
    [
        'model_warmup [ { name: "zeros" batch_size: 1 } ]',
        "sequence_batching { max_sequence_idle_microseconds: 5000000 control_input [ "
        '{ name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] }'
        " ] }",
        'ensemble_scheduling { step [ { model_name: "a" input_map { key: "x" value: "y" } } ] }',
        'label_filename: "odd [name].txt"  # a comment with a [ bracket',
    ],
)
def test_unknown_triton_blocks_are_skipped(tmp_path: Path, block: str) -> None:
    config = read_config(write(tmp_path, f'max_batch_size: 4\n{block}\ninput [ {{ name: "x" }} ]'))
    assert config.max_batch_size == 4
    assert [i.name for i in config.input] == ["x"]


def test_a_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'name: "jet_tagger"\nmax_batch_size: 8\ninput [ { name: "x" dims: [ 4 }\n'
    )
    with pytest.raises(InvalidArgumentError) as info:
        read_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 3:")


def test_an_unreadable_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.pbtxt"
    path.write_bytes(b"name: \xff\xfe")
    with pytest.raises(InvalidArgumentError, match=f"cannot read {path}"):
        read_config(path)


def test_without_a_config_a_free_first_dimension_batches_by_default() -> None:
    spec = spec_from(None)
    assert spec.max_batch_size == DEFAULT_MAX_BATCH_SIZE
    assert spec.inputs == (TensorConfig("constituents", "FP32", (30, 10)),)
    assert spec.batching.enabled
    fixed = spec_from(
        None, (TensorConfig("x", "FP32", (4, 16)),), (TensorConfig("y", "FP32", (4,)),)
    )
    assert fixed.max_batch_size == 0
    assert not fixed.batched
    assert fixed.inputs == (TensorConfig("x", "FP32", (4, 16)),)


def test_a_datatype_that_disagrees_with_the_file_is_refused(tmp_path: Path) -> None:
    text = (
        'max_batch_size: 8\ninput [ { name: "constituents" data_type: TYPE_FP16 dims: [30, 10] } ]'
    )
    with pytest.raises(InvalidArgumentError) as info:
        spec_from(read_config(write(tmp_path, text)))
    message = str(info.value)
    assert "'constituents'" in message
    assert "config.pbtxt says FP16, the model file FP32" in message


def test_a_configured_input_missing_from_the_file_lists_the_file_inputs(tmp_path: Path) -> None:
    inputs = (*DECLARED_IN, TensorConfig("mask", "BOOL", (-1, 30)))
    text = 'max_batch_size: 8\ninput [ { name: "jets" data_type: TYPE_FP32 dims: [30, 10] } ]'
    with pytest.raises(InvalidArgumentError) as info:
        spec_from(read_config(write(tmp_path, text)), inputs)
    message = str(info.value)
    assert "input 'jets' in config.pbtxt is not in the model file" in message
    assert "the file has constituents, mask" in message


def test_max_batch_size_on_a_model_without_a_free_first_dimension_is_refused(
    tmp_path: Path,
) -> None:
    config = read_config(write(tmp_path, "max_batch_size: 8"))
    with pytest.raises(InvalidArgumentError) as info:
        spec_from(config, (TensorConfig("x", "FP32", (4, 16)),), (TensorConfig("y", "FP32", (4,)),))
    message = str(info.value)
    assert "max_batch_size 8" in message
    assert "set max_batch_size: 0" in message


@pytest.mark.parametrize("value", ["0", "two", ""])
def test_a_bad_thread_count_parameter_is_refused(tmp_path: Path, value: str) -> None:
    text = f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{value}" }} }}'
    with pytest.raises(
        InvalidArgumentError, match=f"intra_op_thread_count must be .* not '{value}'"
    ):
        spec_from(read_config(write(tmp_path, text)))


def test_an_empty_dynamic_batching_block_turns_batching_on_without_delay(tmp_path: Path) -> None:
    spec = spec_from(read_config(write(tmp_path, "max_batch_size: 16\ndynamic_batching { }")))
    assert spec.max_batch_size == 16
    assert spec.batching.enabled
    assert spec.batching.max_queue_delay_us == 0
    assert spec.batching.queue.allow_timeout_override


def test_to_proto_round_trips_the_key_fields(tmp_path: Path) -> None:
    spec = spec_from(read_config(write(tmp_path, TRITON_CONFIG)))
    proto = to_proto(spec, {"origin": "jet-tagger@production"})
    assert proto.name == "jet_tagger"
    assert proto.platform == "onnxruntime_onnx"
    assert proto.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in proto.input] == [
        ("constituents", mc.TYPE_FP32, [30, 10])
    ]
    assert list(proto.dynamic_batching.preferred_batch_size) == [16, 32]
    assert proto.dynamic_batching.default_queue_policy.max_queue_size == 128
    assert (proto.instance_group[0].count, proto.instance_group[0].kind) == (
        2,
        mc.ModelInstanceGroup.KIND_CPU,
    )
    assert proto.parameters["origin"].string_value == "jet-tagger@production"
    # the message, read back as a config.pbtxt, gives the same spec
    again = spec_from(mc.ModelConfig.FromString(proto.SerializeToString()))
    assert again == spec

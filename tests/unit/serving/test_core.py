"""Request checks against a model spec, decoding without copies, and the core's parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luminary.serving._core import Core, InputTensor, check, check_outputs, decode
from luminary.serving._errors import InvalidInputError
from luminary.serving._repository import FolderSource, ModelRepository
from luminary.serving._types import BatchingConfig, ModelSpec, QueuePolicy, TensorConfig


def model(
    inputs: tuple[TensorConfig, ...] = (TensorConfig("x", "FP32", (16,)),),
    max_batch: int = 8,
) -> ModelSpec:
    return ModelSpec(
        name="tagger",
        version="1",
        platform="onnxruntime_onnx",
        backend="onnxruntime",
        max_batch_size=max_batch,
        inputs=inputs,
        outputs=(TensorConfig("probabilities", "FP32", (5,)),),
        batching=BatchingConfig(enabled=max_batch > 0),
    )


TWO_INPUTS = (TensorConfig("jets", "FP32", (20, 4)), TensorConfig("mask", "BOOL", (20,)))


def fp32(shape: tuple[int, ...], data: Any = None, name: str = "x") -> InputTensor:
    if data is None:
        data = np.arange(int(np.prod(shape)), dtype="<f4").tobytes()
    return InputTensor(name, "FP32", shape, data)


def refused(spec: ModelSpec, *tensors: InputTensor) -> str:
    with pytest.raises(InvalidInputError) as info:
        check(spec, tensors)
    return str(info.value)


def test_a_valid_request_gives_feeds_and_its_event_count() -> None:
    feeds, events = check(model(), [fp32((3, 16))])
    assert events == 3
    assert feeds["x"].shape == (3, 16)
    assert feeds["x"].dtype == np.float32
    assert feeds["x"][2, 15] == 47.0


def test_an_unknown_input_name_lists_the_model_inputs() -> None:
    message = refused(model(TWO_INPUTS), fp32((1, 20, 4), name="constituents"))
    assert "'constituents'" in message
    assert "its inputs are 'jets', 'mask'" in message


def test_a_wrong_datatype_names_sent_and_expected() -> None:
    tensor = InputTensor("x", "FP64", (1, 16), bytes(128))
    message = refused(model(), tensor)
    assert "datatype FP64 sent" in message
    assert "expects FP32" in message


@pytest.mark.parametrize("shape", [(16,), (1, 1, 16), (2, 15)])
def test_a_wrong_rank_or_event_shape_is_refused_with_the_expected_shape(
    shape: tuple[int, ...],
) -> None:
    message = refused(model(), fp32(shape))
    assert f"shape {list(shape)} sent" in message
    assert "[-1, 16]" in message


def test_a_fixed_shape_model_takes_exactly_its_shape() -> None:
    spec = model((TensorConfig("x", "FP32", (4, 16)),), max_batch=0)
    feeds, events = check(spec, [fp32((4, 16))])
    assert (feeds["x"].shape, events) == ((4, 16), 1)
    assert "expects [4, 16]" in refused(spec, fp32((1, 4, 16)))


@pytest.mark.parametrize("events", [0, 9])
def test_a_batch_outside_one_to_max_batch_size_is_refused(events: int) -> None:
    message = refused(model(), fp32((events, 16)))
    assert f"batch of {events} events" in message
    assert "takes 1 to 8" in message


def test_a_body_of_the_wrong_size_names_bytes_sent_and_needed() -> None:
    message = refused(model(), fp32((2, 16), data=bytes(100)))
    assert "100 bytes of data" in message
    assert "needs 128" in message


def test_list_data_of_the_wrong_length_is_refused() -> None:
    message = refused(model(), fp32((2, 16), data=[0.0] * 31))
    assert "31 values of data" in message
    assert "needs 32" in message


def test_a_gigantic_declared_shape_is_refused_before_allocating() -> None:
    data: Any
    for data in (b"", [], memoryview(b"\0" * 64)):
        with pytest.raises(InvalidInputError, match="over the limit"):
            decode(InputTensor("x", "FP32", (2**40, 16), data))
    free = model((TensorConfig("x", "FP32", (-1, -1)),), max_batch=0)
    assert "over the limit" in refused(free, fp32((2**40, 16), data=b""))
    # a batched model refuses it on the batch size first
    assert "batch of 1099511627776 events" in refused(model(), fp32((2**40, 16), data=b""))


def test_negative_dimensions_are_refused_even_when_their_product_fits_the_data() -> None:
    free = model((TensorConfig("x", "FP32", (-1, -1)),), max_batch=0)
    message = refused(free, fp32((-2, -8), data=bytes(64)))
    assert "negative dimension" in message
    assert "batch of -1 events" in refused(model(), fp32((-1, 16), data=bytes(64)))


def test_inputs_that_disagree_on_the_batch_size_are_refused() -> None:
    jets = InputTensor("jets", "FP32", (2, 20, 4), bytes(2 * 80 * 4))
    mask = InputTensor("mask", "BOOL", (3, 20), bytes(60))
    assert "disagree on the batch size (2 and 3 events)" in refused(model(TWO_INPUTS), jets, mask)


def test_a_missing_input_is_named() -> None:
    jets = InputTensor("jets", "FP32", (2, 20, 4), bytes(2 * 80 * 4))
    assert "needs input(s) 'mask'" in refused(model(TWO_INPUTS), jets)


def test_an_input_given_twice_is_refused() -> None:
    assert "given twice" in refused(model(), fp32((1, 16)), fp32((1, 16)))


def test_an_unknown_output_name_lists_the_model_outputs() -> None:
    check_outputs(model(), ["probabilities"])
    with pytest.raises(
        InvalidInputError, match="no output 'probs'; its outputs are 'probabilities'"
    ):
        check_outputs(model(), ["probs"])


def test_an_unsupported_datatype_lists_the_supported_ones() -> None:
    with pytest.raises(InvalidInputError, match="'BYTES' is not supported; use one of BOOL"):
        decode(InputTensor("x", "BYTES", (1,), b"a"))


def test_raw_bytes_decode_to_a_view_without_a_copy() -> None:
    body = bytearray(8) + bytearray(np.arange(32, dtype="<f4").tobytes()) + bytearray(4)
    window = memoryview(body)[8:136]
    array = decode(InputTensor("x", "FP32", (2, 16), window))
    assert np.shares_memory(array, np.frombuffer(body, dtype=np.uint8))
    assert array[1, 0] == 16.0
    body[8:12] = np.float32(-7.0).tobytes()
    assert array[0, 0] == -7.0  # the same memory
    raw = np.arange(16, dtype="<f4").tobytes()
    assert np.shares_memory(
        decode(InputTensor("x", "FP32", (1, 16), raw)), np.frombuffer(raw, np.uint8)
    )


def test_json_data_decodes_to_the_declared_dtype_and_shape() -> None:
    array = decode(InputTensor("m", "INT64", (2, 2), [[1, 2], [3, 4]]))
    assert array.dtype == np.dtype("<i8")
    assert array.tolist() == [[1, 2], [3, 4]]
    with pytest.raises(InvalidInputError, match="not a list of INT64 values"):
        decode(InputTensor("m", "INT64", (1,), ["one"]))


# -- the core: parameters and submission --------------------------------------------------


@pytest.fixture
def core(repository: ModelRepository, place: Callable[[str, Path], Path], tmp_path: Path) -> Core:
    repository.add(FolderSource(place("five", tmp_path / "models" / "mlp.onnx")))
    return Core(repository)


def x(events: int = 1) -> list[InputTensor]:
    return [fp32((events, 16))]


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"priority": -1}, "'priority' must be a whole number ≥ 0, not -1"),
        ({"priority": "high"}, "'priority' must be a whole number ≥ 0, not 'high'"),
        ({"priority": True}, "'priority' must be a whole number ≥ 0, not True"),
        ({"priority": 2}, "priority 2 is out of range; model 'mlp' has levels 1 to 1"),
        ({"timeout": -5}, "'timeout' must be a whole number ≥ 0, not -5"),
        ({"timeout": 1.5}, "'timeout' must be a whole number ≥ 0, not 1.5"),
    ],
)
def test_bad_priority_or_timeout_parameters_are_refused_and_counted_as_failures(
    core: Core, parameters: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidInputError) as info:
        core.prepare("mlp", "", x(), ["probabilities"], parameters)
    assert fragment in str(info.value)
    assert core.repository.get("mlp").stats.fail.count == 1


def test_a_bad_tensor_is_counted_as_a_failure_of_that_model(core: Core) -> None:
    with pytest.raises(InvalidInputError):
        core.prepare("mlp", "", [fp32((1, 15))], [], {})
    with pytest.raises(InvalidInputError):
        core.prepare("mlp", "", x(), ["nope"], {})
    assert core.repository.get("mlp").stats.fail.count == 2


def test_the_queue_policy_timeout_applies_unless_the_request_overrides_it(core: Core) -> None:
    loaded = core.repository.get("mlp")
    policy = QueuePolicy(timeout_us=5_000, allow_timeout_override=True)
    batching = dataclasses.replace(loaded.spec.batching, queue=policy)
    loaded.spec = dataclasses.replace(loaded.spec, batching=batching)
    _, default = core.prepare("mlp", "", x(), [], {})
    _, overridden = core.prepare("mlp", "", x(), [], {"timeout": 9_000})
    assert default.deadline_ns - default.enqueued_ns == 5_000_000
    assert overridden.deadline_ns - overridden.enqueued_ns == 9_000_000
    strict = dataclasses.replace(policy, allow_timeout_override=False)
    batching = dataclasses.replace(batching, queue=strict)
    loaded.spec = dataclasses.replace(loaded.spec, batching=batching)
    _, capped = core.prepare("mlp", "", x(), [], {"timeout": 9_000})
    assert capped.deadline_ns - capped.enqueued_ns == 5_000_000


def test_a_request_prepared_before_a_swap_runs_on_the_new_version(core: Core) -> None:
    loaded, pending = core.prepare("mlp", "", x(2), ["probabilities"], {})
    core.repository.load("mlp", force=True)
    ran_on = core.submit(loaded, pending)
    assert ran_on is not loaded
    assert ran_on is core.repository.get("mlp")
    assert pending.wait(5.0)
    assert pending.error is None
    assert pending.result is not None
    assert pending.result["probabilities"].shape == (2, 5)

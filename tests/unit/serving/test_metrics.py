"""Prometheus text with Triton's metric names, and the merge of several workers' texts."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from luminary.serving._batcher import Pending
from luminary.serving._core import Core, InputTensor
from luminary.serving._errors import InvalidInputError
from luminary.serving._metrics import BATCH_BUCKETS, render
from luminary.serving._repository import ModelRepository
from luminary.serving._workers import merge_metrics

LABELS = '{model="mlp",version="1"}'


def run(repository: ModelRepository, events: int) -> None:
    p = Pending({"x": np.ones((events, 16), np.float32)}, events)
    repository.get("mlp").batcher.submit(p)
    assert p.wait(5.0)
    assert p.error is None


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value, for every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


@pytest.fixture
def served(
    repository: ModelRepository, place: Callable[[str, Path], Path], tmp_path: Path
) -> ModelRepository:
    place("five", tmp_path / "models" / "mlp.onnx")
    (tmp_path / "models" / "broken.onnx").write_bytes(b"garbage")
    repository.add_folder(tmp_path / "models")
    for events in (1, 3, 3, 6):  # one request at a time: four batches
        run(repository, events)
    with pytest.raises(InvalidInputError):
        Core(repository).prepare("mlp", "", [InputTensor("x", "FP32", (1, 2), b"")], [], {})
    return repository


def test_counters_have_triton_names_and_values(served: ModelRepository) -> None:
    text = render(served)
    assert "_total" not in text
    values = samples(text)
    assert values[f"nv_inference_request_success{LABELS}"] == 4
    assert values[f"nv_inference_request_failure{LABELS}"] == 1
    assert values[f"nv_inference_count{LABELS}"] == 13
    assert values[f"nv_inference_exec_count{LABELS}"] == 4
    assert values[f"nv_inference_pending_request_count{LABELS}"] == 0
    for name in (
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
    ):
        assert f"# TYPE {name} counter" in text
        assert values[f"{name}{LABELS}"] >= 0
    assert values[f"nv_inference_compute_infer_duration_us{LABELS}"] > 0
    assert (
        values[f"nv_inference_request_duration_us{LABELS}"]
        >= values[f"nv_inference_compute_infer_duration_us{LABELS}"]
    )
    assert "# TYPE nv_inference_count counter" in text
    assert values['luminary_model_ready{model="mlp"}'] == 1
    assert values['luminary_model_ready{model="broken"}'] == 0
    assert not any('model="broken",version' in key for key in values)


def test_the_batch_size_histogram_has_cumulative_buckets(served: ModelRepository) -> None:
    text = render(served)
    assert "# TYPE luminary_inference_batch_size histogram" in text
    values = samples(text)
    bucket = 'luminary_inference_batch_size_bucket{{model="mlp",version="1",le="{}"}}'
    got = [values[bucket.format(b)] for b in BATCH_BUCKETS]
    # batches of 1, 3, 3 and 6 events
    expected = {1: 1, 2: 1, 4: 3, 8: 4}
    assert got == [expected.get(b, 4) for b in BATCH_BUCKETS]
    assert got == sorted(got)
    assert values[bucket.format("+Inf")] == 4
    assert values[f"luminary_inference_batch_size_count{LABELS}"] == 4
    assert values[f"luminary_inference_batch_size_sum{LABELS}"] == 13


def test_label_values_are_escaped(
    repository: ModelRepository, place: Callable[[str, Path], Path], tmp_path: Path
) -> None:
    place("five", tmp_path / "models" / 'odd"na\\me.onnx')
    repository.add_folder(tmp_path / "models")
    assert 'luminary_model_ready{model="odd\\"na\\\\me"} 1' in render(repository)


def test_merged_worker_texts_keep_one_header_per_family_and_label_each_worker(
    served: ModelRepository,
) -> None:
    one = render(served)
    run(served, 2)
    two = render(served) + "# HELP up Whether the worker answers\n# TYPE up gauge\nup 1\n"
    merged = merge_metrics([one, two])
    for family in ("nv_inference_request_success", "luminary_inference_batch_size", "up"):
        assert merged.count(f"# HELP {family} ") == 1
        assert merged.count(f"# TYPE {family} ") == 1
    values = samples(merged)
    assert values['nv_inference_request_success{worker="0",model="mlp",version="1"}'] == 4
    assert values['nv_inference_request_success{worker="1",model="mlp",version="1"}'] == 5
    assert values['up{worker="1"}'] == 1
    assert (
        values['luminary_inference_batch_size_bucket{worker="1",model="mlp",version="1",le="2"}']
        == 2
    )
    # each family's samples follow its own header, worker 0's before worker 1's
    lines = merged.splitlines()
    start = lines.index("# TYPE nv_inference_count counter")
    block = lines[start + 1 : start + 3]
    assert [re.sub(r" \d+$", "", line) for line in block] == [
        'nv_inference_count{worker="0",model="mlp",version="1"}',
        'nv_inference_count{worker="1",model="mlp",version="1"}',
    ]


def test_energy_is_exported_per_device_and_attributed_per_event(served: ModelRepository) -> None:
    from luminary.energy import DeviceEnergy, EnergyReport

    cpu = DeviceEnergy("cpu", 26.0, 13.0, "estimate", True, "3.2 W per logical CPU")
    text = render(served, EnergyReport(2.0, (cpu,), 1.0, 0))
    values = samples(text)
    assert values['luminary_energy_joules_total{device="cpu",source="estimate"}'] == 26.0
    tagged = '{model="mlp",version="1",source="estimate"}'
    # the only model that ran gets all of it: 26 J over its 13 events
    assert values[f"luminary_inference_energy_joules_total{tagged}"] == 26.0
    assert values[f"luminary_inference_joules_per_event{tagged}"] == 2.0
    assert "luminary_energy" not in render(served)  # without a report, no energy families

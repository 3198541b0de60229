"""Job specs, resources, pools and quotas refuse bad input by name, value and what is valid."""

from __future__ import annotations

import pytest

from luminary.compute import JobSpec, Pool, Quota, Resources, parse_duration, parse_memory
from luminary.errors import InvalidArgumentError


def test_a_yaml_spec_round_trips_and_accepts_sizes_and_durations() -> None:
    spec = JobSpec.from_dict(
        {
            "project": "cms-btag",
            "command": "python train.py --lr 1e-3",
            "gpus": 0.5,
            "memory": "16G",
            "gpu_memory": "20Gi",
            "time_limit": "1:30:00",
            "nodes": 2,
            "inputs": ["demo-jets@1"],
            "env": {"SEED": 7},
        }
    )
    assert spec.command == ("python", "train.py", "--lr", "1e-3")
    assert spec.resources == Resources(gpus=0.5, gpu_memory_mb=20_480, memory_mb=16_384)
    assert spec.time_limit_s == 5400
    assert spec.env == {"SEED": "7"}
    assert spec.gang
    assert JobSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("gpus", -1, "gpus=-1 is not valid"),
        ("gpus", 1.5, "whole GPUs"),
        ("gpus", 1e9, "from 0 to 100000"),
        ("gpus", float("nan"), "give a number"),
        ("gpus", "lots", "give a number"),
        ("gpus", True, "give a number"),
        ("cpus", 10**12, "from 0 to 100000"),
        ("memory", "16X", "units are M, G or T"),
        ("memory", "9999999T", "1 PiB"),
        ("time_limit", 0, "more than 0 seconds"),
        ("time_limit", "2 weeks", "units are s, m, h or d"),
        ("time_limit", "400d", "at most a year"),
        ("nodes", 0, "from 1"),
        ("nodes", 1.5, "whole number"),
        ("priority", 10**9, "-1000000 to 1000000"),
        ("retries", 101, "0 to 100"),
        ("grace", 7200, "0 to 3600 seconds"),
        ("inputs", ["demo-jets"], "name@version"),
        ("inputs", "demo-jets@1", "list of strings"),
        ("env", {"A": None}, "string values"),
        ("gpu", 1, "did you mean 'gpus'"),
    ],
)
def test_bad_fields_are_refused_by_name(field: str, value: object, says: str) -> None:
    with pytest.raises(InvalidArgumentError, match=None) as caught:
        JobSpec.from_dict({"project": "cms-btag", "command": ["true"], field: value})
    assert says in str(caught.value)


def test_a_spec_runs_exactly_one_of_a_command_and_a_call() -> None:
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        JobSpec("cms-btag")
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        JobSpec("cms-btag", command=("true",), function="0" * 64)
    with pytest.raises(InvalidArgumentError, match="digest of a stored call"):
        JobSpec("cms-btag", function="../../etc/passwd")


def test_hostile_names_are_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        JobSpec("../etc", command=("true",))
    for name in ("pool with spaces", "../agents", "a/b", "x" * 201, ""):
        with pytest.raises(InvalidArgumentError, match="pool name"):
            Pool(name)
    with pytest.raises(InvalidArgumentError, match="cohort name"):
        Quota("cms-btag", cohort="lhc/../x")
    with pytest.raises(InvalidArgumentError, match="executors are local, ray, slurm"):
        Pool("gpu", executor="kubernetes")
    with pytest.raises(InvalidArgumentError):
        JobSpec.from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        JobSpec("cms-btag", command=("true",), name="x" * 257)


def test_a_pool_says_why_a_spec_can_never_run_there() -> None:
    pool = Pool("gpu", nodes=2, gpus=4, gpu_memory_mb=40_960, cpus=16, memory_mb=64_000)
    ok = JobSpec("p", command=("true",), resources=Resources(gpus=4, cpus=8), nodes=2)
    assert pool.fits(ok) is None
    big = ok.with_(nodes=3)
    assert pool.fits(big) == "3 nodes asked, pool 'gpu' has 2"
    hungry = ok.with_(resources=Resources(gpu_memory_mb="80G"))
    assert pool.fits(hungry) == "81920 MiB GPU memory asked, pool 'gpu' has 40960 MiB per device"
    one = ok.with_(nodes=1)
    assert Pool("cpu").fits(one) == "4 GPUs per node asked, pool 'cpu' has 0 per node"


def test_quotas_check_their_numbers() -> None:
    assert Quota("cms-btag", gpus=2, weight=2, cohort="lhc").to_dict()["cohort"] == "lhc"
    with pytest.raises(InvalidArgumentError, match="positive weight"):
        Quota("cms-btag", weight=0)
    with pytest.raises(InvalidArgumentError, match="borrow_gpus"):
        Quota("cms-btag", borrow_gpus=-1)


def test_sizes_and_durations() -> None:
    assert parse_memory("512M") == 512
    assert parse_memory("1.5GiB") == 1536
    assert parse_memory(2048) == 2048
    assert parse_duration("90s") == 90
    assert parse_duration("2h") == 7200
    assert parse_duration("05:00") == 300

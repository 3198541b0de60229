"""The Slurm executor against a real Slurm cluster (two slurmd on this machine, four logical
GPUs and sixteen shards per node): jobs run with their environment, Slurm hands out GPUs,
poll follows a job to its end, kill and time limits stop jobs, arrays run each command once,
gangs get one rank per node, and what the cluster cannot run is refused."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from luminary.compute._slurm import GONE, SlurmExecutor
from luminary.compute.models import Job, JobSpec, JobState, Resources
from luminary.errors import BackendUnavailableError
from luminary.testing.slurm import SlurmCluster

WAIT_S = 120.0  # generous: a shared machine may be slow; only a hang should exceed it


def _job(job_id: str, **spec: object) -> Job:
    return Job(
        id=job_id,
        run_id=f"run-{job_id}",
        spec=JobSpec(project="slurm-tests", command=("true",), **spec),  # type: ignore[arg-type]
        state=JobState.STARTING,
        user=None,
        submitted_ms=0,
        attempt=1,
    )


def _wait(executor: SlurmExecutor, ref: str, timeout_s: float = WAIT_S) -> str:
    """The reason ``ref`` ended, polling until it has."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reason = executor.poll([ref])[ref]
        if reason is not None:
            return reason
        time.sleep(0.2)
    pytest.fail(f"Slurm job {ref} still live after {timeout_s:g} s")


def _wait_for_file(path: Path, timeout_s: float = WAIT_S) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.1)
    pytest.fail(f"{path} was not written within {timeout_s:g} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def executor(slurm_cluster: SlurmCluster) -> SlurmExecutor:
    return SlurmExecutor(slurm_cluster.pool())


def test_a_job_runs_with_its_environment(executor: SlurmExecutor, tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    odd = "two words; $HOME 'quoted' \"double\""
    job = _job("envjob")
    ref = executor.launch(
        job,
        ["sh", "-c", f'printf "%s|%s|%s\\n" "$LUMINARY_JOB_ID" "$LUMINARY_RANK" "$ODD" > {out}'],
        {"LUMINARY_JOB_ID": job.id, "ODD": odd},
    )
    assert ref.isdigit()
    assert _wait(executor, ref) == "COMPLETED"
    assert out.read_text() == f"envjob|0|{odd}\n"


def test_poll_says_none_while_the_job_lives_then_why_it_ended(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    ref = executor.launch(
        _job("waits"), ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.1; done"], {}
    )
    assert executor.poll([ref]) == {ref: None}
    go.touch()
    assert _wait(executor, ref) == "COMPLETED"
    assert executor.poll([ref, "999999", "12;x"]) == {
        ref: "COMPLETED",
        "999999": GONE,
        "12;x": "'12;x' is not a Slurm job id",
    }


def test_slurm_gives_whole_gpus_through_cuda_visible_devices(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    out = tmp_path / "devices.txt"
    ref = executor.launch(
        _job("twogpus", resources=Resources(gpus=2)),
        ["sh", "-c", f'echo "$CUDA_VISIBLE_DEVICES" > {out}'],
        {"CUDA_VISIBLE_DEVICES": "0,1,2,3"},  # the submitter's devices are not the job's
    )
    assert _wait(executor, ref) == "COMPLETED"
    devices = out.read_text().strip().split(",")
    assert len(devices) == 2
    assert len(set(devices)) == 2
    assert set(devices) <= {"0", "1", "2", "3"}


def test_a_job_without_gpus_sees_none(executor: SlurmExecutor, tmp_path: Path) -> None:
    out = tmp_path / "devices.txt"
    ref = executor.launch(
        _job("nogpu"),
        ["sh", "-c", f'echo "[${{CUDA_VISIBLE_DEVICES-unset}}]" > {out}'],
        {"CUDA_VISIBLE_DEVICES": "0,1"},
    )
    assert _wait(executor, ref) == "COMPLETED"
    assert out.read_text() == "[]\n"


def test_a_fraction_takes_shards_or_one_whole_gpu(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    sharded = SlurmExecutor(slurm_cluster.pool(shards_per_gpu="4"))
    whole = SlurmExecutor(slurm_cluster.pool(shards_per_gpu="0"))
    go = tmp_path / "go"
    wait = ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.1; done"]
    half = Resources(gpus=0.5)
    refs = {
        "shard:2": sharded.launch(_job("half-shards", resources=half), wait, {}),
        "gpu:1": whole.launch(_job("half-whole", resources=half), wait, {}),
    }
    try:
        for gres, ref in refs.items():
            shown = slurm_cluster.run("scontrol", "show", "job", ref).stdout
            assert f"TresPerNode=gres:{gres}" in shown
    finally:
        go.touch()
    for ref in refs.values():
        assert _wait(sharded, ref) == "COMPLETED"


def test_a_failing_command_ends_failed(executor: SlurmExecutor) -> None:
    ref = executor.launch(_job("fails"), ["sh", "-c", "exit 3"], {})
    assert _wait(executor, ref) == "FAILED (NonZeroExitCode)"


def test_kill_cancels_a_sleeping_job_and_may_be_repeated(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    ref = executor.launch(_job("sleeps"), ["sh", "-c", f"echo up > {started}; sleep 600"], {})
    _wait_for_file(started)
    assert executor.poll([ref]) == {ref: None}
    executor.kill(ref)
    assert _wait(executor, ref) == "CANCELLED"
    executor.kill(ref)  # already gone: no error
    executor.kill("999999")  # never known: no error


@pytest.mark.slow
def test_the_time_limit_warns_with_sigterm_then_ends_the_job_with_timeout(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    # Slurm counts limits in whole minutes: limit + grace is one minute for both jobs.
    warned = tmp_path / "warned"
    heeds = executor.launch(
        _job("heeds", time_limit_s=30, grace_s=30),
        ["sh", "-c", f"trap 'echo warned > {warned}; exit 0' TERM; while :; do sleep 1; done"],
        {},
    )
    overruns = executor.launch(_job("overruns", time_limit_s=1, grace_s=0), ["sleep", "600"], {})
    # The warning comes before the limit: the job that stops on it ends completed.
    assert _wait(executor, heeds, timeout_s=240) == "COMPLETED"
    assert warned.read_text() == "warned\n"
    assert _wait(executor, overruns, timeout_s=240) == "TIMEOUT (TimeLimit)"


def test_an_array_runs_each_command_once_with_its_environment(
    executor: SlurmExecutor, tmp_path: Path
) -> None:
    jobs = [_job(f"arr{i}") for i in range(5)]
    refs = executor.launch_array(
        jobs,
        lambda job: ["sh", "-c", f'echo "$LUMINARY_JOB_ID $LUMINARY_RANK" > {tmp_path}/{job.id}'],
        lambda job: {"LUMINARY_JOB_ID": job.id},
    )
    array_id = refs[0].split("_")[0]
    assert refs == [f"{array_id}_{i}" for i in range(5)]
    for ref in refs:
        assert _wait(executor, ref) == "COMPLETED"
    assert sorted(p.name for p in tmp_path.iterdir()) == [j.id for j in jobs]
    for job in jobs:
        assert (tmp_path / job.id).read_text() == f"{job.id} 0\n"


def test_a_gang_gets_one_rank_per_node_and_one_master(
    executor: SlurmExecutor, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    line = '"$LUMINARY_RANK $SLURMD_NODENAME $MASTER_ADDR $MASTER_PORT"'
    ref = executor.launch(
        _job("gang", nodes=2, resources=Resources(gpus=1)),
        ["sh", "-c", f"echo {line} > {tmp_path}/rank-$LUMINARY_RANK"],
        {},
    )
    assert _wait(executor, ref) == "COMPLETED"
    ranks = {}
    for rank in ("0", "1"):
        got_rank, node, master, port = (tmp_path / f"rank-{rank}").read_text().split()
        ranks[got_rank] = (node, master, port)
    assert set(ranks) == {"0", "1"}
    assert {node for node, _, _ in ranks.values()} == set(slurm_cluster.nodes)
    assert {(master, port) for _, master, port in ranks.values()} == {
        (ranks["0"][0], ranks["0"][2])
    }
    assert ranks["0"][2].isdigit()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"resources": Resources(gpus=8)}, "Requested node configuration is not available"),
        ({"nodes": 3}, "Node count specification invalid"),
    ],
)
def test_a_request_the_cluster_cannot_run_is_refused(
    executor: SlurmExecutor, spec: dict[str, object], words: str
) -> None:
    with pytest.raises(BackendUnavailableError, match=words) as caught:
        executor.launch(_job("toobig", **spec), ["true"], {})
    assert "submitting job toobig" in str(caught.value)


def test_discover_reports_the_nodes_and_their_gpus(
    executor: SlurmExecutor, slurm_cluster: SlurmCluster
) -> None:
    pool = executor.discover()
    assert pool is not None
    assert (pool.name, pool.executor, pool.nodes, pool.gpus) == ("slurm", "slurm", 2, 4)
    assert pool.cpus == slurm_cluster.cpus
    assert pool.memory_mb == slurm_cluster.memory_mb
    assert pool.enabled
    assert pool.options == executor.pool.options


def test_a_controller_that_does_not_answer_is_reported_unavailable(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    conf = slurm_cluster.conf.read_text()
    port = re.search(r"^SlurmctldPort=(\d+)$", conf, re.MULTILINE)
    assert port is not None
    dead = tmp_path / "slurm.conf"
    dead.write_text(conf.replace(port.group(0), f"SlurmctldPort={_free_port()}"))
    executor = SlurmExecutor(slurm_cluster.pool(conf=str(dead)))
    with pytest.raises(BackendUnavailableError, match="Unable to contact slurm controller"):
        executor.launch(_job("unheard"), ["true"], {})
    assert executor.discover() is None

"""The Ray executor against a real two-node Ray cluster (2 logical GPUs, 2 CPUs per node).

Jobs here run small shell commands that write what they saw into files: their environment,
their rank and the id of the raylet that ran them (``RAY_RAYLET_PID`` differs per node).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from luminary._clock import now_ms
from luminary._ids import new_id
from luminary.compute._ray import RayExecutor
from luminary.compute.models import Job, JobSpec, JobState, Pool, Resources
from luminary.errors import BackendUnavailableError
from luminary.testing.ray_cluster import RayCluster, free_ports
from tests._components import import_component

ray = import_component("ray", "ray")

# Guards against a hang, never a timing claim: generous on a loaded two-core machine.
PATIENCE_S = 120.0
# Every job's command reports which node ran it.
NODE = 'echo "node=$RAY_RAYLET_PID"'


def pool(cluster: RayCluster, **options: str) -> Pool:
    return Pool(
        name="ray-test",
        executor="ray",
        nodes=2,
        gpus=2,
        cpus=2,
        options={"address": cluster.address, "placement_timeout": "5", **options},
    )


def job(*, gpus: float = 0.0, cpus: float = 0.0, nodes: int = 1) -> Job:
    spec = JobSpec(
        project="p", command=("true",), resources=Resources(gpus=gpus, cpus=cpus), nodes=nodes
    )
    return Job(new_id(), new_id(), spec, JobState.STARTING, None, now_ms())


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def wait_until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {PATIENCE_S:.0f} s")
        time.sleep(0.2)


def finish(executor: RayExecutor, ref: str) -> str:
    """Poll ``ref`` until it has ended; why it ended."""
    reasons: dict[str, str | None] = {}

    def ended() -> bool:
        reasons.update(executor.poll([ref]))
        return reasons[ref] is not None

    wait_until(ended, f"the end of {ref}")
    reason = reasons[ref]
    assert reason is not None
    return reason


def report(path: Path) -> dict[str, str]:
    """``key=value`` lines a job wrote."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def executor(ray_cluster: RayCluster) -> Iterator[RayExecutor]:
    ex = RayExecutor(pool(ray_cluster))
    yield ex
    ex.close()


def test_discover_reports_the_alive_nodes(executor: RayExecutor) -> None:
    found = executor.discover()
    assert found is not None
    assert (found.name, found.executor, found.nodes, found.gpus, found.cpus) == (
        "ray-test",
        "ray",
        2,
        2,
        2.0,
    )
    assert found.options == executor.pool.options


def test_a_job_runs_with_its_env_rank_and_ray_assigned_gpu(
    executor: RayExecutor, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    script = '{ echo "flavour=$FLAVOUR"; echo "rank=$LUMINARY_RANK"; '
    script += f'echo "gpus=$CUDA_VISIBLE_DEVICES"; }} > {out}'
    ref = executor.launch(job(gpus=1), sh(script), {"FLAVOUR": "charm"})
    assert finish(executor, ref) == "exited"
    seen = report(out)
    assert seen["flavour"] == "charm"
    assert seen["rank"] == "0"
    assert seen["gpus"] in {"0", "1"}


def test_many_claimed_jobs_launch_in_one_call_and_each_runs(
    executor: RayExecutor, tmp_path: Path
) -> None:
    launches = [
        (job(cpus=0.5), sh(f'echo "rank=$LUMINARY_RANK" > {tmp_path / str(i)}'), {})
        for i in range(3)
    ]
    refs = executor.launch_many(launches)
    assert all(isinstance(ref, str) for ref in refs)
    assert len(set(refs)) == 3
    for ref in refs:
        assert finish(executor, str(ref)) == "exited"
    assert [report(tmp_path / str(i))["rank"] for i in range(3)] == ["0", "0", "0"]


def test_half_gpu_jobs_share_a_device_at_the_same_time(
    executor: RayExecutor, tmp_path: Path
) -> None:
    # Eight halves fill the four devices only if each device holds two jobs at once; every job
    # waits until all eight have started, so they all run together.
    script = (
        f'{{ {NODE}; echo "gpus=$CUDA_VISIBLE_DEVICES"; }} > {tmp_path}/$$.job; '
        f'while [ "$(ls {tmp_path} | wc -l)" -lt 8 ]; do sleep 0.1; done'
    )
    refs = [executor.launch(job(gpus=0.5), sh(script), {}) for _ in range(8)]
    assert [finish(executor, ref) for ref in refs] == ["exited"] * 8
    devices: dict[tuple[str, str], int] = {}
    for path in tmp_path.glob("*.job"):
        seen = report(path)
        assert seen["gpus"] in {"0", "1"}
        key = (seen["node"], seen["gpus"])
        devices[key] = devices.get(key, 0) + 1
    assert sorted(devices.values()) == [2, 2, 2, 2]
    assert len({node for node, _ in devices}) == 2


def test_a_gang_runs_one_rank_per_node_with_one_master(
    executor: RayExecutor, tmp_path: Path
) -> None:
    script = (
        f'{{ {NODE}; echo "rank=$LUMINARY_RANK"; echo "gpus=$CUDA_VISIBLE_DEVICES"; '
        f'echo "master=$MASTER_ADDR:$MASTER_PORT"; }} > {tmp_path}/rank$LUMINARY_RANK'
    )
    ref = executor.launch(job(gpus=2, cpus=1, nodes=2), sh(script), {})
    assert ref.startswith("pg:")
    assert finish(executor, ref) == "exited"
    ranks = [report(tmp_path / f"rank{r}") for r in (0, 1)]
    assert [seen["rank"] for seen in ranks] == ["0", "1"]
    assert ranks[0]["node"] != ranks[1]["node"]
    assert ranks[0]["master"] == ranks[1]["master"]
    host, port = ranks[0]["master"].rsplit(":", 1)
    assert host in {node["NodeManagerAddress"] for node in ray.nodes()}
    assert int(port) > 0
    assert sorted(ranks[0]["gpus"].split(",")) == ["0", "1"]


def test_a_gang_that_can_never_fit_is_refused_with_the_numbers(executor: RayExecutor) -> None:
    with pytest.raises(BackendUnavailableError) as err:
        executor.launch(job(gpus=2, cpus=1, nodes=3), ["true"], {})
    message = str(err.value)
    assert "3 nodes x {2 GPU, 1 CPU}" in message
    assert "within 5 s" in message
    assert "2 alive node(s)" in message
    # The refused group was removed: the whole cluster is free for a 2-node gang again.
    ref = executor.launch(job(gpus=2, cpus=2, nodes=2), ["true"], {})
    assert finish(executor, ref) == "exited"


def test_poll_reports_a_failed_exit_and_an_unknown_ref(executor: RayExecutor) -> None:
    ref = executor.launch(job(), sh("exit 3"), {})
    assert finish(executor, ref) == "exited with status 3"
    assert executor.poll([ref]) == {ref: "exited with status 3"}
    assert executor.poll(["f" * 48]) == {"f" * 48: "unknown to this Ray executor"}


def test_kill_stops_a_sleeping_job(executor: RayExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    ref = executor.launch(job(), sh(f"echo $$ > {pidfile}; exec sleep 300"), {})
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the job's start")
    pid = int(pidfile.read_text())
    assert psutil.pid_exists(pid)
    executor.kill(ref)
    assert finish(executor, ref) == "cancelled"
    wait_until(lambda: not _running(pid), "the end of the killed command")
    executor.kill(ref)  # idempotent
    assert executor.poll([ref]) == {ref: "cancelled"}


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_LAUNCH_AND_DIE = """
import os, signal, sys
from luminary._clock import now_ms
from luminary._ids import new_id
from luminary.compute._ray import RayExecutor
from luminary.compute.models import Job, JobSpec, JobState, Pool

pool = Pool(name="ray-test", executor="ray", options={"address": sys.argv[1]})
spec = JobSpec(project="p", command=("true",))
job = Job(new_id(), new_id(), spec, JobState.STARTING, None, now_ms())
script = f"while [ ! -e {sys.argv[2]}/go ]; do sleep 0.1; done; echo done > {sys.argv[2]}/out"
executor = RayExecutor(pool)
ref = executor.launch(job, ["sh", "-c", script], {})
executor.flush()  # the supervisor has the launch: from here the job outlives this process
print(ref, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_job_outlives_its_executor_killed_with_sigkill(
    executor: RayExecutor, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCH_AND_DIE, ray_cluster.address, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ref = proc.stdout.strip().splitlines()[-1]
    assert executor.poll([ref]) == {ref: None}  # still running, known to this executor too
    (tmp_path / "go").touch()
    assert finish(executor, ref) == "exited"
    assert (tmp_path / "out").read_text() == "done\n"


def test_a_job_on_a_killed_node_is_reported_lost(
    executor: RayExecutor, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    # Two 2-GPU jobs take one node each; then the second node's raylet dies.
    script = f"{NODE} > {tmp_path}/$$.job; exec sleep 300"
    refs = [executor.launch(job(gpus=2), sh(script), {}) for _ in range(2)]
    wait_until(lambda: len(list(tmp_path.glob("*.job"))) == 2, "both jobs' start")
    node = ray_cluster.nodes[1]
    raylet = node.raylet_pid()
    assert raylet is not None
    os.kill(raylet, signal.SIGKILL)
    try:
        reasons: dict[str, str | None] = {}

        def one_ended() -> bool:
            reasons.update(executor.poll(refs))
            return any(reasons.values())

        wait_until(one_ended, "a report of the lost node")
        lost = [ref for ref in refs if reasons[ref]]
        assert len(lost) == 1
        assert str(reasons[lost[0]]).startswith("node lost: ")
        survivor = next(ref for ref in refs if ref not in lost)
        assert reasons[survivor] is None  # the head's job runs on
        # The lost node's command did not outlive its worker.
        lost_pids = [
            int(path.stem) for path in tmp_path.glob("*.job") if report(path)["node"] == str(raylet)
        ]
        assert len(lost_pids) == 1
        wait_until(lambda: not _running(lost_pids[0]), "the end of the lost node's command")
        executor.kill(survivor)
        assert finish(executor, survivor) == "cancelled"
    finally:
        ray_cluster.replace_node(node)


def test_an_address_that_does_not_answer_is_named_in_the_error(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    code = (
        "from luminary.compute._ray import RayExecutor\n"
        "from luminary.compute.models import Pool\n"
        f"pool = Pool(name='x', executor='ray', options={{'address': '127.0.0.1:{port}'}})\n"
        "RayExecutor(pool).discover()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("luminary.errors.BackendUnavailableError")
    assert f"'127.0.0.1:{port}' does not answer" in last
    assert "ray start --head" in last

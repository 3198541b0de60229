"""The Slurm executor's pure parts: options, sbatch flags, batch scripts (run here with ``sh``,
no cluster needed) and the parsing of squeue, sacct and sinfo output; and the error a missing
Slurm gives."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from luminary.compute._slurm import SlurmExecutor, _job_id
from luminary.compute._slurm_script import (
    SlurmOptions,
    array_script,
    batch_script,
    check_array,
    gres_request,
    parse_sacct,
    parse_sinfo,
    parse_squeue,
    sbatch_flags,
)
from luminary.compute.models import Job, JobSpec, JobState, Pool, Resources
from luminary.errors import BackendUnavailableError, InvalidArgumentError, MissingDependencyError
from luminary.testing.slurm import slurm_conf


def _pool(**options: str) -> Pool:
    return Pool(name="hpc", executor="slurm", gpus=4, gpu_memory_mb=40_000, options=options)


def _job(job_id: str = "j1", **spec: object) -> Job:
    return Job(
        id=job_id,
        run_id="r1",
        spec=JobSpec(project="p", command=("true",), **spec),  # type: ignore[arg-type]
        state=JobState.STARTING,
        user=None,
        submitted_ms=0,
        attempt=2,
    )


def _flags(spec: JobSpec, **options: str) -> list[str]:
    pool = _pool(**options)
    return sbatch_flags(
        spec, name="luminary-j1", output="/s/o.out", options=SlurmOptions.from_pool(pool), pool=pool
    )


def _sh(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "job.sh"
    path.write_text(script)
    base = {"PATH": os.environ["PATH"], "CUDA_VISIBLE_DEVICES": "7"}
    return subprocess.run(
        ["sh", str(path)], env={**base, **env}, capture_output=True, text=True, check=False
    )


# -- options -------------------------------------------------------------------------------------


def test_options_are_read_from_the_pool() -> None:
    opts = SlurmOptions.from_pool(
        _pool(partition="gpu", account="cms", qos="short", shards_per_gpu="8", extra="-C 'a b'")
    )
    assert (opts.partition, opts.account, opts.qos, opts.gres) == ("gpu", "cms", "short", "gpu")
    assert opts.shards_per_gpu == 8
    assert opts.extra == ("-C", "a b")


def test_an_unknown_option_is_refused_with_the_nearest_name() -> None:
    with pytest.raises(InvalidArgumentError, match="did you mean 'partition'"):
        SlurmOptions.from_pool(_pool(partiton="gpu"))


@pytest.mark.parametrize("value", ["-1", "half", "5000"])
def test_a_bad_shard_count_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="shards_per_gpu"):
        SlurmOptions.from_pool(_pool(shards_per_gpu=value))


def test_the_executor_takes_only_slurm_pools() -> None:
    with pytest.raises(InvalidArgumentError, match="executor 'local'"):
        SlurmExecutor(Pool(name="here"))


# -- resources to flags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "shards", "expected"),
    [
        (Resources(), "0", None),
        (Resources(gpus=2), "0", "gpu:2"),
        (Resources(gpus=2), "4", "gpu:2"),
        (Resources(gpus=0.5), "0", "gpu:1"),
        (Resources(gpus=0.5), "4", "shard:2"),
        (Resources(gpus=0.3), "4", "shard:2"),
        (Resources(gpus=0.01), "4", "shard:1"),
        (Resources(gpu_memory_mb=10_000), "8", "shard:2"),
        (Resources(gpu_memory_mb=10_000), "0", "gpu:1"),
    ],
)
def test_gpu_requests_become_gres(resources: Resources, shards: str, expected: str | None) -> None:
    pool = _pool(shards_per_gpu=shards)
    assert gres_request(resources, SlurmOptions.from_pool(pool), pool) == expected


def test_a_typed_gres_name_is_used_for_whole_gpus() -> None:
    pool = _pool(gres="gpu:a100")
    assert gres_request(Resources(gpus=4), SlurmOptions.from_pool(pool), pool) == "gpu:a100:4"


def test_flags_carry_resources_per_node_and_where_the_job_goes() -> None:
    spec = JobSpec(
        project="p",
        command=("x",),
        nodes=2,
        resources=Resources(gpus=4, cpus=2.5, memory_mb=16384),
        workdir="/data/work",
    )
    flags = _flags(spec, partition="gpu", account="cms", qos="short", extra="--exclusive")
    assert flags[0] == "--parsable"
    for flag in (
        "--job-name=luminary-j1",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--cpus-per-task=3",
        "--mem=16384M",
        "--gres=gpu:4",
        "--output=/s/o.out",
        "--no-requeue",
        "--partition=gpu",
        "--account=cms",
        "--qos=short",
        "--chdir=/data/work",
    ):
        assert flag in flags
    assert flags[-1] == "--exclusive"
    assert not [f for f in flags if f.startswith(("--time", "--signal"))]


def test_a_job_without_memory_or_gpus_leaves_them_to_slurm() -> None:
    flags = _flags(JobSpec(project="p", command=("x",), resources=Resources(cpus=0)))
    assert "--cpus-per-task=1" in flags
    assert not [f for f in flags if f.startswith(("--mem", "--gres", "--partition"))]


@pytest.mark.parametrize(
    ("limit", "grace", "time", "signal"),
    [
        (1, 0, "--time=1", None),
        (3600, 30, "--time=61", "--signal=B:TERM@30"),
        (120, 0.5, "--time=3", None),
        (59, 1, "--time=1", "--signal=B:TERM@1"),
    ],
)
def test_the_time_limit_adds_the_grace_in_whole_minutes(
    limit: float, grace: float, time: str, signal: str | None
) -> None:
    flags = _flags(JobSpec(project="p", command=("x",), time_limit_s=limit, grace_s=grace))
    assert time in flags
    signals = [f for f in flags if f.startswith("--signal")]
    assert signals == ([signal] if signal else [])


# -- scripts -------------------------------------------------------------------------------------


def test_a_one_node_script_runs_the_command_with_its_environment(tmp_path: Path) -> None:
    odd = "a b; $HOME 'q' \"d\" `x`"
    script = batch_script(
        _job(),
        [
            "sh",
            "-c",
            'printf "%s|%s|%s|%s" "$ODD" "$LUMINARY_RANK" "$CUDA_VISIBLE_DEVICES" "$1"',
            "-",
            "arg one",
        ],
        {"ODD": odd, "LUMINARY_RANK": "5", "CUDA_VISIBLE_DEVICES": "3"},
    )
    assert script.startswith("#!/bin/sh\n")
    assert "srun" not in script
    done = _sh(script, tmp_path)
    assert done.returncode == 0, done.stderr
    # The given rank and devices yield to the script's own: rank 0, no GPU asked, none seen.
    assert done.stdout == f"{odd}|0||arg one"


def test_a_gpu_job_keeps_the_devices_slurm_sets(tmp_path: Path) -> None:
    script = batch_script(
        _job(resources=Resources(gpus=1)), ["sh", "-c", 'printf %s "$CUDA_VISIBLE_DEVICES"'], {}
    )
    assert _sh(script, tmp_path).stdout == "7"


def test_a_gang_script_starts_one_rank_per_node_through_srun() -> None:
    script = batch_script(_job(nodes=4), ["python", "-m", "luminary.compute.runner", "j1"], {})
    assert 'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"' in script
    assert "MASTER_PORT=${MASTER_PORT:-$((10000 + SLURM_JOB_ID % 20000))}" in script
    last = script.strip().splitlines()[-1]
    assert last.startswith("exec srun --nodes=4 --ntasks=4 --ntasks-per-node=1 ")
    assert "LUMINARY_RANK=$SLURM_PROCID" in last
    assert last.endswith("python -m luminary.compute.runner j1")


def test_a_name_with_newlines_stays_in_its_comment(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    job = _job(name=f"train\ntouch {marker}\n")
    done = _sh(batch_script(job, ["true"], {}), tmp_path)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_an_environment_name_the_shell_cannot_export_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="'BAD-NAME'"):
        batch_script(_job(), ["true"], {"BAD-NAME": "x"})


def test_an_array_script_runs_the_command_of_its_index(tmp_path: Path) -> None:
    jobs = [_job(f"a{i}") for i in range(3)]
    script = array_script(
        jobs,
        [["sh", "-c", f'printf "{i} %s" "$WHO"'] for i in range(3)],
        [{"WHO": job.id} for job in jobs],
    )
    for index in range(3):
        done = _sh(script, tmp_path, SLURM_ARRAY_TASK_ID=str(index))
        assert done.stdout == f"{index} a{index}"
    done = _sh(script, tmp_path, SLURM_ARRAY_TASK_ID="3")
    assert done.returncode == 2
    assert "no job for array index 3" in done.stderr


def test_an_array_takes_alike_one_node_jobs_and_the_longest_limit() -> None:
    jobs = [_job("a", time_limit_s=60), _job("b", time_limit_s=600, grace_s=5)]
    spec = check_array(jobs)
    assert (spec.time_limit_s, spec.grace_s) == (600, 30)
    assert check_array([_job("a", time_limit_s=60), _job("b")]).time_limit_s is None
    with pytest.raises(InvalidArgumentError, match="same resources"):
        check_array([_job("a"), _job("b", resources=Resources(gpus=1))])
    with pytest.raises(InvalidArgumentError, match="one-node jobs"):
        check_array([_job("a", nodes=2)])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        check_array([])


# -- parsing -------------------------------------------------------------------------------------


def test_squeue_states_become_none_or_the_reason() -> None:
    text = (
        "101|RUNNING|None\n102|PENDING|Resources\n103|COMPLETING|None\n104|COMPLETED|None\n"
        "105|FAILED|NonZeroExitCode\n106_3|TIMEOUT|TimeLimit\n107|OUT_OF_MEMORY|OutOfMemory\n"
        "108|CANCELLED|None\n109|NODE_FAIL|(null)\n110|SUSPENDED|None\n"
    )
    assert parse_squeue(text) == {
        "101": None,
        "102": None,
        "103": None,
        "104": "COMPLETED",
        "105": "FAILED (NonZeroExitCode)",
        "106_3": "TIMEOUT (TimeLimit)",
        "107": "OUT_OF_MEMORY (OutOfMemory)",
        "108": "CANCELLED",
        "109": "NODE_FAIL",
        "110": None,
    }


def test_sacct_lines_skip_steps_and_keep_the_state_word() -> None:
    text = "7|CANCELLED by 0\n7.batch|CANCELLED\n8_2|COMPLETED\n9|RUNNING\n"
    assert parse_sacct(text) == {"7": "CANCELLED", "8_2": "COMPLETED", "9": None}


def test_sinfo_gives_the_pool_as_slurm_sees_it() -> None:
    pool = _pool(partition="gpu")
    text = (
        "n1|64|256000|gpu:a100:4(S:0-1),shard:32|idle\n"
        "n2|64|256000|gpu:a100:4(S:0-1)|mixed\n"
        "n3|128|512000|gpu:8|down*\n"
        "n4|32|128000|(null)|drained\n"
    )
    found = parse_sinfo(text, pool, "gpu")
    assert found is not None
    assert (found.nodes, found.gpus, found.cpus, found.memory_mb) == (2, 4, 64, 256000)
    assert (found.name, found.gpu_memory_mb, found.options, found.enabled) == (
        "hpc",
        40_000,
        {"partition": "gpu"},
        True,
    )
    all_down = parse_sinfo("n3|128|512000|gpu:8|down*\n", pool, "gpu")
    assert all_down is not None
    assert (all_down.enabled, all_down.nodes, all_down.gpus) == (False, 1, 8)
    assert parse_sinfo("", pool, "gpu") is None


def test_the_job_id_comes_from_sbatch_parsable_output() -> None:
    assert _job_id("4242\n", "job j1") == "4242"
    assert _job_id("4242;cluster2\n", "job j1") == "4242"
    with pytest.raises(BackendUnavailableError, match="printed no job id"):
        _job_id("", "job j1")


# -- without Slurm -------------------------------------------------------------------------------


def test_missing_slurm_commands_name_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    executor = SlurmExecutor(_pool(spool=str(tmp_path / "spool")))
    with pytest.raises(MissingDependencyError, match="slurm-wlm") as caught:
        executor.launch(_job(), ["true"], {})
    assert "`sbatch`" in str(caught.value)
    assert executor.discover() is None


def test_the_test_cluster_gives_each_gpu_its_own_device_file(tmp_path: Path) -> None:
    files = slurm_conf(
        tmp_path,
        host="box",
        nodes=["box-1", "box-2"],
        cpus=8,
        memory_mb=4096,
        gpus=4,
        shards_per_gpu=2,
        ctld_port=7000,
        slurmd_ports=[7001, 7002],
    )
    gpu_files = [
        line.split("File=")[1] for line in files["gres.conf"].splitlines() if "Name=gpu" in line
    ]
    assert len(gpu_files) == len(set(gpu_files)) == 8
    assert files["gres.conf"].count("Name=shard Count=8") == 2
    conf = files["slurm.conf"]
    for line in (
        "SlurmctldHost=box(127.0.0.1)",
        "SlurmctldPort=7000",
        "GresTypes=gpu,shard",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "PartitionName=debug Nodes=box-1,box-2 Default=YES MaxTime=INFINITE State=UP",
    ):
        assert line in conf.splitlines()
    assert "NodeName=box-2 NodeHostname=box NodeAddr=127.0.0.1 Port=7002 CPUs=8" in conf
    assert files["cgroup.conf"] == "CgroupPlugin=cgroup/v1\n"

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from luminary.energy import (
    CPU_TABLE,
    DEFAULT_WATTS_PER_CPU,
    TDP_ENV,
    EstimateMeter,
    ProcessSet,
    Sampler,
    choose_tdp,
)
from luminary.energy._estimate import cpu_model, lookup_cpu
from luminary.errors import InvalidArgumentError, NotFoundError


class ScriptedProcesses(ProcessSet):
    """A ProcessSet whose CPU time the test sets."""

    def __init__(self, allowed: int = 2) -> None:
        super().__init__()
        self.seconds = 100.0
        self.allowed = allowed

    def cpu_seconds(self) -> float:
        return self.seconds

    def allowed_cpus(self) -> int:
        return self.allowed


EPYC = "AMD EPYC 7763 64-Core Processor"


@pytest.mark.parametrize(
    ("model", "key"),
    [
        (EPYC, "EPYC 7763"),
        ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Gold 6248R"),
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Gold 6248"),
        ("Intel(R) Xeon(R) Platinum 8480+", "Platinum 8480+"),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "E5-2680 v4"),
        ("AMD EPYC", None),
        ("AMD EPYC 7B13", None),
        ("AMD EPYC 77630", None),
    ],
)
def test_table_lookup_matches_whole_model_numbers(model: str, key: str | None) -> None:
    spec = lookup_cpu(model)
    assert (spec.key if spec else None) == key


def test_default_watts_per_cpu_is_the_tables_median() -> None:
    median = statistics.median(s.tdp_w / s.threads for s in CPU_TABLE)
    assert round(median, 1) == DEFAULT_WATTS_PER_CPU


def test_tdp_from_the_table() -> None:
    choice = choose_tdp(model=EPYC, environ={})
    assert (choice.tdp_w, choice.threads) == (280, 128)
    assert choice.watts_per_cpu == pytest.approx(280 / 128)
    assert choice.source == f"table: {EPYC}"


def test_given_tdp_beats_environment_and_table() -> None:
    choice = choose_tdp(200, model=EPYC, environ={TDP_ENV: "150"})
    assert choice.watts_per_cpu == pytest.approx(200 / 128)
    assert choice.source.startswith("given: tdp_w=")


def test_environment_beats_table() -> None:
    choice = choose_tdp(model=EPYC, environ={TDP_ENV: "150"})
    assert choice.tdp_w == 150
    assert choice.source.startswith(f"env {TDP_ENV}")


def test_given_tdp_for_unknown_model_is_shared_among_this_machines_cpus(
    tmp_path: Path,
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Mystery CPU\nphysical id\t: 0\n")
    choice = choose_tdp(100, model="Mystery CPU", environ={}, cpuinfo=cpuinfo)
    logical = psutil.cpu_count(logical=True) or 1
    assert choice.threads == logical
    assert choice.watts_per_cpu == pytest.approx(100 / logical)
    assert "logical CPUs per package on this machine" in choice.source


def test_unknown_model_without_tdp_uses_the_documented_default() -> None:
    choice = choose_tdp(model="AMD EPYC", environ={})
    assert choice.tdp_w is None
    assert choice.watts_per_cpu == DEFAULT_WATTS_PER_CPU
    assert "default" in choice.source
    assert "'AMD EPYC' is not in the table" in choice.source
    assert TDP_ENV in choice.source


@pytest.mark.parametrize("text", ["0", "-5", "lots"])
def test_bad_tdp_in_environment_names_the_variable(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=TDP_ENV):
        choose_tdp(model=EPYC, environ={TDP_ENV: text})


def test_bad_tdp_argument_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="tdp_w=0"):
        choose_tdp(0, model=EPYC, environ={})


def test_cpu_model_reads_proc_cpuinfo_format(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: {EPYC}\n")
    assert cpu_model(cpuinfo) == EPYC
    assert cpu_model(tmp_path / "absent") == ""


def test_estimate_is_labelled_with_table_tdp_and_its_source() -> None:
    processes = ScriptedProcesses(allowed=2)
    meter = EstimateMeter(processes, choose_tdp(model=EPYC, environ={}))
    with Sampler([meter], interval_s=0.05) as sampler:
        processes.seconds += 64.0
    [cpu] = sampler.report.devices
    assert cpu.source == "estimate"
    assert cpu.estimated is True
    assert cpu.joules == pytest.approx(64.0 * 280 / 128)
    assert cpu.detail == (
        "TDP 280 W x 2/128 logical CPUs x CPU utilisation of the measured processes "
        f"(table: {EPYC})"
    )
    assert sampler.report.any_estimated
    assert sampler.report.all_estimated
    assert sampler.report.to_tags()["energy.measured"] == "none"


def test_estimate_with_given_tdp_says_so() -> None:
    meter = EstimateMeter(ScriptedProcesses(), choose_tdp(250, model=EPYC, environ={}))
    assert meter.estimated
    assert meter.detail.startswith("TDP 250 W x 2/128 logical CPUs")
    assert "given: tdp_w=" in meter.detail


def test_estimate_with_default_says_it_is_a_default() -> None:
    meter = EstimateMeter(ScriptedProcesses(), choose_tdp(model="AMD EPYC", environ={}))
    assert meter.estimated
    assert meter.detail.startswith(f"{DEFAULT_WATTS_PER_CPU:g} W per logical CPU x 2 logical CPUs")
    assert "(default: CPU model 'AMD EPYC' is not in the table" in meter.detail


def test_process_set_keeps_a_childs_cpu_time_after_it_exits() -> None:
    processes = ProcessSet()
    before = processes.cpu_seconds()
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    assert processes.cpu_seconds() - before >= 0.25


def test_process_set_counts_a_live_child() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 5: pass"
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        processes = ProcessSet([child.pid])
        first = processes.cpu_seconds()
        give_up = time.monotonic() + 5
        while processes.cpu_seconds() - first < 0.1 and time.monotonic() < give_up:
            time.sleep(0.02)
        assert processes.cpu_seconds() - first >= 0.1
        assert processes.pids == (child.pid,)
    finally:
        child.kill()
        child.wait()


def test_process_set_refuses_an_unknown_pid() -> None:
    pid = max(psutil.pids()) + 10_000
    with pytest.raises(NotFoundError, match=f"no process with pid {pid}"):
        ProcessSet([pid])

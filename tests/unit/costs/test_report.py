"""Cost reports over runs in an embedded store: sums, prices, lineage, estimates kept apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import luminary as lm
from luminary.cli import app
from luminary.costs._prices import EXAMPLE_YAML, PriceSheetError, load_prices, parse_prices
from luminary.costs._report import (
    RunUsage,
    build_report,
    cost_report,
    parse_since,
    usage_of,
)
from luminary.errors import InvalidArgumentError
from luminary.store import Run, RunStatus

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_automatic_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests write the energy metrics themselves; runs must not add the machine's."""
    monkeypatch.setenv("LUMINARY_ENERGY", "0")


def energy(
    joules: dict[str, tuple[float, str]], cpu_s: float = 0.0, gpu_s: float = 0.0
) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and tags as a measured run records them: device -> (joules, source)."""
    metrics = {f"energy/{d}_joules": j for d, (j, _) in joules.items()}
    metrics["energy/total_joules"] = sum(j for j, _ in joules.values())
    metrics["resources/cpu_seconds"] = cpu_s
    metrics["resources/gpu_seconds"] = gpu_s
    tags = {f"energy.{d}.source": s for d, (_, s) in joules.items()}
    tags |= {f"energy.{d}.detail": f"{d} via {s}" for d, (_, s) in joules.items()}
    estimated = [s == "estimate" for _, s in joules.values()]
    tags["energy.measured"] = "none" if all(estimated) else "partial" if any(estimated) else "all"
    return metrics, tags


def record(
    run: Any, joules: dict[str, tuple[float, str]], cpu_s: float = 0, gpu_s: float = 0
) -> None:
    metrics, tags = energy(joules, cpu_s, gpu_s)
    run.log(metrics)
    run.set_tags(tags)


def make_run(
    project: str, name: str, joules: dict[str, tuple[float, str]] | None = None, **kw: Any
) -> str:
    cpu_s, gpu_s = kw.pop("cpu_s", 0.0), kw.pop("gpu_s", 0.0)
    with lm.start_run(project, name=name, capture_env=False, **kw) as run:
        if joules is not None:
            record(run, joules, cpu_s, gpu_s)
    return run.id


def option(report: Any, name: str) -> Any:
    return next(o for o in report.options if o.name == name)


@pytest.fixture
def three_runs() -> dict[str, str]:
    ids = {
        "a": make_run(
            "p",
            "a",
            {"cpu": (3.6e6, "rapl"), "gpu0": (7.2e6, "nvml-counter")},
            cpu_s=7200,
            gpu_s=3600,
        ),
        "b": make_run("p", "b", {"cpu": (1.8e6, "estimate")}, cpu_s=3600),
        "c": make_run("p", "c"),
    }
    make_run("elsewhere", "x", {"cpu": (9e9, "rapl")}, cpu_s=1e6)
    return ids


def test_sums_hours_kwh_co2e_and_cost_per_option(three_runs: dict[str, str]) -> None:
    report = cost_report(project="p")
    t = report.totals
    assert (t.measured_joules, t.estimated_joules) == (10.8e6, 1.8e6)
    assert (t.gpu_hours, t.cpu_hours) == (1.0, 3.0)
    assert dict(t.by_source["rapl"]) == {"cpu": 3.6e6}
    assert dict(t.by_source["estimate"]) == {"cpu": 1.8e6}
    assert "cpu: cpu via estimate" in t.estimate_details

    onprem = option(report, "on-premises")  # PUE 1.4, 0.12 EUR/kWh, 50 g/kWh, 0.45 + 0.01 /h
    assert onprem.kwh_measured == pytest.approx(3.0 * 1.4)
    assert onprem.kwh_estimated == pytest.approx(0.5 * 1.4)
    assert onprem.co2e_kg == pytest.approx(3.5 * 1.4 * 0.050)
    assert onprem.cost == pytest.approx(3.5 * 1.4 * 0.12 + 1 * 0.45 + 3 * 0.01)
    assert onprem.cost_estimated

    cloud = option(report, "cloud-on-demand")  # 3.00/GPU-h, 0.05/CPU-h, PUE 1.15, 350 g
    assert cloud.kwh == pytest.approx(3.5 * 1.15)
    assert cloud.co2e_kg == pytest.approx(3.5 * 1.15 * 0.350)
    assert cloud.cost == pytest.approx(1 * 3.00 + 3 * 0.05)  # energy is in the price
    assert not cloud.cost_estimated
    assert [o.name for o in report.options] == ["on-premises", "cloud-on-demand", "cloud-spot"]

    assert [u.run_id for u in report.not_measured] == [three_runs["c"]]
    assert {u.run_id for u in report.runs} == set(three_runs.values())


def test_every_constant_is_listed_with_where_it_came_from(three_runs: dict[str, str]) -> None:
    report = cost_report(project="p")
    listed = {a.what: a for a in report.assumptions}
    assert listed["energy price (on-premises)"].value == "0.12 EUR/kWh"
    assert listed["energy price (on-premises)"].origin == "example default"
    assert listed["PUE (on-premises)"].value == "1.4"
    assert listed["cloud-spot: GPU-hour"].value == "1.20 EUR"
    assert listed["estimator"].value == "cpu: cpu via estimate"
    assert report.prices.example


def test_a_sheet_file_is_used_and_cited_by_line(three_runs: dict[str, str], home: Path) -> None:
    text = EXAMPLE_YAML.replace("energy_price_per_kwh: 0.12", "energy_price_per_kwh: 0.30")
    start = text.index("cloud:")
    text = text[:start] + "cloud:\n  - name: hpc\n    gpu_hour: 2\n    cpu_hour: 0\n"
    (home / "prices.yaml").write_text(text)
    report = cost_report(project="p")
    assert not report.prices.example
    line = (
        text.splitlines().index(
            "energy_price_per_kwh: 0.30   # example: an industrial electricity tariff"
        )
        + 1
    )
    listed = {a.what: a for a in report.assumptions}
    assert listed["energy price (on-premises)"].origin == f"prices.yaml line {line}"
    assert "the site's" in listed["hpc: PUE"].origin  # no PUE of its own
    assert option(report, "hpc").pue == 1.4
    assert option(report, "on-premises").cost == pytest.approx(3.5 * 1.4 * 0.30 + 0.45 + 0.03)


def test_since_selects_runs_by_start_time(home: Path) -> None:
    store = lm.get_store()
    now = datetime.now(UTC)
    old = store.create_run(
        "p", name="old", start_ms=int((now - timedelta(days=40)).timestamp() * 1000)
    )
    with lm.start_run(resume=old.id, capture_env=False) as run:
        record(run, {"cpu": (100.0, "rapl")})
    make_run("p", "new", {"cpu": (1.0, "rapl")})
    assert cost_report(project="p", since="30d").totals.measured_joules == 1.0
    assert cost_report(project="p", since="6w").totals.measured_joules == 101.0


def test_parse_since_takes_ages_and_dates() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("2026-01-31", now) == datetime(2026, 1, 31, tzinfo=UTC)
    with pytest.raises(InvalidArgumentError, match="30d, 12h, 2w"):
        parse_since("a month", now)


def test_a_parent_that_ran_around_its_children_is_counted_once() -> None:
    with lm.start_run("p", name="scan", capture_env=False) as scan:
        for i in range(2):
            make_run("p", f"trial{i}", {"cpu": (100.0, "rapl")}, cpu_s=10, parent=scan.id)
        record(scan, {"cpu": (250.0, "rapl")}, cpu_s=25)  # its meters ran throughout
    report = cost_report(project="p")
    assert report.totals.measured_joules == 250.0
    assert report.totals.cpu_hours == pytest.approx(25 / 3600)
    (nested,) = report.nested
    assert nested.parent_id == scan.id
    assert len(nested.child_ids) == 2
    assert nested.joules == 200.0
    assert any(a.what == "nested runs" for a in report.assumptions)


def test_a_child_outside_its_parents_span_is_not_subtracted() -> None:
    parent = make_run("p", "parent", {"cpu": (50.0, "rapl")})
    make_run("p", "later", {"cpu": (30.0, "rapl")}, parent=parent)
    report = cost_report(project="p")
    assert report.totals.measured_joules == 80.0
    assert report.nested == ()


def make_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    helper, tensor = onnx.helper, onnx.TensorProto
    x = helper.make_tensor_value_info("x", tensor.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", tensor.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), path)
    return path


@pytest.fixture
def lineage_runs(tmp_path: Path) -> dict[str, str]:
    """Data preparation, a scan with two trials, a registered model, a serving run, and an
    unrelated run in the same project."""
    (tmp_path / "jets.csv").write_text("pt,eta\n1,2\n")
    with lm.start_run("cms", name="prep", capture_env=False, tags={"produces": "jets@1"}) as prep:
        lm.datasets.add("jets", [tmp_path / "jets.csv"], project="cms")
        record(prep, {"cpu": (10.0, "rapl")})
    ids = {"prep": prep.id}
    with lm.start_run("cms", name="scan", capture_env=False) as scan:
        for name, joules in (("h16", 20.0), ("h32", 30.0)):
            with lm.start_run("cms", name=name, parent=scan.id, capture_env=False) as trial:
                trial.use_dataset("jets@1")
                record(trial, {"cpu": (joules, "rapl")}, gpu_s=joules)
            ids[name] = trial.id
        record(scan, {"cpu": (55.0, "rapl")})
    ids["scan"] = scan.id
    version = lm.register_model(
        "jet-tagger", make_onnx(tmp_path / "m.onnx"), run=ids["h32"], alias="production"
    )
    assert version.ref == "jet-tagger@1"
    ids["other"] = make_run("cms", "unrelated", {"cpu": (1000.0, "rapl")})
    with lm.start_run(
        "cms", name="serve", capture_env=False, tags={"kind": "serving", "model": version.ref}
    ) as serve:
        serve.log({"serving/joules_per_event": 0.25, "serving/events_per_s": 4000.0})
        serve.set_tags({"energy.measured": "all"})
    ids["serve"] = serve.id
    return ids


def test_model_follows_its_lineage_and_reports_joules_per_event(
    lineage_runs: dict[str, str],
) -> None:
    report = cost_report(model="jet-tagger@production")
    roles = {u.run_id: u.role for u in report.runs}
    ids = lineage_runs
    assert roles == {
        ids["prep"]: "data",
        ids["scan"]: "scan",
        ids["h16"]: "trial",
        ids["h32"]: "training",
    }
    assert report.model == "jet-tagger@1"
    assert report.inputs == ("jets@1",)
    # the scan's 55 J include its trials' 50: counted once, plus 10 J of data preparation
    assert report.totals.measured_joules == 65.0
    assert report.serving is not None
    assert (report.serving.joules_per_event, report.serving.measured) == (0.25, True)
    assert report.serving.run_id == ids["serve"]

    code_out = runner.invoke(app, ["cost", "report", "--model", "jet-tagger@production"])
    assert code_out.exit_code == 0, code_out.output
    assert "cost to make jet-tagger@1 (jet-tagger@production)" in code_out.output
    assert "to serve: 0.25 J/event (measured" in code_out.output


def test_model_without_a_serving_run_says_none_recorded(tmp_path: Path) -> None:
    run_id = make_run("cms", "train", {"cpu": (5.0, "rapl")})
    lm.register_model("tagger", make_onnx(tmp_path / "m.onnx"), run=run_id)
    report = cost_report(model="tagger")
    assert report.serving is None
    assert [u.run_id for u in report.runs] == [run_id]
    result = runner.invoke(app, ["cost", "report", "--model", "tagger"])
    assert "to serve: none recorded" in result.output


def test_no_counter_anywhere_marks_every_energy_figure_estimated() -> None:
    make_run("p", "a", {"cpu": (7.2e6, "estimate")}, cpu_s=3600)
    make_run("p", "b", {"cpu": (3.6e6, "estimate"), "dram": (1.0e5, "estimate")}, cpu_s=60)
    report = cost_report(project="p")
    assert report.totals.all_estimated
    assert report.totals.measured_joules == 0
    for o in report.options:
        assert o.kwh_measured == 0
        assert o.kwh_estimated > 0
        assert o.co2e_kg_estimated == o.co2e_kg
    assert option(report, "on-premises").cost_estimated

    result = runner.invoke(app, ["cost", "report", "-p", "p"])
    assert result.exit_code == 0, result.output
    assert "all estimated" in result.output
    assert "measured 0 J, estimated ~" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 3
    for row in rows:
        cells = [c.strip() for c in row.split("│") if c.strip()]
        kwh_measured, kwh_estimated, co2e = cells[4], cells[5], cells[6]
        assert kwh_measured == "-"
        assert kwh_estimated.startswith("~")
        assert co2e.startswith("~")
    assert "example prices — replace them in" in result.output


def test_json_output_has_the_same_content(three_runs: dict[str, str]) -> None:
    result = runner.invoke(app, ["cost", "report", "-p", "p", "--since", "1d", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["selection"] == {"project": "p", "since": "1d", "model": None}
    assert data["run_count"] == 3
    assert data["not_measured"] == [three_runs["c"]]
    assert data["totals"]["measured_joules"] == 10.8e6
    assert data["totals"]["estimated_joules"] == 1.8e6
    onprem = data["options"][0]
    assert onprem["name"] == "on-premises"
    assert onprem["kwh"]["estimated"] == pytest.approx(0.7)
    assert onprem["cost"]["includes_estimate"] is True
    assert {a["what"] for a in data["assumptions"]} >= {"PUE (on-premises)", "cloud-spot: PUE"}
    assert data["prices"]["example"] is True


def test_the_table_says_what_was_not_measured(three_runs: dict[str, str]) -> None:
    result = runner.invoke(app, ["cost", "report", "-p", "p"])
    assert result.exit_code == 0, result.output
    assert "cost of 3 runs · project p" in result.output
    assert "measured 10.8 MJ (nvml-counter: gpu0 7.2 MJ · rapl: cpu 3.6 MJ)" in result.output
    assert "estimated ~1.8 MJ (estimate: cpu 1.8 MJ)" in result.output
    assert "not measured: 1 of 3 runs recorded no energy" in result.output
    assert three_runs["c"] in result.output


def test_cost_init_and_prices_commands(home: Path) -> None:
    result = runner.invoke(app, ["cost", "init"])
    assert result.exit_code == 0, result.output
    assert (home / "prices.yaml").read_text() == EXAMPLE_YAML
    shown = json.loads(runner.invoke(app, ["cost", "prices", "-o", "json"]).output)
    assert shown["file"] is True
    assert shown["example"] is True
    (home / "prices.yaml").write_text(EXAMPLE_YAML.replace("pue: 1.4", "pue: -1"))
    with pytest.raises(PriceSheetError, match=r"prices.yaml line \d+: pue must be a number ≥ 1"):
        runner.invoke(app, ["cost", "report"], catch_exceptions=False)


def fake_run(metrics: dict[str, float], tags: dict[str, str]) -> Run:
    return Run(
        id="r1",
        project="p",
        name="n",
        status=RunStatus.FINISHED,
        parent_id=None,
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
        end_time=datetime(2026, 1, 1, 1, tzinfo=UTC),
        heartbeat_at=None,
        tags=tags,
        metrics=metrics,
    )


def test_a_total_alone_counts_as_measured_only_when_the_run_says_all() -> None:
    assert (
        usage_of(fake_run({"energy/total_joules": 5.0}, {"energy.measured": "all"})).measured_joules
        == 5.0
    )
    partial = usage_of(fake_run({"energy/total_joules": 5.0}, {"energy.measured": "partial"}))
    assert (partial.measured_joules, partial.estimated_joules) == (0.0, 5.0)
    unlabelled = usage_of(fake_run({"energy/cpu_joules": 2.0}, {}))
    assert unlabelled.estimated_joules == 2.0  # no source recorded: never counted as measured
    nan = usage_of(fake_run({"energy/cpu_joules": float("nan")}, {}))
    assert not nan.has_energy


def test_build_report_needs_no_store() -> None:
    sheet = load_prices()
    usage = RunUsage(
        run_id="r",
        name="n",
        project="p",
        parent_id=None,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=None,
        joules={"gpu0": 3.6e6},
        sources={"gpu0": "nvml-power"},
        gpu_seconds=7200,
    )
    report = build_report([usage], sheet)
    onprem = option(report, "on-premises")
    assert onprem.kwh_measured == pytest.approx(1.4)
    assert onprem.gpu_cost == pytest.approx(0.9)
    assert report.without_resources == ()
    assert json.dumps(report.to_dict())
    assert parse_prices(EXAMPLE_YAML).cloud == sheet.cloud

"""The study pages in-process (no browser), over studies run with the SDK on a real SQLite
store: a project's studies, a study's summary, plots' data, importance, trials linked to runs
and the cost to reach the best; hostile names are escaped; unknown studies are 404 pages that
name the nearest."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from markupsafe import escape

pytest.importorskip("fastapi", reason="the server extra (luminary[server]) is not installed")
pytest.importorskip("jinja2", reason="the server extra (luminary[server]) is not installed")
pytest.importorskip("optuna", reason="the tune extra (luminary[tune]) is not installed")

with warnings.catch_warnings():  # starlette warns that it prefers httpx2 to httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import luminary as lm
from luminary.server import create_app
from luminary.store import SqlStore, set_store

XSS = "<script>alert('s')</script>/x"
GPU_H = 0.5


def _objective(trial: object) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)  # type: ignore[attr-defined]
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)  # type: ignore[attr-defined]
    opt = trial.suggest_categorical("opt", ["adam", "sgd"])  # type: ignore[attr-defined]
    lm.log({"resources/gpu_hours": GPU_H})
    return (x - 0.5) ** 2 + lr + (0.1 if opt == "sgd" else 0.0)


def _pair(trial: object) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)  # type: ignore[attr-defined]
    y = trial.suggest_float("y", 0.0, 1.0)  # type: ignore[attr-defined]
    return x + y, (1.0 - x) ** 2 + y


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    set_store(s)  # the trials' runs are the SDK's: lm.log inside the objective writes here
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def client(store: SqlStore, tmp_path: Path) -> TestClient:
    return TestClient(create_app(store, tmp_dir=tmp_path, auth=False), base_url="http://127.0.0.1")


def _study_url(project: str, name: str) -> str:
    return f"/projects/{quote(project, safe='')}/studies/{quote(name, safe='')}"


def _data(page: str) -> dict:  # type: ignore[type-arg]
    found = re.search(r'<script type="application/json" id="study-data">(.*?)</script>', page)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_a_study_page_shows_summary_plots_importance_trials_and_cost(
    store: SqlStore, client: TestClient
) -> None:
    lm.tune.optimize(_objective, 12, study="width", project="cms", store=store, progress=False)
    record = store.get_study("cms", "width")
    trials = store.read_trials(record.id)
    best = min(trials, key=lambda t: t.values[0])  # type: ignore[index]
    page = client.get(_study_url("cms", "width"))
    assert page.status_code == 200
    text = page.text
    assert "complete 12" in text
    assert f'<a href="/runs/{best.run_id}">#{best.number}</a>' in text
    # every trial links to its run
    for t in trials:
        assert f'<a href="/runs/{t.run_id}">{t.run_id}</a>' in text
    # the objective plot's data: one point per trial and the best so far, falling
    data = _data(text)
    objective = data["objective"]
    assert objective["x"] == list(range(12))
    assert objective["best"][-1] == best.values[0]  # type: ignore[index]
    assert all(a >= b for a, b in zip(objective["best"], objective["best"][1:], strict=False))
    axes = {a["name"]: a for a in data["parallel"]["axes"]}
    assert axes["lr"]["log"] is True
    assert axes["opt"]["labels"] == ["adam", "sgd"]
    assert len(data["parallel"]["rows"]) == 12
    # importance by PED-ANOVA, one row per param
    assert (
        re.findall(
            r"<tr><td>(\w+)</td><td class=\"num\">[0-9.]+</td>",
            text.split('id="importance"')[1].split("</table>")[0],
        ).__len__()
        == 3
    )
    # cost to reach the best: the trials up to and including the best one's number
    cost = text.split('data-cost="to-best"')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num">([^<]*)</td>', cost)
    assert cells[0] == str(best.number + 1)
    assert float(cells[2]) == pytest.approx(GPU_H * (best.number + 1), rel=1e-3)
    total = text.split('data-cost="total"')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="num">([^<]*)</td>', total)
    assert cells[0] == "12"
    assert float(cells[2]) == pytest.approx(GPU_H * 12, rel=1e-3)
    joules = sum(store.get_run(t.run_id).metrics.get("energy/total_joules", 0.0) for t in trials)
    assert float(cells[1] or 0) == pytest.approx(joules, rel=1e-3, abs=1e-9)


def test_the_studies_list_and_the_project_pages_link_to_studies(
    store: SqlStore, client: TestClient
) -> None:
    lm.tune.optimize(_objective, 3, study="width", project="cms", store=store, progress=False)
    listing = client.get("/projects/cms/studies")
    assert listing.status_code == 200
    assert 'href="/projects/cms/studies/width"' in listing.text
    assert "complete 3" in listing.text
    assert 'href="/projects/cms/studies"' in client.get("/projects/cms").text
    assert 'href="/projects/cms/studies"' in client.get("/").text
    # a trial's run page names its study
    trial = store.read_trials(store.get_study("cms", "width").id)[0]
    run_page = client.get(f"/runs/{trial.run_id}").text
    assert 'id="run-study"' in run_page
    assert 'href="/projects/cms/studies/width"' in run_page
    empty = client.get("/projects/atlas/studies")
    assert empty.status_code == 404  # no such project
    store.ensure_project("atlas")
    assert "No studies yet" in client.get("/projects/atlas/studies").text


def test_a_two_objective_study_has_its_pareto_front(store: SqlStore, client: TestClient) -> None:
    lm.tune.optimize(_pair, 10, study="pair", project="cms", directions=["minimize", "minimize"],
                     store=store, progress=False)  # fmt: skip
    text = client.get(_study_url("cms", "pair")).text
    data = _data(text)
    trials = store.read_trials(store.get_study("cms", "pair").id)
    vals = {t.number: t.values for t in trials}

    def dominated(n: int) -> bool:
        a = vals[n]
        return any(
            all(b[i] <= a[i] for i in range(2)) and b != a  # type: ignore[index]
            for m, b in vals.items()
            if m != n
        )

    front = sorted(n for n in vals if not dominated(n))
    pareto = data["pareto"]
    on = [n for n, v in zip(pareto["numbers"], pareto["front"], strict=True) if v is not None]
    assert sorted(on) == front
    assert 'id="pareto-plot"' in text
    assert 'id="objective-plot"' not in text  # no single objective to plot per trial
    assert f"{len(front)} trial" in text.split('id="study-front"')[1]


def test_hostile_study_names_are_escaped(store: SqlStore, client: TestClient) -> None:
    lm.tune.optimize(_objective, 2, study=XSS, project="cms", store=store, progress=False)
    listing = client.get("/projects/cms/studies")
    assert listing.status_code == 200
    assert "<script>alert" not in listing.text
    assert str(escape(XSS)) in listing.text
    assert quote(XSS, safe="") in listing.text
    page = client.get(_study_url("cms", XSS))
    assert page.status_code == 200, page.text
    assert "<script>alert" not in page.text
    assert str(escape(XSS)) in page.text


def test_an_unknown_study_is_a_404_page_naming_the_nearest(
    store: SqlStore, client: TestClient
) -> None:
    lm.tune.optimize(_objective, 1, study="width", project="cms", store=store, progress=False)
    page = client.get("/projects/cms/studies/widht")
    assert page.status_code == 404
    assert "did you mean &#39;width&#39;?" in page.text
    assert client.get("/projects/nowhere/studies/width").status_code == 404

"""A study's page in a real browser: a study run with the SDK on a real SQLite store, served by
a real server; the objective and parallel-coordinates plots are drawn, and a trial's link leads
to its run's page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import luminary as lm
from luminary.store import SqlStore, set_store
from tests.integration.luminary_server import serve_in_thread
from tests.integration.ui.test_browser import _coloured_pixels

pytest.importorskip("optuna", reason="the tune extra (luminary[tune]) is not installed")

PROJECT, STUDY = "cms-btag", "width"


@dataclass
class Study:
    url: str
    store: SqlStore


def _objective(trial: Any) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    opt = trial.suggest_categorical("opt", ["adam", "sgd"])
    return (x - 0.5) ** 2 + (0.1 if opt == "sgd" else 0.0)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    tmp = tmp_path_factory.mktemp("study")
    store = SqlStore(f"sqlite:///{tmp / 'luminary.db'}", str(tmp / "blobs"))
    set_store(store)
    try:
        lm.tune.optimize(_objective, 10, study=STUDY, project=PROJECT, store=store, progress=False)
        with serve_in_thread(store, tmp / "spool", auth=False) as url:
            yield Study(url, store)
    finally:
        set_store(None)
        store.close()


def test_a_study_page_draws_its_plots_and_a_trial_leads_to_its_run(study: Study, page: Any) -> None:
    page.goto(f"{study.url}/projects/{PROJECT}/studies")
    page.get_by_role("link", name=STUDY).click()
    page.wait_for_url(re.compile(rf"/projects/{PROJECT}/studies/{STUDY}$"))
    page.wait_for_function("() => document.querySelector('#objective-plot canvas') !== null")
    assert page.locator("#objective-plot").get_attribute("data-points") == "10"
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
    assert _coloured_pixels(page) > 100  # the first canvas: the objective's points and line
    assert "best so far" in page.locator("#objective-plot").inner_text()
    assert page.locator("#parallel-plot").get_attribute("data-lines") == "10"
    assert page.locator("#importance tr").count() == 2
    trials = study.store.read_trials(study.store.get_study(PROJECT, STUDY).id)
    target = trials[3]
    page.locator(f"tr[data-trial='{target.number}']").get_by_role(
        "link", name=target.run_id
    ).click()
    page.wait_for_url(re.compile(rf"/runs/{target.run_id}$"))
    assert f"Trial #{target.number}" in page.locator("#run-study").inner_text()

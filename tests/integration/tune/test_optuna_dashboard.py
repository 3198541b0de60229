"""Optuna's dashboard, unchanged, reads studies from Luminary's storage over its own HTTP API."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

optuna = pytest.importorskip("optuna")
dashboard = pytest.importorskip("optuna_dashboard")

import luminary as lm  # noqa: E402
from luminary._net import free_port  # noqa: E402


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def dashboard_url() -> Iterator[str]:
    app = dashboard.wsgi(lm.tune.storage("hpo"))
    port = free_port()
    server = make_server("127.0.0.1", port, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def test_the_dashboard_lists_and_shows_a_luminary_study(dashboard_url: str) -> None:
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -2, 2)
        for step in range(3):
            trial.report(x * x + 1 / (step + 1), step)
        return x * x

    study = optuna.create_study(storage=lm.tune.storage("hpo"), study_name="dash")
    study.optimize(objective, n_trials=7)
    studies = _get(f"{dashboard_url}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["dash"]
    detail = _get(f"{dashboard_url}/api/studies/{study._study_id}?after=0")
    trials = detail["trials"]
    assert len(trials) == 7
    assert [t["number"] for t in trials] == list(range(7))
    best = min(trials, key=lambda t: t["values"][0])
    assert best["number"] == study.best_trial.number
    assert best["params"][0]["name"] == "x"
    assert len(best["intermediate_values"]) == 3

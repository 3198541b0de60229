"""Fixtures of the web UI's browser tests: a real server over a seeded SQLite store, and
Playwright driving Debian's Chromium (``/usr/bin/chromium``; never ``playwright install``).

Everything skips, with the reason, when Chromium or the ``playwright`` package is missing
(``.ci/run`` installs Debian's ``chromium``; the dev extra brings ``playwright``)."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from luminary.store import SqlStore
from luminary.tracking.models import RunStatus
from tests._components import import_component, require
from tests.integration.luminary_server import serve_in_thread

CHROMIUM = Path(os.environ.get("LUMINARY_TEST_CHROMIUM", "/usr/bin/chromium"))
PROJECT = "higgs"
MODEL = "jet-tagger"
XSS_NAME = "<script>alert(1)</script>"
LONG_POINTS = 2_000


@dataclass
class Site:
    """The seeded server: its base URL and the ids the tests navigate to."""

    url: str
    store: SqlStore
    project: str = PROJECT
    model: str = MODEL
    runs: dict[str, str] = field(default_factory=dict)  # run name -> id

    @property
    def xss_run(self) -> str:
        return self.runs[XSS_NAME]


def _write_series(store: SqlStore, run_id: str, series: dict[str, list[float]]) -> None:
    new = [(secrets.randbits(62), key) for key in series]
    points = [
        (sid, step, 1_700_000_000_000 + step * 1000, value)
        for (sid, key) in new
        for step, value in enumerate(series[key])
    ]
    store.write_metrics(run_id, new, points)


def seed(store: SqlStore) -> dict[str, str]:
    """A project with a few runs (params, tags, metric series; one with 2,000 points), a run
    named like a script, and a model with two versions and a ``production`` alias."""
    store.ensure_project(PROJECT)
    runs: dict[str, str] = {}
    specs: list[tuple[str, dict[str, Any]]] = [
        ("baseline", {"lr": 0.01, "batch": 64, "optimizer": "adam"}),
        ("wide", {"lr": 0.001, "batch": 128, "optimizer": "adam"}),
        ("deep", {"lr": 0.003, "batch": 32, "optimizer": "sgd"}),
        ("long", {"lr": 0.0005, "batch": 256, "optimizer": "adam"}),
        (XSS_NAME, {"lr": 0.02, "batch": 16, "optimizer": "sgd"}),
    ]
    for i, (name, params) in enumerate(specs):
        run = store.create_run(PROJECT, name=name, params=params, tags={"team": "tagging"})
        runs[name] = run.id
        n = LONG_POINTS if name == "long" else 50
        scale = 1.0 + i * 0.3
        _write_series(
            store,
            run.id,
            {
                "loss": [scale * math.exp(-s / (n / 4)) + 0.05 * math.sin(s / 7) for s in range(n)],
                "val_auc": [0.5 + 0.45 * (1 - math.exp(-s / (n / 5))) / scale for s in range(n)],
            },
        )
        store.set_run_status(run.id, RunStatus.FINISHED)
    blob = store.blobs.put_bytes(b"not really onnx")
    for version, source in ((1, "baseline"), (2, "long")):
        store.create_model_version(
            MODEL,
            project=PROJECT,
            digest=blob.digest,
            size=blob.size,
            format="onnx",
            filename="model.onnx",
            signature={},
            metadata={"version": version},
            source_run_id=runs[source],
            parent=f"{MODEL}@1" if version == 2 else None,
            description=f"version {version}",
            actor="alice",
        )
    store.set_alias(MODEL, "production", 1, "alice")
    store.set_alias(MODEL, "staging", 2, "alice")
    return runs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("ui")
    store = SqlStore(f"sqlite:///{tmp / 'luminary.db'}", str(tmp / "blobs"))
    try:
        runs = seed(store)
        with serve_in_thread(store, tmp, auth=False) as url:
            yield Site(url=url, store=store, runs=runs)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        require("chromium", f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    sync_api = import_component("playwright.sync_api", "chromium")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh 1280x800 page; fails the test on any JavaScript error or alert dialog."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.js_errors = errors
    page.dialogs = dialogs
    try:
        yield page
    finally:
        context.close()
    assert not dialogs, f"dialogs fired: {dialogs}"
    assert not errors, f"JavaScript errors: {errors}"

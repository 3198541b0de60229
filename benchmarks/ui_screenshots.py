"""Screenshots of the web UI's main pages for the docs, 1280x800, from Debian's Chromium.

    .venv/bin/python benchmarks/ui_screenshots.py [--out docs/screenshots]

Serves the browser tests' seeded store (tests/integration/ui/conftest.py: a project with a few
runs and metric series, a model with two versions and aliases) on a free loopback port and
saves ``runs.png``, ``run.png`` (with its chart), ``compare.png``, ``model.png`` and
``lineage.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.luminary_server import serve_in_thread  # noqa: E402
from tests.integration.ui.conftest import CHROMIUM, MODEL, PROJECT, seed  # noqa: E402

from luminary.store import SqlStore  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="luminary-ui-shots-") as tmp_s:
        tmp = Path(tmp_s)
        store = SqlStore(f"sqlite:///{tmp / 'luminary.db'}", str(tmp / "blobs"))
        try:
            runs = seed(store)
            shots = {
                "runs.png": f"/projects/{PROJECT}?cols=params.lr,params.optimizer,metrics.val_auc",
                "run.png": f"/runs/{runs['long']}",
                "compare.png": f"/compare?runs={runs['baseline']},{runs['long']}",
                "model.png": f"/models/{MODEL}",
                "lineage.png": LINEAGE.format(model=MODEL, version=2),
            }
            with serve_in_thread(store, tmp, auth=False) as url, sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                for name, path in shots.items():
                    page.goto(url + path)
                    page.wait_for_load_state("networkidle")
                    # charts.js marks each chart with data-points once uPlot has its data
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('div.chart')]"
                        ".every(e => e.dataset.points)"
                    )
                    page.screenshot(path=str(args.out / name))
                    print(f"{args.out / name}  <- {path}")
                browser.close()
        finally:
            store.close()
    return 0


LINEAGE = "/models/{model}/versions/{version}/lineage"

if __name__ == "__main__":
    raise SystemExit(main())

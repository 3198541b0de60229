"""The web UI in a real browser: Debian's Chromium driven by Playwright over a real server
(fixtures in conftest.py). Each test walks one thing a physicist does on the pages."""

from __future__ import annotations

import re
from typing import Any

from tests.integration.ui.conftest import LONG_POINTS, XSS_NAME, Site

ROWS = "#runs tbody tr"


def _rows(page: Any) -> int:
    return int(page.locator(ROWS).count())


def _charts_ready(page: Any) -> None:
    """Wait until charts.js has given every chart its data (it sets ``data-points``), and a
    frame more for uPlot to paint."""
    page.wait_for_function(
        "() => { const cs = [...document.querySelectorAll('div.chart')];"
        " return cs.length > 0 && cs.every(e => e.dataset.points && e.querySelector('canvas')); }"
    )
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")


def _coloured_pixels(page: Any) -> int:
    """Pixels of the first chart canvas whose colour is saturated: the plotted lines."""
    return int(
        page.evaluate(
            """() => {
              const c = document.querySelector('canvas');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0;
              for (let i = 0; i < d.length; i += 4) {
                const hi = Math.max(d[i], d[i + 1], d[i + 2]);
                const lo = Math.min(d[i], d[i + 1], d[i + 2]);
                if (d[i + 3] > 0 && hi - lo > 60) n++;
              }
              return n;
            }"""
        )
    )


def test_projects_lead_to_the_runs_table(site: Site, page: Any) -> None:
    page.goto(site.url + "/")
    page.get_by_role("link", name=site.project).first.click()
    page.wait_for_url(re.compile(rf"/projects/{site.project}"))
    assert _rows(page) == len(site.runs)
    for name in ("baseline", "wide", "deep", "long"):
        assert page.get_by_role("link", name=name, exact=True).count() >= 1


def test_filter_the_runs_table(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/projects/{site.project}")
    before = _rows(page)
    box = page.locator("form.filter input[name=filter]")
    box.fill("params.optimizer = 'adam' and params.lr < 0.005")
    box.press("Enter")
    page.wait_for_url(re.compile(r"filter="))
    page.wait_for_load_state()
    after = _rows(page)
    assert 0 < after < before
    assert after == 2  # wide and long
    assert page.get_by_role("link", name="baseline", exact=True).count() == 0
    assert box.input_value() == "params.optimizer = 'adam' and params.lr < 0.005"


def test_a_filter_syntax_error_shows_where(site: Site, page: Any) -> None:
    response = page.goto(f"{site.url}/projects/{site.project}?filter=params.lr+<<+1")
    assert response is not None
    assert response.status == 400
    assert "filter" in page.content().lower()


def test_open_a_run_and_see_its_chart(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/projects/{site.project}")
    with page.expect_response(lambda r: "/series/" in r.url) as series:
        page.get_by_role("link", name="long", exact=True).first.click()
        page.wait_for_url(re.compile(rf"/runs/{site.runs['long']}"))
    body = series.value.json()
    assert series.value.status == 200
    assert body["total_points"] == LONG_POINTS
    assert 0 < body["points"] <= LONG_POINTS
    assert len(body["steps"]) == len(body["values"]) == body["points"]
    _charts_ready(page)
    canvas = page.locator("div.chart canvas").first
    assert canvas.is_visible()
    box = canvas.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 50
    # the series' line is drawn: coloured pixels (axes, grid and labels are grey or black)
    assert _coloured_pixels(page) > 200
    assert page.get_by_text("lr").count() >= 1  # params are listed


def test_the_series_endpoint_downsamples_and_says_so(site: Site, page: Any) -> None:
    run = site.runs["long"]
    response = page.request.get(f"{site.url}/runs/{run}/series/loss?points=100")
    assert response.status == 200
    body = response.json()
    assert body["downsampled"] is True
    assert body["total_points"] == LONG_POINTS
    assert 0 < body["points"] <= 100
    assert body["steps"][0] == 0
    assert body["steps"][-1] == LONG_POINTS - 1
    assert body["steps"] == sorted(body["steps"])


def test_compare_two_runs_picked_in_the_table(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/projects/{site.project}")
    for name in ("baseline", "long"):
        page.locator(f"#runs input[type=checkbox][value='{site.runs[name]}']").check()
    with page.expect_response(lambda r: "/series/" in r.url):
        page.get_by_role("button", name="Compare selected").click()
        page.wait_for_url(re.compile(r"/compare\?"))
    _charts_ready(page)
    assert page.locator("div.chart").first.get_attribute("data-runs") in (
        f"{site.runs['baseline']},{site.runs['long']}",
        f"{site.runs['long']},{site.runs['baseline']}",
    )
    assert _coloured_pixels(page) > 200
    text = page.locator("body").inner_text()
    for shown in ("baseline", "long", "0.01", "0.0005"):  # the names, the differing lr values
        assert shown in text


def test_move_an_alias_and_see_the_history(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/models/{site.model}")
    history = page.locator("#alias-history tbody tr")
    before = history.count()
    form = page.locator("#move-alias")
    form.locator("[name=alias]").fill("production")
    form.locator("[name=version]").select_option("2")
    form.get_by_role("button", name="Move alias").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/models/{site.model}")
    # the history now has the move of production from 1 to 2
    assert history.count() == before + 1
    cells = [history.nth(i).locator("td").all_inner_texts() for i in range(history.count())]
    assert ["production", "1", "2"] in [c[1:4] for c in cells], cells
    aliases = page.locator("#aliases").inner_text()
    assert re.search(rf"production\s+{site.model}@2", aliases), aliases
    assert site.store.get_model_version(f"{site.model}@production").version == 2


def test_a_run_named_like_a_script_renders_as_text(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/projects/{site.project}")
    assert page.get_by_text(XSS_NAME).count() >= 1
    page.goto(f"{site.url}/runs/{site.xss_run}")
    assert page.get_by_text(XSS_NAME).count() >= 1
    page.wait_for_timeout(200)
    assert page.dialogs == []  # no alert() ran (the fixture also checks)


def test_a_model_versions_lineage_is_a_graph(site: Site, page: Any) -> None:
    page.goto(f"{site.url}/models/{site.model}")
    page.locator(f"a[href='/models/{site.model}/versions/2/lineage']").click()
    graph = page.locator("svg#lineage")
    graph.wait_for(state="visible")
    kinds = graph.locator("g.node").evaluate_all("gs => gs.map(g => g.getAttribute('class'))")
    assert any("run" in k.split() for k in kinds), kinds
    assert any("version" in k.split() for k in kinds), kinds
    assert graph.locator("line.edge").count() >= 1
    assert "long" in (graph.text_content() or "")  # the source run of version 2

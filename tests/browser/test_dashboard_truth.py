"""What the dashboard draws is true, from the first paint, at desktop and phone width.

Against a running demo (20 simulated chargers, load manager, simulated PV and utility), in headless
Chromium, looking at what is drawn rather than at which elements exist:

- first paint comes from the REST snapshot: with the live feed cut, the figures and the one-line
  diagram still show the site;
- the chart's canvas holds pixels in each line's colour (it used to draw axes and a legend only);
- the y axis fits the EV current and its limits, not a PV surplus far above them;
- the "Demand response" figure agrees with the events list when the utility's event is active.

Screenshots (desktop 1366 px and phone 390 px) go to test-artifacts/; with EVSITE_UPDATE_DOCS=1 they
also replace docs/dashboard.png and docs/dashboard-phone.png.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from evsite.api.tokens import Role, TokenStore
from evsite.demo import DemoOptions, running_demo
from evsite.optional import available
from evsite.site import load_site
from tests.browser.test_dashboard import ARTIFACTS, CHROMIUM_ARGS, wait_until
from tests.conftest import EXAMPLES, ROOT, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

COLOUR_PIXELS = """(colour) => {
  const canvas = document.querySelector('#chart');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const want = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 200 && want.every((v, k) => Math.abs(data[i + k] - v) < 24)) n += 1;
  }
  return n;
}"""


async def line_pixels(page: Any) -> int:
    """Pixels in the colour of any phase line (L1, L2, L3) on the chart's canvas."""
    return sum([await page.evaluate(COLOUR_PIXELS, c) for c in ("#0072b2", "#d55e00", "#009e73")])


async def open_dashboard(browser: Any, url: str, token: str, width: int, height: int, live: bool = True) -> Any:
    page = await browser.new_page(viewport={"width": width, "height": height})
    if not live:  # the live feed connects but never speaks: only the REST snapshot can fill the page
        await page.route_web_socket("**/api/v1/live", lambda ws: None)
    await page.goto(f"{url}/dashboard/#token={token}")
    await page.wait_for_selector("#app:not([hidden])", timeout=10_000)
    return page


async def test_dashboard_draws_the_truth(chromium_path: str, tmp_path: Any) -> None:
    from playwright.async_api import async_playwright

    if not available("openleadr"):
        pytest.skip("the demo's utility event needs the 'grid' extra (openleadr)")
    options = DemoOptions(load_site(EXAMPLES / "workplace-20.yaml"), speed=600, api_port=free_port(),
                          ocpp_port=free_port(), dr_after_s=8, dr_duration_s=120)  # fmt: skip
    async with running_demo(options, workdir=tmp_path) as demo, async_playwright() as pw:
        assert demo.runtime is not None and demo.runtime.db is not None
        viewer = await TokenStore(demo.runtime.db).create("browser-viewer", Role.VIEWER)
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            await wait_until_online(demo)
            cut = await open_dashboard(browser, demo.url, viewer, 1366, 900, live=False)
            await wait_until(cut, "document.querySelector('#kpi-connected').textContent.includes('/ 20')", 5_000)
            assert await cut.eval_on_selector_all("#oneline g.node", "nodes => nodes.length") > 5
            assert await cut.get_attribute("#chart", "data-points") == "1"  # the snapshot, and no live message
            assert await line_pixels(cut) > 3  # its one sample is marked on the chart
            await cut.close()

            page = await open_dashboard(browser, demo.url, viewer, 1366, 900)
            await wait_until(page, "Number(document.querySelector('#chart').dataset.points) >= 8", 20_000)
            await wait_until(page, "ui.history.some(p => ['L1', 'L2', 'L3'].some(l => p[l] > 5))", 30_000)
            await page.wait_for_timeout(1200)
            # Lines on equal current overlap (L3 is drawn last, on top): count the phase colours together.
            assert await line_pixels(page) > 100 and await page.evaluate(COLOUR_PIXELS, "#009e73") > 30
            fit = await page.evaluate(
                "() => { const keys = ['L1', 'L2', 'L3', 'limit', 'dr'];"
                " const top = Math.max(10, ...ui.history.flatMap(p => keys.map(k => p[k] ?? 0))) * 1.1;"
                " return [Number(document.querySelector('#chart').dataset.top), top,"
                " Math.max(0, ...ui.history.map(p => p.pv ?? 0))]; }"
            )
            assert fit[0] == pytest.approx(fit[1])  # the axis is the EV current and limits, whatever the PV does

            await wait_until(page, "(ui.drEvents || []).some(e => e.status === 'active')", 40_000)
            await page.wait_for_timeout(5_500)  # one slow refresh later, the figure must agree
            drs = await page.evaluate("() => ui.drEvents.map(e => e.status)")
            assert "active" in drs and (await page.text_content("#kpi-dr") or "").startswith("active"), drs

            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            await page.set_viewport_size({"width": 390, "height": 844})  # a phone, portrait
            await page.wait_for_timeout(1200)
            wide = await page.evaluate(
                "() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391"
                " && !e.closest('.oneline, .table-wrap')).map(e => e.tagName + '#' + e.id).slice(0, 8)"
            )
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, f"wider than a phone: {wide}"
            assert await line_pixels(page) > 30  # the chart redraws at the narrow width
            seen = await page.evaluate(
                "() => { const box = document.querySelector('#oneline').getBoundingClientRect();"
                " const node = document.querySelector('#oneline g[data-node=\"service\"]').getBoundingClientRect();"
                " return node.left >= box.left && node.right <= box.right; }"
            )
            assert seen, "at phone width the one-line diagram must open with the service in view"
            await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
            if os.environ.get("EVSITE_UPDATE_DOCS") == "1":
                shutil.copyfile(ARTIFACTS / "dashboard.png", ROOT / "docs" / "dashboard.png")
                shutil.copyfile(ARTIFACTS / "dashboard-phone.png", ROOT / "docs" / "dashboard-phone.png")
        finally:
            await browser.close()


async def wait_until_online(demo: Any, timeout_s: float = 20.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if demo.live is not None and sum(1 for v in demo.live.connected.values() if v) == 20:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the simulated chargers did not come online")

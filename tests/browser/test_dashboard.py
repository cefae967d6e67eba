"""The dashboard in headless Chromium against a running demo (OCPP chargers, load manager, API).

Loads the page as an operator, sees the 20 chargers and the live chart advance, sets a temporary
site limit through the form and waits for the load manager's allocation to drop below it.
Screenshots go to test-artifacts/; with EVSITE_UPDATE_DOCS=1 the overview also
replaces docs/dashboard.png (used by the README).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from evsite.api.tokens import Role, TokenStore
from evsite.demo import DemoOptions, running_demo
from evsite.site import load_site
from tests.conftest import EXAMPLES, ROOT, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]  # fmt: skip
LIMIT_A = 60


async def wait_until(page: Any, expression: str, timeout: int) -> None:
    """Poll `expression` in the page. (Playwright's wait_for_function evals a string in the page, which
    the dashboard's Content-Security-Policy rightly refuses; evaluate() runs it through the debugger.)"""
    deadline = asyncio.get_running_loop().time() + timeout / 1000
    while not await page.evaluate(f"() => ({expression})"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} ms waiting for {expression}")
        await asyncio.sleep(0.1)


async def test_dashboard_shows_live_site_and_operator_limit_takes_effect(chromium_path: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    options = DemoOptions(load_site(EXAMPLES / "workplace-20.yaml"), speed=600, api_port=free_port(),
                          ocpp_port=free_port())  # fmt: skip
    async with running_demo(options, workdir=tmp_path) as demo, async_playwright() as pw:
        assert demo.runtime is not None and demo.runtime.db is not None
        operator = await TokenStore(demo.runtime.db).create("browser-operator", Role.OPERATOR)
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 900})
            outside: list[str] = []
            page.on(
                "request",
                lambda r: (
                    outside.append(r.url)
                    if not r.url.startswith(demo.url.replace("http", "ws"))
                    and not r.url.startswith(demo.url)
                    and not r.url.startswith("data:")
                    else None
                ),
            )
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            # Anything the Content-Security-Policy blocks is reported as a securitypolicyviolation event.
            await page.add_init_script(
                "window.cspViolations = [];"
                "document.addEventListener('securitypolicyviolation',"
                " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            await page.goto(f"{demo.url}/dashboard/#token={operator}")
            await page.wait_for_selector("#app:not([hidden])", timeout=10_000)
            assert await page.text_content("#site-name") == "Workplace charging, 20 ports"

            await wait_until(
                page,
                "new Set([...document.querySelectorAll('.tile')].map(t => t.dataset.charger)).size === 20",
                timeout=15_000,
            )
            await wait_until(page, "document.querySelector('#kpi-connected').textContent === '20 / 20'",
                                         timeout=20_000)  # fmt: skip

            points = int(await page.get_attribute("#chart", "data-points") or 0)
            await wait_until(page, f"Number(document.querySelector('#chart').dataset.points) >= {points + 2}",
                                         timeout=5_000)  # fmt: skip

            # Enough EVs charging that the limit binds: the load manager must then cut allocations.
            await wait_until(
                page,
                "ui.state && ui.state.nodes.find(n => n.id === 'allocation' || n.id === 'service')"
                f".lines.some(l => l.allocated_a > {LIMIT_A})",
                timeout=30_000,
            )
            await page.fill("#limit-a", str(LIMIT_A))
            await page.select_option("#limit-node", "service")
            await page.fill("#limit-minutes", "30")
            await page.click("#limit-set")
            await wait_until(
                page,
                "document.querySelector('#limit-msg').textContent.startsWith('Limit 60 A on service')",
                timeout=5_000,
            )
            await wait_until(
                page,
                "ui.state.nodes.filter(n => n.id === 'allocation' || n.id === 'service')"
                f".every(n => n.lines.every(l => l.allocated_a <= {LIMIT_A} + 1e-6))",
                timeout=10_000,
            )
            assert "(manual)" in (await page.text_content("#kpi-limit") or "")
            await page.wait_for_timeout(1500)  # let the chart show the step down

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("EVSITE_UPDATE_DOCS") == "1":  # refresh the README picture on request
                shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
            await page.set_viewport_size({"width": 820, "height": 1180})  # tablet portrait
            await page.click("#tab-chargers")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-tablet-chargers.png"), full_page=True)
            assert outside == [], f"the dashboard made outside requests: {outside}"
            assert await page.evaluate("window.cspViolations") == []
            assert not [m for m in console_errors if "Content Security Policy" in m], console_errors
            # Bar widths and legend colours are set through the CSSOM (inline style attributes are refused).
            widths = await page.eval_on_selector_all(".tile .offered", "bars => bars.map(b => b.style.width)")
            assert widths and all(w.endswith("%") for w in widths)
            assert await page.eval_on_selector("#legend i", "i => i.style.borderTopColor") != ""
        finally:
            await browser.close()

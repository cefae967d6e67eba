"""The example statement and the summary page, rendered in headless Chromium: nothing overflows its cell.

Saves the pictures to test-artifacts/; with EVSITE_UPDATE_DOCS=1 also refreshes
docs/statement-example.png (the annotated example in docs/metering-billing.md).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from evsite.metering.statements import statements_html, summary_html
from tests.conftest import ROOT
from tests.metering.example_statement import example_run

pytestmark = [pytest.mark.browser]

ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# Cells whose content is wider than the cell (text running into the next column), by text.
OVERFLOWING = """() => [...document.querySelectorAll('td, th')]
    .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent)"""


async def test_statement_and_summary_lay_out_cleanly(chromium_path: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    run = example_run()
    (u101,) = [s for s in run.statements if s.unit_id == "U101"]
    pages = {
        "statement-example.png": statements_html(replace(run, statements=[u101])),
        "summary-example.png": summary_html(run),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    texts: dict[str, str] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 1200}, device_scale_factor=1)
            for name, html in pages.items():
                path = tmp_path / name.replace(".png", ".html")
                path.write_text(html, encoding="utf-8")
                await page.goto(path.as_uri())
                assert await page.evaluate(OVERFLOWING) == [], name
                await page.screenshot(path=str(ARTIFACTS / name), full_page=True)
                texts[name] = await page.evaluate("() => document.body.innerText")
        finally:
            await browser.close()
    statement, text = texts["statement-example.png"], texts["summary-example.png"]
    # local times carry their zone, so the repeated hour on 1 November reads as PDT, and the rate carries its unit
    assert "local, America/Los_Angeles (PDT, PST)" in statement and "2026-11-01 01:27 PDT" in statement
    assert "33 min\t× 1.50 USD/h\t0.83 USD" in statement and "98.51 USD\t× 7.25 %\t7.14 USD" in statement
    assert "Period 2026-11-01 00:00 PDT to 2026-12-01 00:00 PST (America/Los_Angeles)" in text
    assert "M-P1\t112.064\t46.800\t0.000\t65.264\t1.121\t64.890" in text and "within" in text
    if os.environ.get("EVSITE_UPDATE_DOCS") == "1":
        shutil.copyfile(ARTIFACTS / "statement-example.png", ROOT / "docs" / "statement-example.png")

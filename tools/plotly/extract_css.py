"""Writes static/vendor/plotly/plotly-dashflow.css: the global CSS rules the committed Plotly
bundle would otherwise inject as a <style> element, which the Content-Security-Policy
(style-src 'self') blocks. The pages link this file as
``<link rel="stylesheet" id="plotly.js-style-global" class="no-inline-styles">``, and
Plotly, finding that element, injects nothing (its own switch for strict CSP).

Run by build.sh after the bundle is built (needs the project's .venv with Playwright and
Debian's Chromium): it loads the bundle in a page without a policy and copies the rules.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent.parent
BUNDLE = ROOT / "static" / "vendor" / "plotly" / "plotly-dashflow.min.js"
OUT = BUNDLE.with_suffix("").with_suffix(".css")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def main() -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content("<!doctype html><html><head></head><body></body></html>")
        page.add_script_tag(content=BUNDLE.read_text())
        rules: list[str] = page.evaluate(
            """() => {
                const style = document.getElementById("plotly.js-style-global");
                // In the sheet's order (Plotly inserts each rule first), which is the
                // cascade order the injected sheet would have had.
                return [...style.sheet.cssRules].map((r) => r.cssText);
            }"""
        )
        browser.close()
    header = (
        f"/* The global rules of {BUNDLE.name}, copied by tools/plotly/extract_css.py so that "
        "Plotly\n   injects no <style> (Content-Security-Policy style-src 'self'). */\n"
    )
    OUT.write_text(header + "\n".join(rules) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(rules)} rules")


if __name__ == "__main__":
    main()

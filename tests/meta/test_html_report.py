"""report.html in a real browser (headless Chromium from the OS packages): it loads with no console
errors, a failing cell's diff opens from the matrix, and a filter hides what it should."""

from __future__ import annotations

import shutil

import pytest

from offload_conformance.harness.report.html import html_report
from tests.meta.documents import CAND

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html_report(CAND))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        # No network: any request that is not the file itself fails the page.
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        yield page, errors
        browser.close()


def test_loads_without_console_errors(page) -> None:  # type: ignore[no-untyped-def]
    p, errors = page
    assert p.title() == "offload-conformance"
    assert errors == []


def test_a_failing_cells_diff_opens_from_the_matrix(page) -> None:  # type: ignore[no-untyped-def]
    p, _ = page
    details = p.locator("details.cell", has_text="fx-full-upstream")
    assert not details.evaluate("d => d.open")
    p.locator("#matrix a.mark", has_text="shard-layout").first.click()
    assert details.evaluate("d => d.open")
    diff = details.locator("table.diff")
    assert diff.is_visible()
    row = diff.locator("tr", has_text="shard-layout").inner_text()
    # The tensor, and the file each side holds it in.
    assert "model.norm.weight" in row and "model-00001-of-00002" in row and "model-00002-of-00002" in row


def test_a_filter_hides_what_it_should(page) -> None:  # type: ignore[no-untyped-def]
    p, _ = page
    failing = p.locator("#cells tr[data-outcome='fail']")
    passing = p.locator("#cells tr[data-outcome='pass']")
    assert failing.count() == 1 and passing.count() == 2
    p.select_option("#filters select[name='outcome']", "fail")
    assert failing.first.is_visible()
    assert all(not passing.nth(i).is_visible() for i in range(passing.count()))
    assert not p.locator("#matrix a.mark[data-outcome='pass']").first.is_visible()
    p.select_option("#filters select[name='outcome']", "")
    assert passing.first.is_visible()

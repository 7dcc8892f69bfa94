"""The console in a real browser: Debian's headless Chromium driven by Playwright, against
a real uvicorn server on loopback.  Skipped without chromium or playwright (`.ci/run`
installs chromium; never `playwright install`: it would download a browser)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                                         "(apt-get install -y chromium)")


@pytest.fixture
def server(console):
    """A uvicorn server on a free loopback port, in a thread of this process."""
    import uvicorn
    from thinkforge.console.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(console.store.root, console.token_file), host="127.0.0.1",
                            port=port, log_level="warning")
    uvi = uvicorn.Server(config)
    thread = threading.Thread(target=uvi.run, daemon=True)
    thread.start()
    for _ in range(200):
        if uvi.started:
            break
        time.sleep(0.05)
    assert uvi.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    uvi.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def test_log_in_open_a_version_and_a_pair_run_a_query_and_watch_a_run(console, server, browser, tmp_path):
    from playwright.sync_api import expect
    from thinkforge.generators.runs import RunCheckpoint

    from .conftest import _answer

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(server + "/")
    assert page.locator("#token").is_visible()  # 401: the login form
    page.fill("#token", console.admin)
    page.click("#login")
    page.wait_for_selector("table.catalog")
    errors.clear()  # the first load's 401 is logged as a failed resource
    assert page.locator("table.catalog tbody tr").count() == 5

    page.click("text=math-sft@v1")
    page.wait_for_selector("h1:has-text('math-sft@v1')")
    page.click("#verify")  # the static script calls the API: it runs under the CSP
    page.wait_for_selector("#verify-result.ok")
    page.select_option("select[name=mode]", "on")
    page.click("text=Filter")
    page.wait_for_selector("text=3 rows match")

    page.click("a.pair >> nth=0")
    page.wait_for_selector("section.answer.on")
    reasoning = page.locator("details.reasoning pre")
    assert not reasoning.is_visible()  # collapsed until asked for
    page.click("details.reasoning summary")
    assert reasoning.is_visible() and "compute What is 2 + 3?" in reasoning.inner_text()
    assert page.locator("mark.gold").inner_text() == "5"
    page.screenshot(path=str(tmp_path / "pair.png"), full_page=True)

    page.goto(server + "/v/math-sft@v1/lineage")
    assert page.locator("svg.graph rect").count() == 3 and page.locator("svg.graph line").count() == 2
    page.screenshot(path=str(tmp_path / "lineage.png"))

    page.goto(server + "/v/math-sft@v2")  # a row full of <script>: shown, never run
    assert "<script>alert('x')</script>" in page.locator(".grid").inner_text()
    assert page.evaluate("document.scripts.length") == 1 and dialogs == []

    page.click("text=SQL")
    page.fill("#query", 'SELECT reasoning, count(*) AS n FROM "math-sft@v1" GROUP BY ALL ORDER BY 1')
    page.click("#run")
    page.wait_for_selector("#sql-summary")
    assert page.locator(".grid tbody tr").all_inner_texts() == ["off\t3", "on\t3"]
    page.screenshot(path=str(tmp_path / "sql.png"), full_page=True)

    page.click("text=Runs")
    cell = page.locator("tr[data-run=math-gen-1] td[data-k=done]")
    assert cell.inner_text() == "3 / 10"
    RunCheckpoint.attach(console.store.runs_dir / "math-gen-1").append(
        [_answer(f"k{i}", time.time()) for i in range(3, 10)])
    expect(cell).to_have_text("10 / 10", timeout=15_000)  # fetch() polling, no reload
    assert errors == [] and dialogs == []

    page.goto(server + "/v/math-sft@v1/pair/pair1")
    page.click("details.reasoning summary")
    shot = tmp_path / "console.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("THINKFORGE_CONSOLE_SCREENSHOT"):  # docs/img/console.png
        shutil.copyfile(shot, Path(target))
        shutil.copyfile(tmp_path / "lineage.png", Path(target).with_name("console-lineage.png"))

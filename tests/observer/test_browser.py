"""The page in a real browser (Playwright driving headless Chromium) against a live server.

It loads the page, sees the map drawn and the meters move, pauses and steps one tick, scrubs a
recording to another tick and back, and saves docs/observer.png, the screenshot that
docs/observer.md shows. Without Playwright or a Chromium the test is skipped with the reason,
never passed: CI installs Debian's chromium (.ci/run) because Playwright's own browser download
needs the internet.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ADMIN, Live

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def find_chromium() -> str | None:
    found = [p for p in CHROMIUM if Path(p).is_file()]
    return found[0] if found else shutil.which("chromium") or shutil.which("chromium-browser")


def meters_of(page: Any, slot: int) -> list[str]:
    return page.eval_on_selector_all(
        f'#agents .meter[data-slot="{slot}"]', "els => els.map(e => e.dataset.value)"
    )


def test_the_page_draws_pauses_and_steps(make_live: Callable[..., Live]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install chromium); the browser test cannot run")
    live = make_live(towns=2, agents=3, speed=50.0)
    live.source.start()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{live.http}/#token={ADMIN}")
            page.wait_for_function("document.getElementById('role').textContent === 'admin'")
            page.wait_for_function("Number(document.getElementById('tick').textContent) > 0")
            # the map is drawn: the canvas holds more than one colour
            colours = page.evaluate(
                """() => { const c = document.getElementById('map');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    const seen = new Set();
                    for (let i = 0; i < d.length; i += 64) seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);
                    return seen.size; }"""
            )
            assert colours > 5
            before = meters_of(page, 0)
            assert len(before) == 8
            page.wait_for_function(
                "before => JSON.stringify([...document.querySelectorAll('#agents .meter[data-slot=\"0\"]')]"
                ".map(e => e.dataset.value)) !== before",
                arg=str(before).replace("'", '"'),
            )
            page.click("#agents .agent")  # the inspector follows the first agent
            # some history for the inspector and lower meters, so that the screenshot shows them
            page.wait_for_function("Number(document.getElementById('tick').textContent) > 80")
            page.click("#pause")
            page.wait_for_function("!document.getElementById('play').disabled")
            paused = live.source.tick
            page.wait_for_function(f"Number(document.getElementById('tick').textContent) === {paused}")
            page.click("#step")
            page.wait_for_function(f"Number(document.getElementById('tick').textContent) === {paused + 1}")
            assert live.source.tick == paused + 1
            page.wait_for_selector("#inspector canvas#history")
            page.screenshot(path=str(ROOT / "docs" / "observer.png"))
        finally:
            browser.close()


def test_the_console_takes_over_an_agent_with_the_keyboard(make_live: Callable[..., Live]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install chromium); the browser test cannot run")
    live = make_live(towns=3, agents=1)
    live.source.paused = True
    live.source.start()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{live.http}/")
            # an empty token makes a viewer only when no viewer token is set: here it is refused
            page.wait_for_function("document.getElementById('status').textContent === 'a token is required'")
            page.fill("#token", ADMIN)
            page.click("#login button")
            page.wait_for_function("document.getElementById('role').textContent === 'admin'")
            page.fill("#watch", "2")
            page.click("#cmd-watch button")
            page.wait_for_function("document.getElementById('focus').value === '2'")
            page.fill("#control-slot", "2")
            page.click("#cmd-control button")
            page.wait_for_function(
                "document.getElementById('console-log').textContent.includes('controlled')"
            )
            page.click("#map")  # focus leaves the inputs: keys now steer the agent
            page.keyboard.press("e")
            page.wait_for_function("document.getElementById('console-log').textContent.includes('action')")
            page.click("#step")
            page.wait_for_function("Number(document.getElementById('tick').textContent) === 1")
            page.click("#release")
            page.wait_for_function("document.getElementById('console-log').textContent.includes('release')")
        finally:
            browser.close()
    lines = [json.loads(line) for line in live.audit.read_text().splitlines()]
    assert [line["command"]["command"] for line in lines] == ["watch", "control", "action", "step", "release"]
    assert lines[2]["command"]["action"] == "INTERACT" and all(line["accepted"] for line in lines)
    assert live.source.controlled is None and live.source.watched == [2]


def test_the_scrubber_seeks_in_a_recording(replay: Live) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install chromium); the browser test cannot run")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{replay.http}/#token={ADMIN}")
            page.wait_for_function("document.getElementById('role').textContent === 'admin'")
            page.wait_for_function("!document.getElementById('scrub-box').hidden")
            assert page.get_attribute("#scrub", "max") == "60"
            positions = {}
            for tick in (40, 7, 40):
                page.eval_on_selector(
                    "#scrub", f"el => {{ el.value = {tick}; el.dispatchEvent(new Event('change')); }}"
                )
                page.wait_for_function(f"Number(document.getElementById('tick').textContent) === {tick}")
                assert replay.source.tick == tick
                page.wait_for_function(f"Number(document.getElementById('scrub').value) === {tick}")
                seen = page.eval_on_selector_all(
                    '#agents .meter[data-slot="0"]', "els => els.map(e => e.dataset.value)"
                )
                positions.setdefault(tick, []).append(seen)
            assert positions[40][0] == positions[40][1] != positions[7][0]  # seeking back and forth agrees
        finally:
            browser.close()

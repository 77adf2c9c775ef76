"""The page in a real browser (Playwright driving headless Chromium) against a live server.

It loads the page, sees the map drawn and the meters move, pauses and steps one tick, scrubs a
recording to another tick and back, watches an L5 town (ties, queues, jobs, events and the
timeline, an event triggered from the console) and jumps to a timeline marker of an L5
recording, and saves docs/observer.png, the screenshot of the L5 town that docs/observer.md
shows. Without Playwright or a Chromium the test is skipped with the reason,
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

from townlet_env.cli import main
from townlet_env.observer.replay import ReplaySource
from townlet_env.observer.security import AuditLog, Tokens
from townlet_env.observer.server import ServerThread, create_app

from .conftest import ADMIN, TIMEOUT, VIEWER, Live

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


def launch(p: Any, chromium: str) -> Any:
    return p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])


def text_of(page: Any, selector: str) -> str:
    return str(page.eval_on_selector(selector, "el => el.textContent"))


def test_an_l5_town_shows_ties_queues_jobs_events_and_its_timeline(make_live: Callable[..., Live]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install chromium); the browser test cannot run")
    live = make_live(towns=2, agents=6, speed=20.0, level="L5_town", policy="scripted")
    live.source.start()
    names = list(live.source.town.event_names)
    with sync_api.sync_playwright() as p:
        browser = launch(p, chromium)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{live.http}/#token={ADMIN}")
            page.wait_for_function("Number(document.getElementById('tick').textContent) > 2")
            # the ties table: six agents, 30 directed ties; every agent card names its job
            assert len(page.query_selector_all("#ties td[data-from]")) == 30
            page.wait_for_function(
                "[...document.querySelectorAll('#agents .job')]"
                ".filter(e => !e.hidden && e.textContent).length === 6"
            )
            assert not page.is_hidden("#life") and not page.is_hidden("#cmd-event")
            assert page.query_selector("#queues li") is not None
            # the console triggers an event in the town shown: listed, counted down, marked
            page.select_option("#event-name", names[0])
            page.fill("#event-duration", "40")
            page.click("#cmd-event button")
            page.wait_for_selector(f'#active-events li[data-event="{names[0]}"]')
            first = text_of(page, f'#active-events li[data-event="{names[0]}"]')
            page.wait_for_function(
                "([name, first]) => { const li = document.querySelector("
                '`#active-events li[data-event="${name}"]`); return li && li.textContent !== first; }',
                arg=[names[0], first],
            )
            page.wait_for_selector("#timeline .marker.event_start")
            page.wait_for_function(
                "[...document.querySelectorAll('#events li')].some(li => li.dataset.kind === 'event_start')"
            )
            # the shift states move with the clock: wait for someone on shift, with some ties formed
            page.wait_for_function(
                "Number(document.getElementById('tick').textContent) > 100", timeout=120_000
            )
            shifts = page.eval_on_selector_all("#agents .job", "els => els.map(e => e.dataset.shift)")
            assert set(shifts) <= {"fired", "off", "absent", "due", "overdue", "on_time", "late"}
            page.click("#agents .agent")
            page.click("#pause")
            page.wait_for_function("!document.getElementById('play').disabled")
            page.screenshot(path=str(ROOT / "docs" / "observer.png"))
            # the event log names only agents of the town shown
            towns = page.eval_on_selector_all("#events li", "els => els.map(e => e.textContent)")
            shown = {f"agent {s}" for s in range(6)}
            assert all(any(f"{who} " in line for who in shown) or "town 0" in line for line in towns), towns
        finally:
            browser.close()
    lines = [json.loads(line) for line in live.audit.read_text().splitlines()]
    assert lines[0]["command"]["command"] == "trigger_event" and lines[0]["accepted"]


def test_the_scrubber_jumps_to_an_event_marker_of_an_l5_recording(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (apt-get install chromium); the browser test cannot run")
    path = tmp_path / "l5.townlet"
    argv = ["record", "--level", "L5_town", "--towns", "2", "--policy", "scripted", "--seed", "1"]
    assert main([*argv, "--ticks", "150", "-o", str(path)]) == 0
    source = ReplaySource(path, speed=0.0)
    source.paused = True
    app = create_app(source, Tokens(ADMIN, VIEWER), AuditLog(tmp_path / "audit.jsonl"))
    server = ServerThread(app).start()
    source.start()
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(p, chromium)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{server.port}/#token={ADMIN}")
                page.wait_for_function("!document.getElementById('scrub-box').hidden")
                # the first pass finds the markers of the whole recording, later ones included
                page.wait_for_selector("#timeline .marker.event_start", timeout=TIMEOUT * 1000)
                marker = page.query_selector_all("#timeline .marker.event_start")[-1]
                tick = int(marker.get_attribute("data-tick") or "0")
                assert tick > 0
                marker.click()
                page.wait_for_function(f"Number(document.getElementById('tick').textContent) === {tick}")
                page.wait_for_function(f"Number(document.getElementById('scrub').value) === {tick}")
                assert source.tick == tick
                # the event that started there is active in the state after it
                assert page.query_selector("#active-events li[data-event]") is not None
            finally:
                browser.close()
    finally:
        source.stop()
        source.join(TIMEOUT)
        server.stop()

"""L4 and L5 on the page: ties, queues, jobs, active events, exits with a reason and the timeline,
the admin's trigger and cancel of an event, and a replay that shows what the live run showed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from townlet_env.cli import build_parser, main
from townlet_env.core import Town
from townlet_env.observer import check_message, frames
from townlet_env.observer.cli import live_source
from townlet_env.observer.replay import ReplaySource

from .conftest import ADMIN, TIMEOUT, VIEWER, Live


def l5(make_live: Callable[..., Live]) -> Live:
    live = make_live(towns=2, agents=6, level="L5_town")
    live.source.paused = True
    live.source.start()
    return live


def test_an_l5_town_carries_ties_queues_jobs_and_events(make_live: Callable[..., Live]) -> None:
    live = l5(make_live)
    admin = live.client(ADMIN)
    hello = admin.recv()
    economy = hello["level"]["economy"]
    assert hello["level"]["social"] and "trigger_event" in hello["commands"]
    assert [e["name"] for e in economy["events"]] == list(live.source.town.event_names)
    assert economy["exit_reasons"][0] == "none" and len(economy["employers"]) == 2
    assert admin.command("step", n=30)["type"] == "ack"
    tick = admin.until("tick", lambda m: m["tick"] == 30)  # every message is checked by the client
    town = tick["towns"][0]
    assert len(town["ties"]["trust"]) == 6 and all(len(row) == 6 for row in town["ties"]["trust"])
    assert len(town["queues"]) == len(hello["level"]["affordances"])
    jobs = [a["job"] for a in town["agents"]]
    assert {j["employer"] for j in jobs} <= {0, 1} and all(
        j["shift"] in frames.life.SHIFT_STATES for j in jobs
    )
    assert all(isinstance(a["queue"], int) for a in town["agents"])
    assert tick["timeline"]["end"] == 30 and isinstance(town["events"], list)


def test_the_admin_triggers_and_cancels_an_event(make_live: Callable[..., Live]) -> None:
    live = l5(make_live)
    admin = live.client(ADMIN)
    names = list(live.source.town.event_names)
    name = next(n for n in names if "outage" in n)
    e = names.index(name)
    ack = admin.command("trigger_event", event=name, town=1, duration=7)
    assert ack["type"] == "ack" and ack["detail"]["duration"] == 7
    # applied at once, paused as the source is: the tick shows it without a step
    shown = admin.until("tick", lambda m: any(ev["event"] == e for ev in m["towns"][1].get("events", [])))
    assert shown["tick"] == 0 and shown["towns"][1]["events"][0]["left"] == 7
    assert not shown["towns"][0]["events"]  # only the town it named
    assert any(m["kind"] == "event_start" and m["event"] == e for m in shown["timeline"]["markers"])
    assert admin.command("step", n=2)["type"] == "ack"
    later = admin.until("tick", lambda m: m["tick"] == 2)
    assert later["towns"][1]["events"][0]["left"] == 5
    assert admin.command("cancel_event", event=name, town=1)["type"] == "ack"
    ended = admin.until("tick", lambda m: not m["towns"][1]["events"])
    assert any(m["kind"] == "event_end" and m["event"] == e for m in ended["timeline"]["markers"])
    lines = [json.loads(line) for line in live.audit.read_text().splitlines()]
    assert [(x["command"]["command"], x["accepted"]) for x in lines] == [
        ("trigger_event", True),
        ("step", True),
        ("cancel_event", True),
    ]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"event": "meteor", "town": 0}, "'event' must be one of "),
        ({"town": 0}, "'event' must be one of "),
        ({"event": "EVENT", "town": 2}, "'town' must be a whole number in [0, 1], got 2"),
        ({"event": "EVENT", "town": "0"}, "'town' must be a whole number in [0, 1]"),
        ({"event": "EVENT", "town": 0, "duration": 0}, "'duration' must be a whole number in [1, 10000]"),
        ({"event": "EVENT", "town": 0, "value": 3}, "'value' must be in [0, 2]"),
    ],
)
def test_a_bad_trigger_is_refused_naming_the_allowed_values(
    make_live: Callable[..., Live], args: dict[str, Any], reason: str
) -> None:
    live = l5(make_live)
    names = list(live.source.town.event_names)
    args = {k: names[0] if v == "EVENT" else v for k, v in args.items()}
    admin = live.client(ADMIN)
    msg = admin.command("trigger_event", **args)
    assert msg["type"] == "error" and reason in msg["reason"] and "\n" not in msg["reason"]
    if "meteor" in str(args) or "event" not in args:
        assert ", ".join(names) in msg["reason"]
    viewer = live.client(VIEWER)
    assert viewer.command("trigger_event", event=names[0], town=0)["type"] == "error"
    assert live.source._event_commands == []
    lines = [json.loads(line) for line in live.audit.read_text().splitlines()]
    assert [x["accepted"] for x in lines] == [False, False]


def test_a_level_without_events_offers_no_trigger(live: Live) -> None:
    admin = live.client(ADMIN)
    assert "trigger_event" not in admin.recv()["commands"]
    msg = admin.command("trigger_event", event="x", town=0)
    assert msg["type"] == "error" and "unknown command" in msg["reason"]


def serve_args(*extra: str) -> Any:
    argv = ["serve", "--level", "L5_town", "--towns", "2", "--policy", "scripted", "--seed", "1"]
    return build_parser().parse_args([*argv, "--speed", "0", *extra])


def test_a_replay_shows_what_the_live_run_showed(tmp_path: Path) -> None:
    """The same seed and policy through `serve` and through `record`: the replay's timeline (found
    by its first pass) is the live run's, and its towns at the last tick are the live ones."""
    ticks = 150
    source = live_source(serve_args())
    source.max_ticks = ticks
    source.watched = [0, 1]
    source.start()
    assert source.finished.wait(TIMEOUT * 5)
    live_markers = list(source._markers)
    kinds = {m["kind"] for m in live_markers}
    assert {"event_start", "event_end"} <= kinds, kinds
    path = tmp_path / "l5.townlet"
    argv = ["record", "--level", "L5_town", "--towns", "2", "--policy", "scripted", "--seed", "1"]
    assert main([*argv, "--ticks", str(ticks), "-o", str(path)]) == 0
    replay = ReplaySource(path, watched=[0, 1], speed=0.0)
    replay.scan.start()
    replay.scan.join(TIMEOUT * 5)
    assert replay.scan.done and replay.scan.error is None
    assert replay.scan.markers == live_markers
    timeline = replay.timeline([0, 1])
    assert timeline["end"] == ticks and timeline["known"] == ticks
    replay.replayer.seek(ticks)
    town: Town = replay.replayer.town
    assert frames.town_objects(town, town.view([0, 1]), None) == frames.town_objects(
        source.town, source.town.view([0, 1]), None
    )
    msg = json.loads(source._last_text or "{}")
    assert check_message({**msg, "dropped": 0}) == []


def test_a_timeline_keeps_the_markers_nearest_the_cursor() -> None:
    from townlet_env.observer.life import MAX_MARKERS, nearest

    markers = [{"kind": "death", "tick": t, "town": t % 2, "slot": 0} for t in range(2000)]
    near = nearest(markers, [0], 1000)
    assert len(near) == MAX_MARKERS and all(m["town"] == 0 for m in near)
    assert [m["tick"] for m in near] == sorted(m["tick"] for m in near)
    assert near[0]["tick"] >= 1000 - MAX_MARKERS and near[-1]["tick"] <= 1000 + MAX_MARKERS


def test_the_view_adds_queue_positions_job_facts_and_event_time() -> None:
    """What the page reads from `Town.view` agrees with the env's own `info` of the same state."""
    import torch

    from townlet_env.observer.source import random_policy

    k = 6
    town = Town("L5_town", 3 * k)
    now = town.reset(seed=2)
    town.trigger_event(1, "rent_spike", duration=9, value=1.5)
    e = town.event_names.index("rent_spike")
    view = town.view([1])
    assert view.event_left is not None and view.event_value is not None and view.events is not None
    assert int(view.event_left[0, e]) == 9 and abs(float(view.event_value[0, e]) - 1.5) < 1e-6
    assert torch.equal(view.event_left[0] > 0, view.events[0])
    policy = random_policy(0)
    seen: set[str] = set()
    for _ in range(200):
        now = town.step(policy(now))
        view = town.view([0, 2])
        slots = torch.cat([torch.arange(k), torch.arange(2 * k, 3 * k)])
        info = {**town.social_info(), **town.economy_info()}
        for name, key in (
            ("queue_position", "queue_position"),
            ("absences", "absences"),
            ("firings", "firings"),
        ):
            assert torch.equal(getattr(view, name).flatten(), info[key][slots]), name
        jobs = [j for i in range(2) for j in frames.life.jobs(town.level, view, i) or []]
        status, employed = info["shift_status"][slots].tolist(), info["employed"][slots].tolist()
        for j, job in enumerate(jobs):
            assert (job["shift"] == "fired") == (not employed[j])
            assert job["shift"] not in ("on_time", "late") or status[j] == ("_", "on_time", "late").index(
                job["shift"]
            )
            seen.add(job["shift"])
    assert {"off", "on_time"} <= seen <= set(frames.life.SHIFT_STATES), seen


def test_an_l4_town_carries_ties_and_queues_but_no_jobs(make_live: Callable[..., Live]) -> None:
    live = make_live(towns=1, agents=6, level="L4_social")
    live.source.paused = True
    live.source.start()
    admin = live.client(ADMIN)
    hello = admin.recv()
    assert hello["level"]["social"] and hello["level"]["economy"] is None
    assert "trigger_event" not in hello["commands"]
    town = admin.until("tick")["towns"][0]
    assert len(town["ties"]["rivalry"]) == 6 and "queues" in town and "events" not in town
    assert all("queue" in a and "job" not in a for a in town["agents"])

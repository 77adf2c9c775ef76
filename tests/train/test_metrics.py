"""Metrics of a short run: SQLite in WAL mode with one row per finished episode per slot, the
affordance tables, and TensorBoard scalars."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_train.run.checkpoint import latest_checkpoint, load_checkpoint
from townlet_train.run.metrics import SCHEMA, Metrics

SCALARS = [
    "train/loss",
    "train/td_error",
    "train/q_mean",
    "train/grad_norm",
    "explore/epsilon",
    "episode/mean_survival",
    "curriculum/mean_stage",
    "explore/intrinsic_per_step",
    "meters/energy",
    "meters/health",
]


@pytest.fixture(scope="module")
def db(cli_run: dict[str, Any]) -> sqlite3.Connection:
    assert cli_run["code"] == 0, cli_run["stdout"]
    connection = sqlite3.connect(cli_run["dir"] / "metrics.db")
    connection.row_factory = sqlite3.Row
    yield connection
    connection.close()


def test_sqlite_is_in_wal_mode(db: sqlite3.Connection) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_one_row_per_finished_episode_per_slot(cli_run: dict[str, Any], db: sqlite3.Connection) -> None:
    rows = db.execute("SELECT * FROM episodes ORDER BY id").fetchall()
    payload = load_checkpoint(latest_checkpoint(cli_run["dir"] / "checkpoints"))
    assert len(rows) == payload["counters"]["episodes"] >= 24
    num_envs = cli_run["num_envs"]
    # with one agent per town, a slot's episodes follow each other: the lengths of its finished
    # episodes add up to the env step at which the last one ended
    lived: dict[int, int] = defaultdict(int)
    for row in rows:
        assert 0 <= row["slot"] < num_envs
        assert 1 <= row["steps_survived"] <= cli_run["max_steps"]
        lived[row["slot"]] += row["steps_survived"]
        assert lived[row["slot"]] * num_envs == row["agent_steps"], dict(row)
        assert row["terminated"] in (0, 1)
        assert row["terminated"] == 1 or row["steps_survived"] == cli_run["max_steps"]  # truncated
    assert len(lived) == num_envs
    assert {row["terminated"] for row in rows} == {0, 1}


def test_episode_row_contents(db: sqlite3.Connection) -> None:
    env = TownletVectorEnv("L1_full_observability", 1)
    rows = db.execute("SELECT * FROM episodes").fetchall()
    for row in rows:
        # L1 reward is energy x health in [0, 1] per tick, 0 on the tick of death
        assert 0 < row["extrinsic_reward"] <= row["steps_survived"]
        assert row["intrinsic_reward"] > 0  # RND is on
        assert row["total_reward"] == pytest.approx(
            row["extrinsic_reward"] + row["intrinsic_reward"], rel=1e-5
        )
        assert row["curriculum_stage"] in (0, 1)
        assert row["difficulty"] == pytest.approx([3.0, 4.5][row["curriculum_stage"]])
        assert 0.0 <= row["epsilon"] <= 1.0
        meters = json.loads(row["final_meters"])
        assert list(meters) == env.meter_names
        assert all(0.0 <= v <= 1.0 for v in meters.values())
        if row["terminated"]:  # died: a terminal meter ran out
            assert min(meters["energy"], meters["health"]) == 0.0
    assert {row["curriculum_stage"] for row in rows} == {0, 1}
    epsilons = [row["epsilon"] for row in db.execute("SELECT epsilon FROM episodes ORDER BY id")]
    assert epsilons == sorted(epsilons, reverse=True) and epsilons[0] > epsilons[-1]
    walls = [row["wall_seconds"] for row in db.execute("SELECT wall_seconds FROM episodes ORDER BY id")]
    assert walls == sorted(walls) and walls[0] >= 0.0  # seconds of training, in the order written


def test_affordance_tables(db: sqlite3.Connection) -> None:
    names = set(TownletVectorEnv("L1_full_observability", 1).affordance_names)
    visits = db.execute("SELECT agent_steps, affordance, visits FROM affordance_visits").fetchall()
    assert visits and {v["affordance"] for v in visits} <= names
    assert all(v["visits"] > 0 for v in visits)
    last = max(v["agent_steps"] for v in visits)
    assert len({v["affordance"] for v in visits if v["agent_steps"] == last}) >= 3
    moves = db.execute("SELECT source, target, count FROM affordance_transitions").fetchall()
    assert moves and all(m["source"] in names and m["target"] in names and m["count"] > 0 for m in moves)


def test_tensorboard_scalars(cli_run: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    directory = cli_run["dir"] / "tensorboard"
    assert any(directory.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    missing = [tag for tag in SCALARS if tag not in tags]
    assert not missing, f"missing scalars {missing}; have {sorted(tags)}"
    for tag in SCALARS:
        values = [e.value for e in events.Scalars(tag)]
        assert values, tag
        if tag != "episode/mean_survival":  # NaN until the first episode ends
            assert all(math.isfinite(v) for v in values), tag
    assert all(e.step <= cli_run["total_steps"] for e in events.Scalars("train/loss"))
    assert any(e.value > 0 for e in events.Scalars("explore/intrinsic_per_step"))


def test_training_scalars_are_logged_once_per_logged_update(cli_run: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(cli_run["dir"] / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    payload = load_checkpoint(latest_checkpoint(cli_run["dir"] / "checkpoints"))
    # log_every_updates is 1 in this run: at most one train/loss point per gradient update
    assert 0 < len(events.Scalars("train/loss")) <= payload["updates"]


def test_wall_seconds_go_on_from_the_rows_a_resume_keeps(tmp_path: Path) -> None:
    rows = {
        "slot": torch.tensor([0]),
        "steps": torch.tensor([5]),
        "terminated": torch.tensor([True]),
        **{k: torch.tensor([0.5]) for k in ("total", "extrinsic", "intrinsic", "difficulty", "epsilon")},
        "stage": torch.tensor([0]),
        "meters": torch.tensor([[0.1]]),
    }
    metrics = Metrics(tmp_path, ["energy"], tensorboard=False)
    metrics.clock_offset = 100.0  # as if the run had trained 100 s before
    metrics.episodes(10, rows)
    metrics.episodes(20, rows)
    metrics.close()
    with sqlite3.connect(tmp_path / "metrics.db") as db:
        db.execute("UPDATE episodes SET wall_seconds = 150.0 WHERE agent_steps = 20")
    resumed = Metrics(tmp_path, ["energy"], tensorboard=False)
    assert resumed.rewind(10) == 1  # the row after the checkpoint goes, and its seconds with it
    assert 100.0 <= resumed.wall_seconds() < 150.0
    resumed.close()


def test_a_database_from_before_wall_seconds_gains_the_column(tmp_path: Path) -> None:
    old_schema = SCHEMA.replace(",\n    wall_seconds REAL", "")
    assert "wall_seconds" not in old_schema
    with sqlite3.connect(tmp_path / "metrics.db") as db:
        db.executescript(old_schema)
        db.execute("INSERT INTO episodes VALUES (NULL, 8, 0, 8, 1, 1.0, 1.0, 0.0, 0, 1.0, 0.5, '{}')")
    metrics = Metrics(tmp_path, ["energy"], tensorboard=False)
    metrics.rewind(8)
    assert metrics.wall_seconds() < 60.0  # the old row has no seconds: training time starts at 0
    metrics.close()
    with sqlite3.connect(tmp_path / "metrics.db") as db:
        assert db.execute("SELECT agent_steps, wall_seconds FROM episodes").fetchall() == [(8, None)]


def test_progress_without_a_terminal_prints_a_plain_line_every_30_seconds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from townlet_train.run import progress

    clock = [1000.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    shown = progress.Progress(enabled=True, total=1000)
    assert shown.plain and shown.live is None  # pytest's stderr is not a terminal
    summary = {"episodes": 3, "mean_survival": 41.5, "mean_stage": 0.5, "epsilon": 0.25}
    for step in range(0, 100):
        clock[0] += 1.0  # one second per update: 100 seconds in all
        shown.update(step * 10, summary, {"loss": 0.125})
    shown.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3  # at 30, 60 and 90 seconds
    assert (
        lines[0].startswith("agent-steps 290/1,000")
        and "survival 41.5" in lines[0]
        and "loss 0.1250" in lines[0]
    )

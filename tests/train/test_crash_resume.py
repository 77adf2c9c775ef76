"""Nothing lost, nothing doubled: a run killed at any moment and resumed ends exactly as the run
that was never interrupted (episode rows, weights, env state), and a second trainer on the same
run directory is turned away without disturbing the first."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_train import cli
from townlet_train.run import checkpoint as ckpt
from townlet_train.run.checkpoint import load_checkpoint
from townlet_train.run.loop import Trainer
from townlet_train.run.metrics import Metrics, MetricsError

from .helpers import (
    checkpoint_steps,
    config_file,
    short_level,
    tiny_config,
    train_process,
    wait_for_checkpoint,
)
from .test_resume import MOVING_CURRICULUM, episodes_after, final_payload


def stateful_config(tmp_path: Path, **overrides: Any) -> Path:
    """Everything with state (prioritized replay kept in checkpoints, RND, a moving curriculum)."""
    return config_file(
        tmp_path / "train.yaml",
        level=str(short_level(tmp_path, max_steps=40)),
        algorithm__replay__kind="prioritized",
        exploration__rnd__enabled=True,
        checkpoint__include_replay=True,
        algorithm__replay_ratio=1.0,
        **MOVING_CURRICULUM,
        **overrides,
    )


def assert_same_end(a: dict, b: dict) -> None:
    for part in ("network", "target_network"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key} differs"
    assert a["counters"] == b["counters"]
    for key, value in a["env"]["state"].items():
        assert torch.equal(value, b["env"]["state"][key]), f"env state {key} differs"
    assert torch.equal(a["env"]["generator"], b["env"]["generator"])
    assert torch.equal(a["curriculum"]["stage"], b["curriculum"]["stage"])


def duplicate_keys(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "metrics.db") as db:
        query = "SELECT COUNT(*) - COUNT(DISTINCT agent_steps || ':' || slot) FROM episodes"
        return int(db.execute(query).fetchone()[0])


# --- metrics follow the checkpoints ------------------------------------------------------------


def test_rows_are_committed_before_each_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_config(
        level=str(short_level(tmp_path, max_steps=20)),
        checkpoint__every_steps=200,
        total_steps=1024,
        algorithm__learning_starts=10**9,
    )
    trainer = Trainer(cfg, tmp_path / "run")
    save, seen = ckpt.save_checkpoint, []

    def save_after_looking(payload: dict, *args: Any, **kwargs: Any) -> Path:
        with sqlite3.connect(tmp_path / "run" / "metrics.db") as db:  # another reader sees only commits
            seen.append((db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0], payload["counters"]))
        return save(payload, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_checkpoint", save_after_looking)
    trainer.run()
    assert len(seen) >= 3 and seen[-1][1]["agent_steps"] == cfg.total_steps
    assert seen[-1][1]["episodes"] > 0
    assert all(rows == counters["episodes"] for rows, counters in seen)


def test_a_crash_after_a_checkpoint_leaves_no_duplicate_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state a crash leaves: rows committed well past the last checkpoint that was written."""
    config = stateful_config(tmp_path, checkpoint__every_steps=256)
    common = ["--config", str(config), "--total-steps", "1024", "--no-progress"]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert cli.main(["train", *common, "--run-dir", str(straight)]) == 0
    assert cli.main(["train", *common, "--run-dir", str(crashed)]) == 0
    for step in (768, 1024):  # as if the process had died before writing these two
        path = crashed / "checkpoints" / f"step_{step:012d}.pt"
        path.unlink()
        path.with_name(path.name + ".sha256").unlink()
    past_the_checkpoint = len(episodes_after(crashed, 512))
    assert past_the_checkpoint >= 10
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(crashed), "--total-steps", "1024", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"removed {past_the_checkpoint} episode rows written after agent-step 512" in out
    assert episodes_after(crashed, 0) == episodes_after(straight, 0)
    assert duplicate_keys(crashed) == 0
    assert_same_end(final_payload(straight), final_payload(crashed))


def test_the_episode_key_is_unique_and_old_duplicates_are_dropped(tmp_path: Path) -> None:
    rows = {
        "slot": torch.tensor([0, 1]),
        "steps": torch.tensor([5, 6]),
        "terminated": torch.tensor([True, False]),
        **{
            k: torch.tensor([0.5, 0.25]) for k in ("total", "extrinsic", "intrinsic", "difficulty", "epsilon")
        },
        "stage": torch.tensor([0, 0]),
        "meters": torch.tensor([[0.1], [0.2]]),
    }
    metrics = Metrics(tmp_path, ["energy"], tensorboard=False)
    metrics.episodes(32, rows)
    with pytest.raises(MetricsError, match="UNIQUE"):
        metrics.episodes(32, rows)
    metrics.close()
    # a database written before the key existed, holding a crash's duplicates
    with sqlite3.connect(tmp_path / "metrics.db") as db:
        db.execute("DROP INDEX episode_end")
        db.execute(
            "INSERT INTO episodes SELECT NULL, agent_steps, slot, steps_survived + 1, "
            "terminated, total_reward, extrinsic_reward, intrinsic_reward, curriculum_stage, "
            "difficulty, epsilon, final_meters, wall_seconds FROM episodes"
        )
    Metrics(tmp_path, ["energy"], tensorboard=False).close()
    assert duplicate_keys(tmp_path) == 0
    with sqlite3.connect(tmp_path / "metrics.db") as db:  # the newest copy of each stays
        assert db.execute("SELECT steps_survived FROM episodes ORDER BY slot").fetchall() == [(6,), (7,)]


# --- SIGKILL at a random moment ------------------------------------------------------------------


def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed twice (once in the first run, once in the resumed one) at moments drawn from a fixed
    seed. Saves come every 20 env steps and, in between, every 0.05 s (wherever the clock says),
    so kills land in saves, between them, in metrics commits and right after a resume."""
    config = stateful_config(
        tmp_path, checkpoint__every_steps=320, checkpoint__every_seconds=0.05, checkpoint__keep=3
    )
    killed = tmp_path / "killed"
    draw = random.Random(20261128)
    trainer = train_process(
        "train",
        "--config",
        str(config),
        "--run-dir",
        str(killed),
        "--total-steps",
        str(10**9),
        "--no-progress",
    )
    for cycle in range(2):
        # after the first checkpoint of the fresh run; after the resume line of the resumed one
        if cycle == 0:
            wait_for_checkpoint(trainer, killed)
        else:
            assert trainer.stdout.readline().startswith(f"resuming {killed}")
        time.sleep(draw.uniform(0.0, 0.8))
        trainer.send_signal(signal.SIGKILL)
        trainer.communicate(timeout=60)
        assert trainer.returncode == -signal.SIGKILL, "the trainer ended before it was killed"
        if cycle == 0:
            trainer = train_process(
                "train", "--resume", str(killed), "--total-steps", str(10**9), "--no-progress"
            )
    # four more lives of every slot (max_steps 40, 16 slots) past the newest checkpoint, however
    # far the killed runs got on a busy machine: enough episode rows to compare
    total = max(checkpoint_steps(killed)) + 4 * 16 * 40
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(killed), "--total-steps", str(total), "--no-progress"]) == 0
    straight = tmp_path / "straight"
    argv = ["train", "--config", str(config), "--run-dir", str(straight), "--total-steps", str(total)]
    assert cli.main([*argv, "--no-progress"]) == 0
    rows = episodes_after(straight, 0)
    assert len(rows) >= 50 and {r[3] for r in rows} == {0, 1}
    assert episodes_after(killed, 0) == rows
    assert_same_end(final_payload(straight), final_payload(killed))
    assert not list((killed / "checkpoints").glob(".*.tmp"))  # the interrupted saves' leftovers


# --- one trainer per run directory ---------------------------------------------------------------


def test_a_second_trainer_is_turned_away_and_the_first_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path / "train.yaml", checkpoint__every_steps=160)
    run_dir = tmp_path / "run"
    first = train_process(
        "train",
        "--config",
        str(config),
        "--run-dir",
        str(run_dir),
        "--total-steps",
        str(10**9),
        "--no-progress",
    )
    try:
        wait_for_checkpoint(first, run_dir)
        for argv in (
            ["train", "--resume", str(run_dir)],
            ["train", "--resume", str(run_dir), "--device", "cpu"],
        ):
            code = cli.main([*argv, "--no-progress"])
            _, err = capsys.readouterr()
            assert code == 2 and "Traceback" not in err
            (line,) = err.strip().splitlines()
            assert line == (
                f"error: {run_dir} is in use by another trainer (pid {first.pid}); wait for it to "
                "finish or stop it (Ctrl-C or SIGTERM saves a checkpoint), then --resume"
            )
        assert first.poll() is None, "the first trainer should still be running"
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "error" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] == "SIGTERM"
    assert f"stopped by SIGTERM at {summary['agent_steps']:,} agent-steps" in err
    payload = load_checkpoint(Path(summary["checkpoint"]))
    assert payload["counters"]["agent_steps"] == summary["agent_steps"]
    assert not episodes_after(run_dir, summary["agent_steps"]) and duplicate_keys(run_dir) == 0
    # the lock went with the process: the run resumes
    total = str(summary["agent_steps"] + 160)
    assert cli.main(["train", "--resume", str(run_dir), "--total-steps", total, "--no-progress"]) == 0

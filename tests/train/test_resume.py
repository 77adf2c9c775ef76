"""Resume determinism on CPU: a run interrupted and resumed from a checkpoint produces the same
episodes and the same final weights as the run that was never interrupted."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_train import cli
from townlet_train.run.checkpoint import latest_checkpoint, load_checkpoint
from townlet_train.run.loop import Trainer

from .helpers import config_file, network_of, network_shapes, short_level, tiny_config

EPISODE_COLUMNS = (
    "agent_steps, slot, steps_survived, terminated, total_reward, extrinsic_reward, intrinsic_reward, "
    "curriculum_stage, difficulty, epsilon, final_meters"
)


def episodes_after(run_dir: Path, step: int) -> list[tuple]:
    with sqlite3.connect(run_dir / "metrics.db") as db:
        return db.execute(
            f"SELECT {EPISODE_COLUMNS} FROM episodes WHERE agent_steps > ? ORDER BY agent_steps, slot",
            (step,),
        ).fetchall()


def resumed_beside_whole(cfg: Any, tmp_path: Path, middle: int, end: int) -> tuple[dict, dict]:
    """Train `cfg` to `end` agent-steps in a/, and again in b/ from a's checkpoint at `middle`;
    check that b's episodes after `middle` are a's, and return (a's, b's) final checkpoints."""
    from townlet_train.trainers import make_trainer

    make_trainer(cfg, tmp_path / "a").run()
    b = make_trainer(cfg, tmp_path / "b")
    b.load_state_dict(load_checkpoint(tmp_path / "a" / "checkpoints" / f"step_{middle:012d}.pt"))
    b.run()
    rows = episodes_after(tmp_path / "a", middle)
    assert len(rows) >= 10 and episodes_after(tmp_path / "b", middle) == rows
    a_final, b_final = (
        load_checkpoint(tmp_path / run / "checkpoints" / f"step_{end:012d}.pt") for run in ("a", "b")
    )
    return a_final, b_final


def final_payload(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))


def assert_same_state(a: dict, b: dict) -> None:
    for part in ("network", "target_network"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs"
    assert a["counters"] == b["counters"]
    assert torch.equal(a["env"]["state"]["meters"], b["env"]["state"]["meters"])
    assert torch.equal(a["curriculum"]["stage"], b["curriculum"]["stage"])


# Episodes of at most 40 ticks; the stage moves after every episode: up while slots live to
# the end, down at the hardest stage, where they starve in about 20 ticks.
MOVING_CURRICULUM = {
    "curriculum__stages": [0.5, 2.0, 5.0],
    "curriculum__window": 1,
    "curriculum__min_episodes": 1,
    "curriculum__advance_survival": 0.9,
    "curriculum__retreat_survival": 0.6,
    "curriculum__advance_entropy": 100.0,
}


def test_cli_interrupted_run_matches_uninterrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prioritized replay, RND, n-step and a moving curriculum: everything with state."""
    cfg = config_file(
        tmp_path / "train.yaml",
        level=str(short_level(tmp_path, max_steps=40)),
        algorithm__replay__kind="prioritized",
        exploration__rnd__enabled=True,
        checkpoint__include_replay=True,
        algorithm__replay_ratio=1.0,
        **MOVING_CURRICULUM,
    )
    half, total = 512, 2048
    common = ["--config", str(cfg), "--num-envs", "16", "--no-progress"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert cli.main(["train", *common, "--total-steps", str(total), "--run-dir", str(straight)]) == 0
    assert cli.main(["train", *common, "--total-steps", str(half), "--run-dir", str(interrupted)]) == 0
    assert (
        cli.main(["train", "--resume", str(interrupted), "--total-steps", str(total), "--no-progress"]) == 0
    )
    out = capsys.readouterr().out
    assert f"resuming {interrupted}" in out and f"at {half:,} agent-steps" in out

    rows = episodes_after(straight, half)
    assert len(rows) >= 10, "too few episodes after the checkpoint for a meaningful comparison"
    assert len({r[7] for r in rows}) > 1, "the curriculum should move during the run"
    assert {r[3] for r in rows} == {0, 1}, "both terminations and truncations should occur"
    assert episodes_after(interrupted, half) == rows
    assert episodes_after(interrupted, 0) == episodes_after(straight, 0)  # and before it
    assert_same_state(final_payload(straight), final_payload(interrupted))


def test_trainer_resume_matches_and_the_comparison_is_sensitive(tmp_path: Path) -> None:
    """Uniform replay, Polyak target, two agents per town; resumed from a mid-run checkpoint."""
    cfg = tiny_config(
        level=str(short_level(tmp_path, max_steps=40)),
        env__agents_per_town=2,
        checkpoint__include_replay=True,
        checkpoint__every_episodes=12,
        algorithm__target={"kind": "polyak", "tau": 0.05},
        algorithm__n_step=2,
        total_steps=1536,
        **MOVING_CURRICULUM,
    )
    a = Trainer(cfg, tmp_path / "a")
    a.run()
    steps = sorted(
        int(p.stem.removeprefix("step_")) for p in (tmp_path / "a" / "checkpoints").glob("step_*.pt")
    )
    # a checkpoint after learning has started, with a lot left to run
    step = next(s for s in steps if 256 < s < 1536 - 256)
    middle = tmp_path / "a" / "checkpoints" / f"step_{step:012d}.pt"

    b = Trainer(cfg, tmp_path / "b")
    b.load_state_dict(
        load_checkpoint(middle, level_hash=b.env.level.content_hash, network_shapes=network_shapes(b))
    )
    assert b.counters["agent_steps"] == step
    b.run()
    rows = episodes_after(tmp_path / "a", step)
    assert len(rows) >= 10
    assert episodes_after(tmp_path / "b", step) == rows
    for key, value in network_of(a).state_dict().items():
        assert torch.equal(network_of(b).state_dict()[key], value), key

    # the same resume with the exploration RNG not restored diverges: the check has teeth
    c = Trainer(cfg, tmp_path / "c")
    c.load_state_dict(load_checkpoint(middle))
    c.rng.manual_seed(12345)
    c.run()
    assert episodes_after(tmp_path / "c", step) != rows


def test_recurrent_resume_matches(tmp_path: Path) -> None:
    """The LSTM path: sequence replay, the collector's window ring and the actor's carried state."""
    level = short_level(tmp_path, max_steps=40, base="L2_partial_observability")
    cfg = tiny_config(
        level=str(level),
        network__kind="lstm",
        network__lstm_hidden=16,
        network__sequence_length=8,
        network__burn_in=4,
        algorithm__replay__capacity=512,
        checkpoint__include_replay=True,
        checkpoint__every_episodes=16,
        total_steps=1536,
    )
    a = Trainer(cfg, tmp_path / "a")
    a.run()
    steps = sorted(int(p.stem.removeprefix("step_")) for p in (tmp_path / "a" / "checkpoints").glob("*.pt"))
    step = next(s for s in steps if 256 < s < 1536 - 256)
    b = Trainer(cfg, tmp_path / "b")
    path = tmp_path / "a" / "checkpoints" / f"step_{step:012d}.pt"
    b.load_state_dict(load_checkpoint(path, network_shapes=network_shapes(b)))
    b.run()
    rows = episodes_after(tmp_path / "a", step)
    assert len(rows) >= 16
    assert episodes_after(tmp_path / "b", step) == rows
    assert a.agent.updates == b.agent.updates > 0
    for key, value in network_of(a).state_dict().items():
        assert torch.equal(network_of(b).state_dict()[key], value), key

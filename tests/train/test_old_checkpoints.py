"""Checkpoints written by the trainer before the redesign of issue 27 (commit c710b9f; made by
tests/fixtures/old_checkpoints/make.py): every kind still loads, evaluates to the figures that
trainer's `eval` reported, and a run continues from it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from townlet_train import cli
from townlet_train.policy import checkpoint_config
from townlet_train.run.checkpoint import load_checkpoint
from townlet_train.run.metrics import Metrics
from townlet_train.trainers import make_trainer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "old_checkpoints"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
KINDS = sorted(EXPECTED["results"])


def test_every_kind_is_here() -> None:
    assert set(KINDS) == {
        "bc",
        "dagger_lstm",
        "dagger_map",
        "dagger_mlp",
        "dqn_dueling",
        "dqn_lstm",
        "ppo_lstm",
        "ppo_mlp",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_an_old_checkpoint_evaluates_to_its_recorded_figures(kind: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["eval", "--checkpoint", str(FIXTURES / f"{kind}.pt"), *EXPECTED["eval_args"]]) == 0
    assert json.loads(out.getvalue().splitlines()[-1]) == EXPECTED["results"][kind]


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "bc"])
def test_a_run_continues_from_an_old_checkpoint(kind: str, tmp_path: Path) -> None:
    path = FIXTURES / f"{kind}.pt"
    payload = load_checkpoint(path)
    cfg = checkpoint_config(path, payload)
    trainer = make_trainer(cfg, tmp_path / "run")
    trainer.load_state_dict(payload)
    steps = trainer.counters["agent_steps"]
    metrics = Metrics(trainer.run_dir, list(trainer.env.meter_names), False)
    try:
        for _ in range(4):
            trainer.collect(metrics)
            trainer.learn()
    finally:
        metrics.abandon()
    assert trainer.counters["agent_steps"] == steps + 4 * cfg.env.num_envs

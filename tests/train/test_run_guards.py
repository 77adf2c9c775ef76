"""What stops a run early instead of wasting it: a diverged update (NaN or inf) ends the run with
one `error:` line and no checkpoint of the diverged weights; configs that could never learn are
refused; every algorithm saves and resumes with `checkpoint.include_replay`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_env.config import ConfigError
from townlet_train import cli
from townlet_train.run.checkpoint import checkpoints_newest_first, load_checkpoint
from townlet_train.run.loop import DivergedError, Trainer
from townlet_train.trainers import make_trainer

from .helpers import tiny_config

ALGORITHMS = {
    "dqn": {},
    "ppo": {"algorithm": {"kind": "ppo", "rollout_steps": 8, "minibatch_size": 64, "epochs": 1}},
    "dagger": {"algorithm": {"kind": "dagger", "learning_starts": 64, "batch_size": 64, "capacity": 512}},
}


@pytest.mark.parametrize("kind", list(ALGORITHMS))
def test_a_diverged_update_stops_the_run_and_keeps_the_last_good_checkpoint(
    kind: str, tmp_path: Path
) -> None:
    cfg = tiny_config(total_steps=4096, checkpoint__every_steps=512, **ALGORITHMS[kind])
    trainer = make_trainer(cfg, tmp_path / "run")
    learn = trainer.learn

    def poisoned() -> dict[str, float]:
        stats = learn()
        if trainer.counters["agent_steps"] >= 1200:  # after two good saves, the weights turn NaN
            with torch.no_grad():
                next(trainer.agent.online.parameters()).fill_(float("nan"))
        return stats

    trainer.learn = poisoned  # type: ignore[method-assign]
    with pytest.raises(DivergedError, match=r"training diverged at agent-step .*the last good checkpoint is"):
        trainer.run()
    saved = checkpoints_newest_first(tmp_path / "run" / "checkpoints")
    assert saved and all(int(p.stem.removeprefix("step_")) <= 1200 for p in saved)
    for path in saved:
        load_checkpoint(path)  # verifies, and refuses non-finite learned tensors


def test_the_cli_reports_divergence_in_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from townlet_train.run import loop

    original = loop.Trainer.learn

    def diverging(self: loop.Trainer) -> dict[str, float]:
        stats = original(self)
        return {**stats, "loss": float("nan")} if stats else stats

    monkeypatch.setattr(loop.Trainer, "learn", diverging)
    config = tmp_path / "c.yaml"
    import yaml

    cfg = tiny_config(total_steps=1024)
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    code = cli.main(["train", "--config", str(config), "--run-dir", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: training diverged at agent-step")
    assert "loss nan" in err[0]


@pytest.mark.parametrize("kind", list(ALGORITHMS))
def test_include_replay_saves_and_resumes_every_algorithm(kind: str, tmp_path: Path) -> None:
    cfg = tiny_config(total_steps=512, checkpoint__include_replay=True, **ALGORITHMS[kind])
    path = Path(make_trainer(cfg, tmp_path / "a").run()["checkpoint"])
    payload = load_checkpoint(path)
    assert ("replay" in payload) == (kind != "ppo")  # PPO's rollout is in every checkpoint anyway
    again = make_trainer(cfg, tmp_path / "b")
    again.load_state_dict(payload)
    assert again.counters == make_trainer(cfg, tmp_path / "c").counters | payload["counters"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"algorithm": {"kind": "dagger", "capacity": 100, "learning_starts": 2048}},
            "algorithm.capacity 100 is below algorithm.learning_starts 2048",
        ),
        (
            {"algorithm__replay__capacity": 16, "algorithm__batch_size": 32},
            "replay.capacity 16 is below algorithm.batch_size",
        ),
        ({"algorithm__target": {"every": 10**30}}, "algorithm.target.every"),
    ],
)
def test_configs_that_could_never_learn_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


def test_the_evaluation_callback_keeps_best_and_changes_nothing_learned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import sqlite3

    plain = make_trainer(tiny_config(total_steps=1024), tmp_path / "plain")
    plain.run()
    cfg = tiny_config(total_steps=1024, evaluation={"every_steps": 256, "episodes": 4})
    evaluated = make_trainer(cfg, tmp_path / "eval")
    result = evaluated.run()
    for key, value in plain.agent.online.state_dict().items():  # the callback never disturbs learning
        assert torch.equal(evaluated.agent.online.state_dict()[key], value), key
    with sqlite3.connect(tmp_path / "eval" / "metrics.db") as db:
        rows = db.execute(
            "SELECT agent_steps, episodes, difficulty, mean_survival FROM evaluations"
        ).fetchall()
    assert [r[0] for r in rows] == [256, 512, 768, 1024] and all(r[1:3] == (4, 1.0) for r in rows)
    assert result["eval"] == rows[-1][3]
    best = load_checkpoint(tmp_path / "eval" / "checkpoints" / "best.pt")
    assert best["best_eval"] == max(r[3] for r in rows)
    capsys.readouterr()
    command = ["eval", "--checkpoint", str(tmp_path / "eval" / "best"), "--episodes", "4", "--json"]
    assert cli.main(command) == 0
    assert json.loads(capsys.readouterr().out)["mean_survival"] == best["best_eval"]


def test_callbacks_see_every_env_step_and_every_evaluation(tmp_path: Path) -> None:
    from townlet_train.run.callbacks import Callback

    class Recorder(Callback):
        def __init__(self) -> None:
            self.steps: list[int] = []
            self.evaluations: list[tuple[int, float]] = []

        def after_step(self, trainer: Any, stats: dict[str, float]) -> None:
            self.steps.append(trainer.counters["agent_steps"])

        def after_evaluation(self, trainer: Any, result: dict[str, Any]) -> None:
            self.evaluations.append((trainer.counters["agent_steps"], result["mean_survival"]))

    cfg = tiny_config(total_steps=1024, evaluation={"every_steps": 256, "episodes": 2})
    recorder = Recorder()
    Trainer(cfg, tmp_path / "run").run(callbacks=[recorder])
    per_step = cfg.env.num_envs * cfg.env.agents_per_town
    assert recorder.steps == list(range(per_step, 1024 + 1, per_step))
    with sqlite3.connect(tmp_path / "run" / "metrics.db") as db:
        rows = db.execute("SELECT agent_steps, mean_survival FROM evaluations").fetchall()
    assert recorder.evaluations == rows and len(rows) == 4

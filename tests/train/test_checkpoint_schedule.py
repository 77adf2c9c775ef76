"""When checkpoints are written: by agent-steps, by wall-clock time, on SIGINT and SIGTERM, and
never so rarely that a crash loses more than a few minutes of a built-in config's training."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_train import cli
from townlet_train.config import CONFIG_DIR, load_config
from townlet_train.run import schedule as schedule_module
from townlet_train.run.checkpoint import load_checkpoint
from townlet_train.run.loop import Trainer

from .helpers import checkpoint_steps, config_file, tiny_config

NO_LEARNING = {"algorithm__learning_starts": 10**9}  # the schedule is what these tests are about


def test_saves_every_steps_at_the_first_step_past_each_multiple(tmp_path: Path) -> None:
    # 16 slots: agent-steps go 16, 32, ...; 100, 200, 300 are crossed at 112, 208, 304
    cfg = tiny_config(checkpoint__every_steps=100, total_steps=16 * 23, **NO_LEARNING)
    Trainer(cfg, tmp_path / "run").run()
    assert checkpoint_steps(tmp_path / "run") == [112, 208, 304, 368]


def test_saves_every_seconds_of_wall_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock is the trainer's own progress: every env step takes 3 s of fake time."""
    cfg = tiny_config(checkpoint__every_seconds=10, total_steps=16 * 14, **NO_LEARNING)
    trainer = Trainer(cfg, tmp_path / "run")
    monkeypatch.setattr(schedule_module, "monotonic", lambda: trainer.counters["agent_steps"] / 16 * 3.0)
    trainer.run()
    # 12 s since the last save after every 4th env step, and the final save
    assert checkpoint_steps(tmp_path / "run") == [64, 128, 192, 224]


def test_every_episodes_still_counts_and_the_first_limit_reached_wins(tmp_path: Path) -> None:
    from .helpers import short_level

    # all 16 slots end their 20-tick episodes together: 16 episodes at 320 and at 640 agent-steps
    cfg = tiny_config(
        level=str(short_level(tmp_path, max_steps=20)),
        checkpoint__every_episodes=16,
        checkpoint__every_steps=256,
        total_steps=16 * 45,
        **NO_LEARNING,
    )
    Trainer(cfg, tmp_path / "run").run()
    assert checkpoint_steps(tmp_path / "run") == [256, 320, 512, 640, 720]


@pytest.mark.parametrize("config", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_builtin_configs_lose_at_most_a_few_minutes(config: Path) -> None:
    settings = load_config(config).checkpoint
    assert settings.every_seconds <= 300
    assert settings.every_steps <= load_config(config).total_steps


@pytest.fixture
def sigterm_fails_the_test() -> Any:
    """Without the trainer's handler a SIGTERM would end the whole test session."""

    def fail(number: int, frame: Any) -> None:
        raise AssertionError("SIGTERM reached the default handler")

    previous = signal.signal(signal.SIGTERM, fail)
    yield
    signal.signal(signal.SIGTERM, previous)


def interrupt_at_step(trainer: Trainer, step: int, number: int) -> None:
    """Deliver `number` to this process in the middle of env step `step` (during learning)."""
    learn, calls = trainer.learn, [0]

    def learn_then_signal() -> dict[str, float]:
        calls[0] += 1
        if calls[0] == step:
            signal.raise_signal(number)
        return learn()

    trainer.learn = learn_then_signal  # type: ignore[method-assign]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.usefixtures("sigterm_fails_the_test")
def test_a_stop_signal_finishes_the_step_saves_and_restores_the_handlers(tmp_path: Path, number: int) -> None:
    before = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    trainer = Trainer(tiny_config(total_steps=10**9), tmp_path / "run")
    interrupt_at_step(trainer, 7, number)
    result = trainer.run()
    assert result["interrupted"] == signal.Signals(number).name
    assert result["agent_steps"] == 7 * 16  # the step in progress was finished, no other begun
    payload = load_checkpoint(Path(result["checkpoint"]))
    assert payload["counters"]["agent_steps"] == 7 * 16
    assert {n: signal.getsignal(n) for n in before} == before


def test_ctrl_c_through_the_cli_says_where_the_checkpoint_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    learn = Trainer.learn
    calls = [0]

    def learn_then_ctrl_c(self: Trainer) -> dict[str, float]:
        calls[0] += 1
        if calls[0] == 5:
            signal.raise_signal(signal.SIGINT)
        return learn(self)

    monkeypatch.setattr(Trainer, "learn", learn_then_ctrl_c)
    argv = ["train", "--config", str(config_file(tmp_path / "train.yaml")), "--run-dir", str(run_dir)]
    assert cli.main([*argv, "--total-steps", str(10**9), "--no-progress"]) == 128 + signal.SIGINT
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert "stopped by SIGINT at 80 agent-steps" in line
    assert str(run_dir / "checkpoints" / "step_000000000080.pt") in line and f"--resume {run_dir}" in line
    monkeypatch.undo()
    assert cli.main(["train", "--resume", str(run_dir), "--total-steps", "160", "--no-progress"]) == 0


def test_a_second_signal_abandons_the_save_and_leaves_the_checkpoints_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = signal.getsignal(signal.SIGINT)
    run_dir = tmp_path / "run"
    trainer = Trainer(tiny_config(checkpoint__every_steps=64, total_steps=128), run_dir)
    trainer.run()
    directory = run_dir / "checkpoints"
    saved = {p.name: p.read_bytes() for p in directory.iterdir()}
    assert len(saved) == 4  # two checkpoints and their digests

    real_save = torch.save

    def save_interrupted_halfway(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        signal.raise_signal(signal.SIGINT)  # the second Ctrl-C, while the first one's save runs
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_interrupted_halfway)
    interrupt_at_step(trainer, 3, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(10**9)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == saved  # no temporary file either
    for name in saved:
        if name.endswith(".pt"):
            load_checkpoint(directory / name)
    assert signal.getsignal(signal.SIGINT) is before

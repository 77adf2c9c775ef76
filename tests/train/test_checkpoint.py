"""Checkpoints: atomic writes, full contents, weights-only loading, and one clear CheckpointError
(and, through the CLI, one `error:` line and exit status 2) for each way a file can be wrong."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from townlet_train.run.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from townlet_train.run.loop import Trainer, write_resolved_config

from .helpers import network_of, network_shapes, one_error, replay_of, short_level, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny trained run with one checkpoint (replay and RND included)."""
    run_dir = tmp_path_factory.mktemp("ckpt_run")
    cfg = tiny_config(total_steps=1024, checkpoint__include_replay=True, exploration__rnd__enabled=True)
    write_resolved_config(cfg, run_dir)
    trainer = Trainer(cfg, run_dir)
    result = trainer.run()
    return {"dir": run_dir, "cfg": cfg, "trainer": trainer, "path": Path(result["checkpoint"])}


def copy_run(run: dict[str, Any], dest: Path) -> Path:
    shutil.copytree(run["dir"], dest)
    return dest


def only_checkpoint(run_dir: Path) -> Path:
    (path,) = sorted((run_dir / "checkpoints").glob("*.pt"))
    return path


# --- contents ----------------------------------------------------------------------------------


def test_contents(run: dict[str, Any]) -> None:
    trainer, path = run["trainer"], run["path"]
    payload = load_checkpoint(
        path, level_hash=trainer.env.level.content_hash, network_shapes=network_shapes(trainer)
    )
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["counters"]["agent_steps"] == trainer.counters["agent_steps"] == 1024
    assert payload["counters"]["episodes"] == trainer.counters["episodes"]
    assert abs(payload["timestamp"] - time.time()) < 3600
    assert payload["config"] == run["cfg"].model_dump(mode="json")
    assert payload["level_hash"] == trainer.env.level.content_hash
    for key, value in network_of(trainer).state_dict().items():
        assert torch.equal(payload["network"][key], value)
    assert set(payload["target_network"]) == set(payload["network"])
    assert payload["optimizer"]["state"], "optimizer state (Adam moments) is missing"
    assert set(payload["curriculum"]) >= {"stage", "survival", "entropy"}
    assert set(payload["rng"]) >= {"torch", "trainer"}
    assert torch.equal(payload["env"]["state"]["meters"], trainer.env.state.meters)
    assert torch.equal(payload["env"]["generator"], trainer.env.state_dict()["generator"])
    replay = replay_of(trainer)
    assert payload["replay"]["size"] == len(replay) > 0
    assert torch.equal(payload["replay"]["reward"], replay.reward[: len(replay)])
    assert "rnd" in payload
    # plain torch.load with weights_only=True reads it: no pickled code runs on load
    assert torch.load(path, weights_only=True)["counters"] == payload["counters"]


def test_replay_is_left_out_unless_asked_for(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(checkpoint__include_replay=False), tmp_path)
    assert "replay" not in load_checkpoint(trainer.save())


def test_writes_are_atomic(run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = copy_run(run, tmp_path / "run")
    good = only_checkpoint(run_dir)
    before = good.read_bytes()
    trainer = run["trainer"]

    def broken_save(obj: object, f: Any, *args: object, **kwargs: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(trainer.state_dict(), run_dir / "checkpoints", "step_000000099999", keep=3)
    with pytest.raises(OSError):  # overwriting the existing checkpoint's name fails cleanly too
        save_checkpoint(trainer.state_dict(), run_dir / "checkpoints", good.stem, keep=3)
    monkeypatch.undo()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [good.name, good.name + ".sha256"]
    assert good.read_bytes() == before  # the old checkpoint is intact and still verifies
    load_checkpoint(good)
    assert latest_checkpoint(run_dir / "checkpoints") == good


def test_keep_prunes_oldest_and_latest_is_highest_step(tmp_path: Path) -> None:
    for step in (10, 200, 30, 4000):
        save_checkpoint({"network": {}}, tmp_path, f"step_{step:012d}", keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    # pruned by step, not by the order they were written in
    assert names == [
        "step_000000000200.pt",
        "step_000000000200.pt.sha256",
        "step_000000004000.pt",
        "step_000000004000.pt.sha256",
    ]
    assert latest_checkpoint(tmp_path).name == "step_000000004000.pt"
    assert latest_checkpoint(tmp_path / "nowhere") is None


def test_a_checkpoint_is_a_file_a_run_directory_or_its_best(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for step in (100, 2000):
        save_checkpoint({"network": {}}, run_dir / "checkpoints", f"step_{step:012d}", keep=3)
    newest = run_dir / "checkpoints" / "step_000000002000.pt"
    assert resolve_checkpoint(run_dir) == newest
    assert resolve_checkpoint(newest) == newest
    given = tmp_path / "elsewhere.pt"  # a file is taken as given: loading it reports what is wrong
    assert resolve_checkpoint(given) == given
    with pytest.raises(CheckpointError, match=r"^--checkpoint \S+/run/best: no \S+best.pt \(set evaluation"):
        resolve_checkpoint(run_dir / "best")
    save_checkpoint({"network": {}}, run_dir / "checkpoints", "best", keep=3)
    assert resolve_checkpoint(run_dir / "best") == run_dir / "checkpoints" / "best.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"^--learned \S+/empty: a directory without checkpoints/\*"):
        resolve_checkpoint(tmp_path / "empty", "--learned")


# --- every way a checkpoint can be wrong ---------------------------------------------------------


def test_corrupt_file(run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = copy_run(run, tmp_path / "run")
    path = only_checkpoint(run_dir)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_checkpoint(path)
    assert "SHA-256" in one_error(["eval", "--checkpoint", str(path), "--episodes", "2"], capsys)
    assert "SHA-256" in one_error(["train", "--resume", str(run_dir), "--no-progress"], capsys)


def test_missing_digest(run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = copy_run(run, tmp_path / "run")
    path = only_checkpoint(run_dir)
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(CheckpointError, match="digest"):
        load_checkpoint(path)
    assert "digest" in one_error(["eval", "--checkpoint", str(path)], capsys)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    assert "no such checkpoint" in one_error(["eval", "--checkpoint", str(tmp_path / "nope.pt")], capsys)


def test_wrong_format_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_checkpoint({"format_version": FORMAT_VERSION + 1, "network": {}}, tmp_path, "old", keep=1)
    with pytest.raises(CheckpointError, match="format version") as info:
        load_checkpoint(path)
    assert str(FORMAT_VERSION + 1) in str(info.value) and str(FORMAT_VERSION) in str(info.value)
    assert "format version" in one_error(["eval", "--checkpoint", str(path)], capsys)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint({"network": {}, "evil": Path("/")}, tmp_path, "evil", keep=1)
    with pytest.raises(CheckpointError, match="not a loadable checkpoint") as info:
        load_checkpoint(path)
    assert len(str(info.value).splitlines()) == 1


def test_checkpoint_from_another_level(
    run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_run(run, tmp_path / "run")
    path = only_checkpoint(run_dir)
    other = short_level(tmp_path)  # same layout as L0_minimal, different content
    trainer = Trainer(tiny_config(level=str(other)), tmp_path / "other")
    with pytest.raises(CheckpointError, match="level") as info:
        load_checkpoint(path, level_hash=trainer.env.level.content_hash)
    assert "L0_minimal" in str(info.value)
    # through the CLI: a run directory whose config now names another level
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["level"] = str(other)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    assert "level" in one_error(["train", "--resume", str(run_dir), "--no-progress"], capsys)


def test_different_network_shape(
    run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_run(run, tmp_path / "run")
    path = only_checkpoint(run_dir)
    wider = Trainer(tiny_config(network__hidden=[48]), tmp_path / "wider")
    with pytest.raises(CheckpointError, match="network shape"):
        load_checkpoint(path, network_shapes=network_shapes(wider))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["network"]["hidden"] = [48]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    message = one_error(["train", "--resume", str(run_dir), "--no-progress"], capsys)
    assert "network shape" in message and "48" in message


def test_one_periodic_checkpoint_per_batch_of_ended_episodes(tmp_path: Path) -> None:
    # 16 slots, 20-tick episodes that all end together (nobody starves that fast), a save every 4
    cfg = tiny_config(
        level=str(short_level(tmp_path, max_steps=20)),
        checkpoint__every_episodes=4,
        total_steps=16 * 50,
        algorithm__learning_starts=10**9,
    )
    Trainer(cfg, tmp_path / "run").run()
    steps = sorted(int(p.stem.removeprefix("step_")) for p in (tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert steps == [16 * 20, 16 * 40, 16 * 50]

"""Resume takes the newest checkpoint that verifies: a corrupt, stray, diverged or mismatched
file is skipped with its reason (and set aside), and only when none verifies is it an error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from townlet_train import cli
from townlet_train.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

from .helpers import checkpoint_steps, config_file, one_error

STEPS = [128, 256, 384, 512]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fallback")
    config = config_file(base / "train.yaml", checkpoint__every_steps=128, total_steps=512)
    assert cli.main(["train", "--config", str(config), "--run-dir", str(base / "run"), "--no-progress"]) == 0
    assert checkpoint_steps(base / "run") == STEPS
    return base / "run"


def copy_of(run: Path, tmp_path: Path) -> Path:
    return shutil.copytree(run, tmp_path / "run")


def checkpoint(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:012d}.pt"


def resume(run_dir: Path, capsys: pytest.CaptureFixture[str], total: int = 640) -> tuple[str, str]:
    code = cli.main(["train", "--resume", str(run_dir), "--total-steps", str(total), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    return out, err


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def rewrite(path: Path, change: Any) -> None:
    """Change a checkpoint's payload and write it back with a valid digest (as a run would have)."""
    payload = load_checkpoint(path)
    change(payload)
    payload.pop("format_version")
    save_checkpoint(payload, path.parent, path.stem, keep=100)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_of(run, tmp_path)
    newest = checkpoint(run_dir, 512)
    flip_a_byte(newest)
    out, err = resume(run_dir, capsys)
    assert "from step_000000000384.pt at 384 agent-steps" in out
    (warning,) = err.strip().splitlines()
    assert warning.startswith("warning: skipped step_000000000512.pt: SHA-256 mismatch")
    assert "set aside as step_000000000512.pt.unverified" in warning
    assert (run_dir / "checkpoints" / "step_000000000512.pt.unverified").is_file()
    # the resumed run wrote its own 512 and went on to 640
    assert checkpoint_steps(run_dir) == [128, 256, 384, 512, 640]
    load_checkpoint(checkpoint(run_dir, 512))


def test_a_stray_file_without_a_digest_never_blocks_resume(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_of(run, tmp_path)
    checkpoint(run_dir, 999_999_999_999).write_bytes(b"not a checkpoint")
    out, err = resume(run_dir, capsys)
    assert "from step_000000000512.pt at 512 agent-steps" in out
    assert "skipped step_999999999999.pt: missing its digest file" in err
    assert max(checkpoint_steps(run_dir)) == 640  # the stray no longer counts as the newest


def test_diverged_weights_are_refused_and_skipped(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_of(run, tmp_path)
    newest, older = checkpoint(run_dir, 512), checkpoint(run_dir, 384)
    rewrite(newest, lambda p: next(iter(p["network"].values())).fill_(float("nan")))
    rewrite(older, lambda p: next(iter(p["optimizer"]["state"].values()))["exp_avg"].fill_(float("inf")))
    with pytest.raises(CheckpointError, match=r"hold NaN or inf \(first: network\."):
        load_checkpoint(newest)
    with pytest.raises(CheckpointError, match=r"hold NaN or inf \(first: optimizer\.state\."):
        load_checkpoint(older)
    assert "NaN or inf" in one_error(["eval", "--checkpoint", str(newest), "--episodes", "2"], capsys)
    out, err = resume(run_dir, capsys)
    assert "from step_000000000256.pt" in out
    assert len(err.strip().splitlines()) == 2 and err.count("NaN or inf") == 2


def test_when_no_checkpoint_verifies_one_error_says_why_for_each(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_of(run, tmp_path)
    for step in STEPS:
        flip_a_byte(checkpoint(run_dir, step))
    checkpoint(run_dir, 128).with_name("step_000000000128.pt.sha256").unlink()
    message = one_error(["train", "--resume", str(run_dir), "--no-progress"], capsys)
    assert "no checkpoint can be resumed" in message
    for step in STEPS[1:]:
        assert f"step_{step:012d}.pt: SHA-256 mismatch" in message
    assert "step_000000000128.pt: missing its digest file" in message
    assert checkpoint_steps(run_dir) == STEPS  # nothing was set aside: nothing was resumed


def test_an_edited_config_is_named_not_a_traceback(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_of(run, tmp_path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["env"]["num_envs"] = 32
    config["algorithm"]["gamma"] = 0.9
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    message = one_error(["train", "--resume", str(run_dir), "--no-progress"], capsys)
    assert "algorithm.gamma: 0.9, trained with 0.99" in message
    assert "env.num_envs: 32, trained with 16" in message
    # what a resume may change is accepted: how often to save, and how long to train
    config["env"]["num_envs"], config["algorithm"]["gamma"] = 16, 0.99
    config["checkpoint"]["every_steps"] = 64
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    resume(run_dir, capsys, total=640)
    assert checkpoint_steps(run_dir)[-3:] == [512, 576, 640]


def test_checkpoints_without_the_new_settings_still_resume(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint of a trainer that predates every_steps and every_seconds records no such keys."""
    run_dir = copy_of(run, tmp_path)

    def as_before(payload: dict) -> None:
        for key in ("every_steps", "every_seconds"):
            del payload["config"]["checkpoint"][key]

    rewrite(checkpoint(run_dir, 512), as_before)
    out, _ = resume(run_dir, capsys)
    assert "from step_000000000512.pt" in out


def test_resume_loads_into_a_fresh_trainer_after_a_half_load(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that verifies but breaks the load midway (here: the env state's tensors of the wrong
    length) must not leave parts of itself in the trainer that resumes from the older one."""
    run_dir = copy_of(run, tmp_path)

    def broken_env(payload: dict) -> None:
        payload["env"]["state"]["meters"] = torch.zeros(3, 1)

    rewrite(checkpoint(run_dir, 512), broken_env)
    out, err = resume(run_dir, capsys)
    assert "from step_000000000384.pt" in out
    assert "skipped step_000000000512.pt" in err

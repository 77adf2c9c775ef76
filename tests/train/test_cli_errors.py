"""Failures that used to end in a traceback: each is one `error:` line and exit status 2 now, and
memory requests are checked before anything is allocated."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_train import cli
from townlet_train.run import metrics as metrics_module
from townlet_train.run import resources
from townlet_train.run.checkpoint import latest_checkpoint
from townlet_train.run.loop import Trainer

from .helpers import checkpoint_steps, config_file, one_error
from .test_resume import episodes_after


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("errors")
    config = config_file(base / "train.yaml", total_steps=256)
    assert cli.main(["train", "--config", str(config), "--run-dir", str(base / "run"), "--no-progress"]) == 0
    return base / "run"


def resume_argv(run_dir: Path, *extra: str) -> list[str]:
    return ["train", "--resume", str(run_dir), "--total-steps", "512", "--no-progress", *extra]


# --- metrics.db ----------------------------------------------------------------------------------


def test_a_corrupt_metrics_db(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = shutil.copytree(run, tmp_path / "run")
    (run_dir / "metrics.db").write_bytes(b"this is not SQLite" * 100)
    message = one_error(resume_argv(run_dir), capsys)
    assert str(run_dir / "metrics.db") in message and "not a database" in message


def test_a_locked_metrics_db(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = shutil.copytree(run, tmp_path / "run")
    monkeypatch.setattr(metrics_module, "BUSY_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(run_dir / "metrics.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program in the middle of a write
    try:
        message = one_error(resume_argv(run_dir), capsys)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(run_dir / "metrics.db") in message and "database is locked" in message
    assert cli.main(resume_argv(run_dir)) == 0  # released, the same command resumes


def test_a_read_only_metrics_db(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened read-only, as on a read-only mount (chmod does not stop root, which runs CI here)."""
    run_dir = shutil.copytree(run, tmp_path / "run")
    connect = sqlite3.connect

    def read_only(path: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(f"file:{path}?mode=ro", uri=True, **kwargs)

    monkeypatch.setattr(metrics_module.sqlite3, "connect", read_only)
    message = one_error(resume_argv(run_dir), capsys)
    assert str(run_dir / "metrics.db") in message and "readonly" in message


# --- disks and directories -----------------------------------------------------------------------


def test_a_full_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_file(tmp_path / "train.yaml", checkpoint__every_steps=64, total_steps=256)
    run_dir = tmp_path / "run"
    save, saves = torch.save, [0]

    def disk_fills_up(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        saves[0] += 1
        if saves[0] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    message = one_error(
        ["train", "--config", str(config), "--run-dir", str(run_dir), "--no-progress"], capsys
    )
    assert str(run_dir / "checkpoints" / "step_000000000128.pt") in message
    assert "No space left on device" in message and "--resume" in message
    monkeypatch.undo()
    assert checkpoint_steps(run_dir) == [64]  # and nothing half-written beside it
    assert cli.main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert checkpoint_steps(run_dir)[-1] == 256 and episodes_after(run_dir, 256) == []


def test_run_dir_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_file(tmp_path / "train.yaml")
    (tmp_path / "afile").write_text("")
    message = one_error(["train", "--config", str(config), "--run-dir", str(tmp_path / "afile")], capsys)
    assert "--run-dir" in message and "not a directory" in message


# --- eval ----------------------------------------------------------------------------------------


def test_eval_on_a_level_the_network_does_not_fit(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(latest_checkpoint(run / "checkpoints"))
    message = one_error(["eval", "--checkpoint", path, "--level", "L1_full_observability"], capsys)
    assert "L1_full_observability" in message and "L0_minimal" in message and "do not fit" in message


def test_eval_on_a_level_with_the_same_layout_still_plays(
    cli_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """L1, L2 and L3 share their observations and actions: a network trained on one plays the others."""
    path = str(latest_checkpoint(cli_run["dir"] / "checkpoints"))
    argv = ["eval", "--checkpoint", path, "--level", "L2_partial_observability", "--episodes", "2"]
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr().err


# --- memory and devices --------------------------------------------------------------------------


def test_a_replay_capacity_that_cannot_fit_is_refused_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path / "train.yaml", algorithm__replay__capacity=100_000_000_000)
    message = one_error(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")], capsys)
    # L0_minimal: two 12-float observations, the action, reward, discount and 6-action mask
    assert "replay.capacity 100,000,000,000 needs 11.8 TB (118 B per transition)" in message
    assert "available" in message and message.endswith("lower algorithm.replay.capacity")
    assert not (tmp_path / "run").exists()


def test_too_many_slots_are_refused_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "num_envs" in one_error(["train", "--level", "L0_minimal", "--num-envs", "10000000"], capsys)
    monkeypatch.setattr(resources, "available_memory", lambda device: (8 * 10**9, 16 * 10**9))
    argv = ["train", "--level", "L1_full_observability", "--num-envs", str(1 << 20), "--device", "cpu"]
    message = one_error([*argv, "--run-dir", str(tmp_path / "run")], capsys)
    assert "env.num_envs 1,048,576 needs" in message and "per slot" in message
    assert "this machine has 8.0 GB available (of 16.0 GB): lower env.num_envs" in message
    assert not (tmp_path / "run").exists()


def test_running_out_of_memory_anyway_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(self: Trainer, *args: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(Trainer, "__init__", no_memory)
    config = config_file(tmp_path / "train.yaml")
    message = one_error(["train", "--config", str(config), "--run-dir", str(tmp_path / "run")], capsys)
    assert "out of memory" in message and "env.num_envs" in message


def test_memory_estimates_track_what_grows(tmp_path: Path) -> None:
    from .helpers import tiny_config

    uniform = tiny_config(algorithm__replay__capacity=1000)
    assert resources.replay_bytes(uniform, 12, 6) == 1000 * (2 * 48 + 8 + 4 + 4 + 6)
    prioritized = tiny_config(algorithm__replay__capacity=1000, algorithm__replay__kind="prioritized")
    assert resources.replay_bytes(prioritized, 12, 6) == resources.replay_bytes(uniform, 12, 6) + 2 * 1024 * 8
    recurrent = tiny_config(network__kind="lstm", network__lstm_hidden=16)
    assert resources.slot_bytes(recurrent, 12, 6) > resources.slot_bytes(uniform, 12, 6)
    assert resources.format_bytes(4.8e12) == "4.8 TB" and resources.format_bytes(512) == "512 B"
    memory = resources.available_memory(torch.device("cpu"))
    assert memory is None or 0 < memory[0] <= memory[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_cpu_build(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_file(tmp_path / "train.yaml")
    argv = ["train", "--config", str(config), "--run-dir", str(tmp_path / "new"), "--device", "cuda"]
    assert "--device cpu" in one_error(argv, capsys)
    run_dir = shutil.copytree(run, tmp_path / "run")
    assert "--device cpu" in one_error(resume_argv(run_dir, "--device", "cuda"), capsys)


def test_memory_estimate_counts_what_each_algorithm_stores() -> None:
    """DAgger keeps a ring of labelled states and PPO one rollout of every slot: their runs are
    sized by those settings, not by the DQN replay they never allocate."""
    from townlet_env.core import compile_level
    from townlet_train.config import load_config

    def config(**algorithm: Any) -> Any:
        return load_config(None, level="L0_minimal", algorithm=algorithm, network__kind="mlp")

    dagger = config(kind="dagger", capacity=1000, learning_starts=500)
    expected = (1000 * (48 + 6 + 8), "algorithm.capacity", 1000, "labelled state")
    assert resources.buffer(dagger, 12, 6) == expected
    ppo = config(kind="ppo", rollout_steps=10)
    size, setting, count, _ = resources.buffer(ppo, 12, 6)
    assert (setting, count) == ("algorithm.rollout_steps", 10)
    assert size == 10 * ppo.env.num_envs * (48 + 6 + 8 + 2 + 24)
    huge = config(kind="dagger", capacity=10**11)
    with pytest.raises(resources.InsufficientMemory, match=r"per labelled state.*lower algorithm\.capacity"):
        resources.check_memory(huge, compile_level(huge.level, "cpu"), torch.device("cpu"))


def test_eval_sample_needs_a_policy_network(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = str(latest_checkpoint(run / "checkpoints"))
    message = one_error(["eval", "--checkpoint", checkpoint, "--sample"], capsys)
    assert "--sample needs a policy network (ppo, dagger or bc)" in message and "DQN" in message
    message = one_error(["eval", "--level", "L0_minimal", "--policy", "scripted", "--sample"], capsys)
    assert "give --checkpoint PATH" in message

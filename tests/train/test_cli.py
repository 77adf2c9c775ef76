"""`townlet-train`: train writes a complete run directory, eval prints one JSON line, and every
bad input gives one `error:` line and exit status 2 (no traceback)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_train import cli
from townlet_train.config import load_config
from townlet_train.run.checkpoint import latest_checkpoint

from .helpers import config_file, one_error

EVAL_KEYS = {"policy", "episodes", "mean_survival", "median_survival", "mean_reward", "max_steps"}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_creates_a_run_directory(cli_run: dict[str, Any]) -> None:
    assert cli_run["code"] == 0, cli_run["stdout"]
    run_dir: Path = cli_run["dir"]
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "metrics.db").is_file()
    assert any((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    assert checkpoints and all(p.with_name(p.name + ".sha256").is_file() for p in checkpoints)
    # config.yaml is the resolved config: the file, then the command-line overrides
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.level == str(cli_run["level"])
    assert cfg.total_steps == cli_run["total_steps"] and cfg.env.num_envs == 16
    assert cfg.network.hidden == [32]  # from the --config file
    # the last stdout line is the run's summary as JSON
    summary = json.loads(cli_run["stdout"].strip().splitlines()[-1])
    assert summary["agent_steps"] == cli_run["total_steps"]
    assert Path(summary["checkpoint"]) == latest_checkpoint(run_dir / "checkpoints")


def test_train_with_a_builtin_level_and_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command of the issue: a built-in level, no --config; tiny steps so that nothing is learned."""
    run_dir = tmp_path / "run"
    argv = ["train", "--level", "L0_minimal", "--total-steps", "32", "--num-envs", "16"]
    argv += ["--device", "cpu", "--no-progress"]
    code, out, err = run_cli([*argv, "--run-dir", str(run_dir)], capsys)
    assert code == 0, err
    for name in ("config.yaml", "checkpoints", "metrics.db", "tensorboard"):
        assert (run_dir / name).exists(), name
    assert load_config(run_dir / "config.yaml").env.num_envs == 16
    # two env steps: no episode has ended, and the summary is still strict JSON (null, not NaN)
    summary = json.loads(out.strip().splitlines()[-1], parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert summary["mean_survival"] is None and summary["episodes"] == 0
    # a second `train` into the same directory is refused rather than mixed into the first
    message = one_error(
        ["train", "--level", "L0_minimal", "--total-steps", "32", "--run-dir", str(run_dir)], capsys
    )
    assert "--resume" in message


def test_eval_learned_checkpoint_json(cli_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = latest_checkpoint(cli_run["dir"] / "checkpoints")
    code, out, err = run_cli(["eval", "--checkpoint", str(path), "--episodes", "8", "--json"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) >= EVAL_KEYS
    assert result["policy"] == "learned" and result["episodes"] == 8
    assert result["max_steps"] == cli_run["max_steps"]
    assert 1 <= result["median_survival"] <= result["max_steps"]
    assert 0 < result["mean_survival"] <= result["max_steps"]


def test_eval_scripted_without_a_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        [
            "eval",
            "--policy",
            "scripted",
            "--level",
            "L1_full_observability",
            "--episodes",
            "4",
            "--difficulty",
            "3",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out.strip())
    assert set(result) >= EVAL_KEYS
    assert result["policy"] == "scripted" and result["episodes"] == 4 and result["max_steps"] == 500
    code, out, err = run_cli(
        ["eval", "--policy", "random", "--level", "L0_minimal", "--episodes", "3"], capsys
    )
    assert code == 0 and "mean_survival" in out  # the human-readable form


def test_eval_details(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--policy", "random", "--level", "L0_minimal", "--episodes", "3", "--details"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "deaths_with_meter_at_zero: energy 3" in out
    assert "mean_meters_at_death: energy 0.0" in out  # a zero is shown, not dropped
    code, out, err = run_cli([*argv, "--json"], capsys)
    result = json.loads(out.strip())
    assert result["deaths"] == 3 and set(result["action_share"]) >= {"UP", "INTERACT", "WAIT"}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["eval", "--episodes", "2"], "--checkpoint"),
        (["eval", "--policy", "random", "--episodes", "2"], "--level"),
        (["eval", "--policy", "random", "--level", "L0_minimal", "--episodes", "0"], "--episodes"),
        (["eval", "--policy", "random", "--level", "no_such_level", "--episodes", "2"], "no_such_level"),
        (["eval", "--policy", "random", "--level", "L4_social", "--episodes", "10"], "multiple of 6"),
        (
            ["eval", "--policy", "random", "--level", "L0_minimal", "--episodes", "2", "--difficulty", "-1"],
            "difficult",
        ),
        (["train", "--level", "no_such_level", "--total-steps", "16", "--no-progress"], "no_such_level"),
        (["train", "--level", "L0_minimal", "--total-steps", "0"], "total_steps"),
        (["train", "--level", "L0_minimal", "--num-envs", "0"], "num_envs"),
        (["train", "--config", "/nonexistent/train.yaml"], "no such training config"),
        (["train", "--resume", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_bad_inputs_give_one_error_line(
    argv: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written into the working tree
    assert needle in one_error(argv, capsys)
    assert not (tmp_path / "runs").exists()


def test_eval_on_cuda_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    message = one_error(["eval", "--policy", "random", "--level", "L0_minimal", "--device", "cuda"], capsys)
    assert "cuda" in message.lower()


def test_misspelt_config_key_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path / "train.yaml", algorithm__gama=0.9)
    message = one_error(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")], capsys)
    assert str(path) in message and "algorithm.gama" in message and "gamma" in message
    assert not (tmp_path / "run").exists()


def test_resume_refuses_settings_it_would_ignore(
    cli_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = shutil.copytree(cli_run["dir"], tmp_path / "run")
    message = one_error(["train", "--resume", str(run_dir), "--num-envs", "32", "--seed", "3"], capsys)
    assert "--num-envs" in message and "--seed" in message
    shutil.rmtree(run_dir / "checkpoints")
    assert "no checkpoint" in one_error(["train", "--resume", str(run_dir)], capsys)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["eval", "--policy", "greedy"], "invalid choice"),
        (["train", "--num-envs", "abc"], "--num-envs: invalid int value: 'abc'"),
        (["train", "--no-such-flag"], "unrecognized arguments"),
        ([], "required"),
    ],
)
def test_argparse_errors_are_one_error_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """As docs/training.md promises: one `error:` line and status 2, not argparse's usage block."""
    message = one_error(argv, capsys)
    assert needle in message and "usage:" not in message


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--help"]) == 0
    assert "--resume" in capsys.readouterr().out


def test_progress_table_renders_and_closes() -> None:
    from rich.console import Console

    from townlet_train.run.progress import Progress

    progress = Progress(enabled=True, total=100)
    progress.console = Console(file=io.StringIO(), force_terminal=False, width=120)
    summary = {"episodes": 0, "mean_survival": float("nan"), "mean_stage": 0.0, "epsilon": 1.0}
    progress.update(10, summary, {})
    progress.update(100, {**summary, "episodes": 3, "mean_survival": 41.5}, {"loss": 0.25})
    progress.close()
    quiet = Progress(enabled=False, total=100)
    quiet.update(10, summary, {})
    quiet.close()

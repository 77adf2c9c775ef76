"""The search-space file, the figures over seeds and the command line without Ray (fast)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from townlet_env.config import ConfigError
from townlet_train.cli import main
from townlet_train.config import load_config
from townlet_train.sweep.engine import require
from townlet_train.sweep.seeds import parse_seeds
from townlet_train.sweep.space import load_space, trial_config
from townlet_train.sweep.stats import aggregate, bootstrap_ci, iqm

BASE = load_config(None, level="L0_minimal")


def space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_gives_ranges_and_choices(tmp_path: Path) -> None:
    params = load_space(
        space(
            tmp_path,
            "algorithm.lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n"
            "env.num_envs: {low: 16, high: 64, step: 16}\n"
            "network.hidden: {choices: [[32, 32], [64]]}\n",
        ),
        BASE,
    )
    lr, envs, hidden = params
    assert type(lr.distribution()).__name__ == "FloatDistribution" and lr.distribution().log
    assert type(envs.distribution()).__name__ == "IntDistribution" and envs.distribution().step == 16
    assert hidden.decode(hidden.distribution().choices[1]) == [64]
    cfg = trial_config(None, {"network.hidden": [64], "algorithm.lr": 0.002}, level="L0_minimal")
    assert cfg.network.hidden == [64] and cfg.algorithm.lr == 0.002


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("algorithm.lrr: {low: 0.1, high: 0.2}", "algorithm.lrr: algorithm has no field 'lrr'"),
        ("envs.num_envs: {low: 1, high: 2}", "envs.num_envs: the config has no field 'envs'"),
        ("algorithm.lr: {low: 0.1}", "algorithm.lr"),
        ("algorithm.lr: {low: 0.2, high: 0.1}", "low 0.2 is above high 0.1"),
        ("algorithm.lr: {low: 0.1, high: 0.2, sigma: 1}", "sigma"),
        ("algorithm.lr: {low: 0.1, high: 5.0}", "algorithm.lr: 5.0 is refused by the config"),
        ("algorithm.batch_size: {choices: [256, '512']}", "algorithm.batch_size: '512' is refused"),
        ("seed: {choices: [1, 2]}", "seed: cannot be swept"),
        ("- algorithm.lr", "expected a mapping of config keys"),
    ],
)
def test_a_bad_space_is_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_space(space(tmp_path, text + "\n"), BASE)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(tmp_path / "space.yaml") in str(err.value)


def test_a_combination_the_config_refuses_waits_for_its_trial(tmp_path: Path) -> None:
    # each value alone is a valid capacity; only the trial's config sees it below learning_starts
    (param,) = load_space(space(tmp_path, "algorithm.capacity: {choices: [100, 200000]}\n"), BASE)
    with pytest.raises(ConfigError, match=r"below algorithm\.learning_starts"):
        trial_config(None, {"algorithm.capacity": 100}, level="L0_minimal")
    assert param.spec.choices == [100, 200000]


def test_figures_over_seeds() -> None:
    assert iqm([1, 2, 3, 100]) == 2.5  # the middle half of four: 2 and 3
    assert iqm([5.0]) == 5.0
    values = [150.6, 88.9, 117.8, 150.8]
    agg = aggregate(values)
    assert agg["mean"] == pytest.approx(sum(values) / 4)
    low, high = agg["mean_ci95"]
    assert min(values) <= low < agg["mean"] < high <= max(values)
    assert bootstrap_ci(values) == bootstrap_ci(values)  # a fixed resampling seed
    assert aggregate([3.0])["mean_ci95"] == [3.0, 3.0]


def test_seed_lists() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,2,5-6,2") == [0, 2, 5, 6]
    for bad in ("a", "3-1", "1-", ""):
        with pytest.raises(ValueError, match="expected seeds such as 0-9"):
            parse_seeds(bad)


def test_without_the_extra_the_commands_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ValueError, match=r"needs ray: pip install 'townlet-train\[sweep\]'"):
        require("seeds")
    assert main(["seeds", "L0_minimal", "--seeds", "0-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: townlet-train seeds needs ray: pip install 'townlet-train[sweep]'"


def test_bad_arguments_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = space(tmp_path, "algorithm.lr: {low: 0.1, high: 5.0}\n")
    assert main(["sweep", "L0_minimal", "--space", str(path), "--trials", "2", "--out", str(tmp_path)]) == 2
    assert "algorithm.lr: 5.0 is refused" in capsys.readouterr().err
    assert main(["seeds", "L0_minimal", "--cpus", "2", "--address", "127.0.0.1:1"]) == 2
    assert "--cpus is for a local Ray" in capsys.readouterr().err


def test_a_local_ray_keeps_its_session_outside_the_virtualenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """nox points TMPDIR into the session's virtualenv, where Ray's workers refuse to start (the
    sweep then waited for them forever); a long TMPDIR would overflow Ray's socket paths."""
    import sys

    from townlet_train.sweep.engine import ray_temp_dir

    monkeypatch.delenv("TOWNLET_RAY_TMPDIR", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "venv" / "tmp"))
    (tmp_path / "venv" / "tmp").mkdir(parents=True)
    tempfile.tempdir = None  # gettempdir reads TMPDIR again
    try:
        assert ray_temp_dir() == "/tmp/ray"
        monkeypatch.setenv("TMPDIR", "/tmp")
        tempfile.tempdir = None
        assert ray_temp_dir() == os.path.join(os.path.realpath("/tmp"), "ray")
        monkeypatch.setenv("TOWNLET_RAY_TMPDIR", "/srv/ray")
        assert ray_temp_dir() == "/srv/ray"
    finally:
        tempfile.tempdir = None


def test_the_startup_timeout_comes_from_the_option_the_environment_or_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from townlet_train.sweep.engine import STARTUP_TIMEOUT, startup_timeout

    monkeypatch.delenv("TOWNLET_RAY_STARTUP_TIMEOUT", raising=False)
    assert startup_timeout(None) == STARTUP_TIMEOUT == 120
    monkeypatch.setenv("TOWNLET_RAY_STARTUP_TIMEOUT", "30")
    assert startup_timeout(None) == 30 and startup_timeout(7.5) == 7.5
    monkeypatch.setenv("TOWNLET_RAY_STARTUP_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"TOWNLET_RAY_STARTUP_TIMEOUT='soon': expected a number of seconds"):
        startup_timeout(None)
    monkeypatch.delenv("TOWNLET_RAY_STARTUP_TIMEOUT")
    assert main(["seeds", "L0_minimal", "--startup-timeout", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --startup-timeout 0: expected a number of seconds > 0"

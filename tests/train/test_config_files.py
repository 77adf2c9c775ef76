"""The packaged training configs: one naming scheme, found by name, and inside the wheel.

The wheel is installed and trained from outside the repository by `nox -s wheels` (a CI stage:
it installs torch into a fresh virtualenv, minutes); here the wheel is only built and opened.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from townlet_env import builtin_levels
from townlet_train import cli
from townlet_train.config import CONFIG_DIR, load_config
from townlet_train.config_files import RECIPE_DIR, find_config, packaged_configs

ROOT = Path(__file__).resolve().parents[2]
TRAIN_PKG = ROOT / "packages" / "townlet-train"
# <level>_<stage>[_<variant>]: the level's full name, then what trains (docs/training.md, Configs)
STAGES = "dqn|ppo|ppo_from_dagger|dagger"
RECIPE_NAME = re.compile(rf"(?P<level>.+?)_(?P<stage>{STAGES})(_(?P<variant>[a-z0-9]+))?")


def test_every_recipe_is_named_for_the_level_it_configures() -> None:
    levels = set(builtin_levels())
    assert {path.stem for path in CONFIG_DIR.glob("*.yaml")} <= levels
    recipes = sorted(RECIPE_DIR.glob("*.yaml"))
    assert recipes
    for path in recipes:
        found = RECIPE_NAME.fullmatch(path.stem)
        assert found is not None and found["level"] in levels, f"{path.name}: not <level>_<stage>[_<variant>]"
        cfg = load_config(path)
        assert cfg.level == found["level"], f"{path.name} configures {cfg.level}"
        kind = "ppo" if found["stage"] == "ppo_from_dagger" else found["stage"]
        assert cfg.algorithm.kind == kind, f"{path.name} runs {cfg.algorithm.kind}"


def test_the_repository_configs_folder_is_the_packaged_one() -> None:
    # one copy: the docs' configs/recipes/... paths and the wheel's package data are the same files
    assert (ROOT / "configs").resolve() == CONFIG_DIR.resolve()


def test_config_is_a_file_or_a_packaged_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = packaged_configs()
    assert packaged["L1_full_observability"] == CONFIG_DIR / "L1_full_observability.yaml"
    assert packaged["L1_full_observability_ppo"] == RECIPE_DIR / "L1_full_observability_ppo.yaml"
    assert find_config("L1_full_observability_ppo") == RECIPE_DIR / "L1_full_observability_ppo.yaml"
    assert find_config("L0_minimal_dqn.yaml") == RECIPE_DIR / "L0_minimal_dqn.yaml"
    assert find_config(None) is None
    # a file of that name in the working directory wins over the packaged config
    monkeypatch.chdir(tmp_path)
    (tmp_path / "L0_minimal_dqn.yaml").write_text("level: L0_minimal\n")
    assert find_config("L0_minimal_dqn.yaml") == Path("L0_minimal_dqn.yaml")
    assert find_config("L0_minimal_dqn") == RECIPE_DIR / "L0_minimal_dqn.yaml"  # no such file: the name


@pytest.mark.parametrize("given", ["L1_ppo", "recipes/L1_full_observability_ppo", "nowhere/L0_minimal.yaml"])
def test_a_config_that_is_neither_is_one_error_line(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--config", given, "--run-dir", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --config {given}: no such training config file")
    assert "L1_full_observability_ppo, " in err  # it names what there is


def test_train_runs_a_packaged_recipe_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    argv = ["train", "--config", "L0_minimal_dqn", "--total-steps", "256", "--num-envs", "8"]
    assert cli.main([*argv, "--run-dir", "run", "--no-progress"]) == 0
    written = load_config(tmp_path / "run" / "config.yaml")
    assert (written.level, written.algorithm.kind, written.total_steps) == ("L0_minimal", "dqn", 256)


def test_the_wheel_holds_every_packaged_config(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", reason="building the wheel without network needs setuptools installed")
    source = tmp_path / "townlet-train"
    # a copy: setuptools' build/ folder in the tree would keep files renamed or deleted since
    shutil.copytree(TRAIN_PKG, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w"]
    subprocess.run([*command, str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("townlet_train-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"townlet_train/{path.relative_to(CONFIG_DIR.parent)}" for path in CONFIG_DIR.rglob("*.yaml")}
    assert len(expected) == len(packaged_configs()) > 10
    assert expected <= names, f"left out of the wheel: {sorted(expected - names)}"

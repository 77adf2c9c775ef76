"""benchmarks/learning.py's level x recipe x seed matrix: where each config comes from, how runs
merge into the results file and summarise over seeds, and one tiny run of two recipes end to end."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from townlet_train.config import builtin_config, load_config

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


def evaluation(mean: float, max_steps: int = 500) -> dict[str, Any]:
    return {"episodes": 8, "mean_survival": mean, "median_survival": mean, "max_steps": max_steps}


def run(mean: float, seed: int = 0, generated: bool = False) -> dict[str, Any]:
    return {
        "seed": seed,
        "config": "x",
        "generated": generated,
        "algorithm": "ppo",
        "network": "mlp",
        "total_steps": 1_000_000,
        "train_seconds": 10.0,
        "agent_steps_per_second": 100_000,
        "final_mean_stage": 0.0,
        "learned": evaluation(mean),
        "curve": [],
        "machine": {"torch": "t", "threads": 1, "cpu": "c", "commit": "abc"},
    }


def format_1() -> dict[str, Any]:
    evals = {"learned": evaluation(276.0), "scripted": evaluation(497.0), "random": evaluation(139.0)}
    old = {
        "level": "L1_full_observability",
        "total_steps": 5_000_192,
        "train_seconds": 353.1,
        "agent_steps_per_second": 14163,
        "network": "dueling",
        "final_mean_stage": 3.0,
        "eval": evals,
        "curve": [{"agent_steps": 1.0, "survival": 2.0, "difficulty": 1.0, "stage": 0.0}],
    }
    machine = {"torch": "t", "threads": 2, "cpu": "c", "commit": "f1ce23b"}
    return {"levels": {"L1_full_observability": old}, "machine": machine}


def test_a_format_1_file_becomes_seed_0_of_the_dqn_recipe() -> None:
    lr = load("learning_results")
    results = lr.upgrade(format_1())
    entry = results["levels"]["L1_full_observability"]
    assert results["format"] == 2 and entry["default_recipe"] == "dqn"
    assert entry["baselines"]["scripted"]["mean_survival"] == 497.0
    seed = entry["recipes"]["dqn"]["seeds"]["0"]
    assert seed["learned"]["mean_survival"] == 276.0 and seed["machine"]["commit"] == "f1ce23b"
    assert seed["config"] == "configs/L1_full_observability.yaml (the default DQN config at commit f1ce23b)"
    assert not seed["generated"]
    assert "seconds" not in seed["curve"][0]  # not recorded then, and not invented now
    assert entry["recipes"]["dqn"]["summary"] == {
        "n": 1,
        "mean": 276.0,
        "std": 0.0,
        "min": 276.0,
        "max": 276.0,
    }
    assert lr.upgrade(results) == results


def test_runs_merge_by_level_recipe_and_seed_and_summarise_over_seeds() -> None:
    lr = load("learning_results")
    results = lr.upgrade(format_1())
    why = "no configs/recipes/L1_full_observability_ppo.yaml"
    lr.record_missing(results, "L1_full_observability", "ppo", why)
    for seed, mean in ((2, 300.0), (0, 200.0), (1, 999.0), (1, 250.0)):  # seed 1 is run again
        lr.record_run(results, "L1_full_observability", "ppo", seed, run(mean, seed))
    ppo = results["levels"]["L1_full_observability"]["recipes"]["ppo"]
    assert list(ppo["seeds"]) == ["0", "1", "2"]
    assert ppo["summary"] == {"n": 3, "mean": 250.0, "std": 50.0, "min": 200.0, "max": 300.0}
    assert "missing" not in results["levels"]["L1_full_observability"]  # it has run since
    assert results["levels"]["L1_full_observability"]["recipes"]["dqn"]["summary"]["mean"] == 276.0


def test_the_results_table_shows_each_recipe_with_its_spread() -> None:
    lr, page = load("learning_results"), load("results_page")
    results = lr.upgrade(format_1())
    for seed, mean in ((0, 200.0), (1, 250.0), (2, 300.0)):
        lr.record_run(results, "L1_full_observability", "ppo", seed, run(mean, seed, generated=True))
    lr.level_entry(results, "L0_minimal", "dqn")["baselines"] = {
        "scripted": evaluation(199.0, 1000),
        "random": evaluation(134.0, 1000),
    }
    lr.record_missing(results, "L0_minimal", "dagger", "no configs/recipes/L0_minimal_dagger.yaml")
    table = page.table(results)
    assert (
        "| L1_full_observability | dqn (default) | dueling | 1 | 5.0 M | 14,163/s | **276** / 500 | 497 |"
        in table
    )
    assert (
        "| L1_full_observability | ppo* | mlp | 3 | 1.0 M | 100,000/s | **250** ± 50 (200-300) / 500 |"
        in table
    )
    assert "* Config generated from the level's default config" in table
    assert (
        "Not run, no recipe config: L0_minimal dagger (no configs/recipes/L0_minimal_dagger.yaml)." in table
    )


def test_recipe_configs_come_from_files_or_are_generated_from_the_l1_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    learning = load("learning")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(learning.RECIPE_DIR / "L1_full_observability_ppo.yaml", recipes)
    monkeypatch.setattr(learning, "RECIPE_DIR", recipes)
    assert learning.recipe_file("L1_full_observability", "ppo") == recipes / "L1_full_observability_ppo.yaml"
    cfg, source = learning.stage_config("L2_partial_observability", "ppo", 3, 1000, True)
    assert source.startswith("generated: configs/L2_partial_observability.yaml with algorithm")
    assert (cfg.level, cfg.seed, cfg.total_steps) == ("L2_partial_observability", 3, 1000)
    assert (cfg.algorithm.kind, cfg.network.kind, cfg.curriculum.kind) == ("ppo", "mlp", "static")
    assert cfg.env.num_envs == 256  # the level's own env settings
    reason = learning.stage_config("L2_partial_observability", "ppo", 0, None, False)
    assert reason == "no configs/recipes/L2_partial_observability_ppo.yaml (--recipe-files-only)"
    # a file for the level wins; one named for the level but configuring another is not its recipe
    text = (recipes / "L1_full_observability_ppo.yaml").read_text()
    l2 = recipes / "L2_partial_observability_ppo.yaml"
    l2.write_text(text.replace("L1_full_observability", "L2_partial_observability"))
    (recipes / "L0_minimal_ppo.yaml").write_text(text)  # level: L1_full_observability inside
    assert (
        learning.stage_config("L2_partial_observability", "ppo", 0, None, False)[1]
        == "configs/recipes/L2_partial_observability_ppo.yaml"
    )
    assert learning.recipe_file("L0_minimal", "ppo") is None
    # only the full level name counts: one naming scheme (docs/training.md)
    (recipes / "L0_5_ppo.yaml").write_text(text.replace("L1_full_observability", "L0_5_dual_resource"))
    assert learning.recipe_file("L0_5_dual_resource", "ppo") is None
    # a file named for one algorithm that runs another is refused, not run under the wrong name
    dagger = "level: L2_partial_observability\nnetwork: {kind: mlp}\nalgorithm: {kind: dagger}\n"
    l2.write_text(dagger)
    why = learning.stage_config("L2_partial_observability", "ppo", 0, None, True)
    assert why == "configs/recipes/L2_partial_observability_ppo.yaml is a dagger config, not ppo"


def test_a_default_config_serves_its_own_algorithm_and_its_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    learning = load("learning")
    monkeypatch.setattr(learning, "RECIPE_DIR", tmp_path)  # no recipe files at all
    for level in ("L1_full_observability", "L2_partial_observability"):
        kind = load_config(None, level=level).algorithm.kind
        assert learning.default_recipe(level) == kind
        assert learning.find_config(level, kind) == builtin_config(level)
        others = [r for r in ("dqn", "ppo", "dagger") if r != kind]
        assert all(learning.find_config(level, r) is None for r in others)
        assert learning.seeds_for(level, kind, None) == [0, 1, 2]
        assert all(learning.seeds_for(level, r, None) == [0] for r in others)
        assert learning.seeds_for(level, kind, [5, 6]) == [5, 6]


def test_two_recipes_end_to_end_at_a_tiny_budget(tmp_path: Path) -> None:
    learning = load("learning")
    results = tmp_path / "learning.json"
    args = ["--levels", "L0_minimal", "--recipes", "dqn", "dagger_ppo", "--seeds", "0"]
    args += ["--total-steps", "4096", "--num-envs", "16", "--episodes", "6", "--threads", "1"]
    learning.main([*args, "--results", str(results), "--out", str(tmp_path / "runs")])
    entry = json.loads(results.read_text())["levels"]["L0_minimal"]
    assert set(entry["baselines"]) == {"scripted", "random"}
    assert entry["default_recipe"] == load_config(None, level="L0_minimal").algorithm.kind
    dqn, chained = (entry["recipes"][r]["seeds"]["0"] for r in ("dqn", "dagger_ppo"))
    assert dqn["total_steps"] == 4096 and dqn["learned"]["episodes"] == 6
    assert dqn["curve"] and all("seconds" in p for p in dqn["curve"])
    assert chained["total_steps"] == 2 * 4096 and chained["algorithm"] == "dagger+ppo"
    assert "ppo_from_dagger" in chained["config"]
    dagger, ppo = chained["stages"]
    assert (dagger["algorithm"], ppo["algorithm"]) == ("dagger", "ppo")
    ppo_config = (tmp_path / "runs").glob("*/L0_minimal/dagger_ppo/seed0/ppo_from_dagger/config.yaml")
    assert dagger["checkpoint"] in next(ppo_config).read_text()  # PPO started from the student
    assert (tmp_path / "learning.png").is_file()


def test_a_stopped_run_is_not_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped by a signal ends with a part-trained policy: the matrix stops there and writes
    nothing for it, rather than evaluating it as if it had finished."""
    learning = load("learning")

    class Stopped:
        def run(self) -> dict[str, Any]:
            return {"agent_steps": 512, "interrupted": "SIGTERM"}

    monkeypatch.setattr(learning, "make_trainer", lambda cfg, run_dir: Stopped())
    results = tmp_path / "learning.json"
    args = ["--levels", "L0_minimal", "--recipes", "dagger", "--seeds", "0", "--total-steps", "4096"]
    args += ["--num-envs", "16", "--episodes", "6", "--threads", "1", "--results", str(results)]
    with pytest.raises(SystemExit, match="SIGTERM; this run is not recorded"):
        learning.main([*args, "--out", str(tmp_path / "runs")])
    recorded = json.loads(results.read_text())["levels"] if results.exists() else {}
    assert "recipes" not in recorded.get("L0_minimal", {}) or not recorded["L0_minimal"]["recipes"]

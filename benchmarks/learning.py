"""Learning results: every level x recipe, several seeds, evaluated at full difficulty.

    python -m benchmarks.learning                       # the whole matrix, default budgets (hours)
    python -m benchmarks.learning --plan                # what would run, and from which configs
    python -m benchmarks.learning --levels L1_full_observability --recipes ppo dagger_ppo
    python -m benchmarks.learning --levels L0_minimal --recipes dqn --seeds 3 4

Recipes (`--recipes`, default all), each from configs/recipes/<level>_<stage>.yaml, or for dqn,
ppo and dagger from the level's default config configs/<level>.yaml when that runs the same
algorithm:
  dqn         DQN (e.g. configs/recipes/L1_full_observability_dqn.yaml, configs/L2_....yaml)
  ppo         PPO from scratch (configs/recipes/L1_full_observability_ppo.yaml)
  bc          behaviour cloning: capture a dataset with the scripted policy (--bc-steps agent-steps),
              then `train_bc` (--bc-updates)
  dagger      DAgger (configs/L1_full_observability.yaml)
  dagger_ppo  DAgger as above, then stage ppo_from_dagger
              (configs/recipes/L1_full_observability_ppo_from_dagger.yaml) with `init_from` set
              to the DAgger run's final checkpoint (its budget is the sum of both stages)
Recipe files are named `<level>_<stage>[_<variant>].yaml` with the level's full name (see
docs/training.md); a variant such as `_lstm` is not a stage this matrix runs. Where a level has
no config for a stage, one is generated from the level's default config with the algorithm,
network, curriculum, replay and exploration settings of L1's config for that stage, and marked
as generated in the results (with --recipe-files-only it is not run, and recorded as missing).

Seeds (`--seeds`): by default 0, 1 and 2 for each level's default recipe (the algorithm of
configs/<level>.yaml) and 0 for the other recipes; given, the seeds listed for every recipe.

For each (level, recipe, seed): train, evaluate the learned policy greedily for --episodes
episodes at difficulty 1.0, and record the learning curve (training survival against agent-steps
and against seconds of training) from the run's metrics.db. The scripted and random baselines
are evaluated once per level. Results are merged into `benchmarks/results/learning.json` keyed
by level, recipe and seed (a run replaces an earlier run of the same three), with the mean and
spread over seeds; `docs/learning_curves.png` is redrawn after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import learning_results as lr
from townlet_env import builtin_levels
from townlet_env.config.bounded_yaml import read_yaml_mapping
from townlet_env.core import compile_level
from townlet_env.core.town import default_agents_per_town
from townlet_train.config import CONFIG_DIR, TrainConfig, builtin_config, load_config
from townlet_train.evaluate import evaluate
from townlet_train.run.loop import write_resolved_config
from townlet_train.trainers import make_trainer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "learning.json"
PLOT = ROOT / "docs" / "learning_curves.png"
RECIPE_DIR = CONFIG_DIR / "recipes"
TEMPLATE = "L1_full_observability"  # the level whose recipe configs serve as templates for the others
STAGES = {"dqn": ["dqn"], "ppo": ["ppo"], "dagger": ["dagger"], "dagger_ppo": ["dagger", "ppo_from_dagger"]}
KIND = {"dqn": "dqn", "ppo": "ppo", "dagger": "dagger", "ppo_from_dagger": "ppo"}  # stage -> algorithm
# what a recipe sets; the level's default config gives the rest (level, budget, slots, checkpoints)
RECIPE_KEYS = ("algorithm", "network", "curriculum", "exploration")  # DQN's replay is in algorithm
DEFAULT_SEEDS, OTHER_SEEDS = [0, 1, 2], [0]
BC_STEPS = 200_000  # as many labelled states as the DAgger recipe keeps


def recipe_file(level: str, name: str) -> Path | None:
    """configs/recipes/<level>_<name>.yaml, where that file is a config of this level."""
    path = RECIPE_DIR / f"{level}_{name}.yaml"
    if path.is_file() and read_yaml_mapping(path, TrainConfig.model_fields).get("level") == level:
        return path
    return None


def label(path: Path) -> str:
    return f"configs/{path.name}" if path.parent == CONFIG_DIR else f"configs/recipes/{path.name}"


def find_config(level: str, name: str) -> Path | None:
    """A recipe file of the level, else its default config where that runs the same algorithm."""
    path = recipe_file(level, name)
    default = builtin_config(level)
    if path is None and name in KIND.values() and default is not None:
        path = default if load_config(default).algorithm.kind == name else None
    return path


def stage_config(
    level: str, name: str, seed: int, total_steps: int | None, generate: bool, **overrides: Any
) -> tuple[TrainConfig, str] | str:
    """The config of one training stage and where it came from, or why there is none."""
    settings = {"seed": seed, "total_steps": total_steps, "metrics__progress": False, **overrides}
    path = find_config(level, name)
    template = find_config(TEMPLATE, name)
    if path is not None:
        cfg, source = load_config(path, **settings), label(path)
    elif generate and template is not None:
        data = read_yaml_mapping(template, TrainConfig.model_fields)
        swapped = {key: data[key] for key in RECIPE_KEYS if key in data}
        swapped["algorithm"] = {k: v for k, v in swapped["algorithm"].items() if k != "init_from"}
        cfg = load_config(None, level=level, **swapped, **settings)
        source = f"generated: configs/{level}.yaml with {', '.join(swapped)} of {label(template)}"
    else:
        return f"no configs/recipes/{level}_{name}.yaml" + ("" if generate else " (--recipe-files-only)")
    if cfg.algorithm.kind != KIND[name]:
        return f"{source} is a {cfg.algorithm.kind} config, not {KIND[name]}"
    return cfg, source


def whole_towns(level: str, n: int) -> int:
    """n rounded up to whole towns (a social level plays towns of its population)."""
    size = default_agents_per_town(compile_level(level))
    return -(-n // size) * size


def default_recipe(level: str) -> str:
    return load_config(None, level=level).algorithm.kind


def seeds_for(level: str, recipe: str, seeds: list[int] | None) -> list[int]:
    if seeds is not None:
        return seeds
    return DEFAULT_SEEDS if recipe == default_recipe(level) else OTHER_SEEDS


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def train_stage(cfg: TrainConfig, run_dir: Path) -> tuple[Any, dict[str, Any], float]:
    write_resolved_config(cfg, run_dir)
    started = time.perf_counter()
    trainer = make_trainer(cfg, run_dir)
    summary = trainer.run()
    if "interrupted" in summary:  # a part-trained policy is not a result: record nothing more
        raise SystemExit(f"{run_dir}: stopped by {summary['interrupted']}; this run is not recorded")
    return trainer, summary, time.perf_counter() - started


def config_for(
    level: str, name: str, seed: int, args: argparse.Namespace, **extra: Any
) -> tuple[TrainConfig, str] | str:
    """The config of one stage of a recipe, with the command line's overrides, or why none."""
    extra = {"env__num_envs": args.num_envs, **extra}
    return stage_config(level, name, seed, args.total_steps, not args.recipe_files_only, **extra)


def check_stages(level: str, names: list[str], args: argparse.Namespace) -> str | None:
    """Why a recipe cannot run, before its first stage trains: a stage without a config, or a
    PPO stage whose network does not fit the student it starts from."""
    configs = []
    for name in names:
        if isinstance(found := config_for(level, name, 0, args), str):
            return found
        configs.append(found)
    if len(configs) == 2 and configs[0][0].network != configs[1][0].network:
        return f"{configs[1][1]}: its network does not fit the student of {configs[0][1]}"
    return None


def run_trained(
    level: str, recipe: str, seed: int, args: argparse.Namespace, out: Path
) -> dict[str, Any] | str:
    """dqn, ppo, dagger or dagger_ppo: train each stage, evaluate the last one's network."""
    names = STAGES[recipe]
    if isinstance(why := check_stages(level, names, args), str):
        return why
    steps = seconds = 0.0
    curve: list[dict[str, float]] = []
    stages: list[dict[str, Any]] = []
    sources: list[str] = []
    for name in names:
        init = {"algorithm__init_from": stages[-1]["checkpoint"]} if name == "ppo_from_dagger" else {}
        found = config_for(level, name, seed, args, **init)
        assert not isinstance(found, str)
        cfg, source = found
        run_dir = out / name
        trainer, summary, took = train_stage(cfg, run_dir)
        curve += lr.shifted(lr.learning_curve(run_dir / "metrics.db"), steps, seconds)
        steps, seconds = steps + summary["agent_steps"], seconds + took
        stages.append({"algorithm": cfg.algorithm.kind, "checkpoint": summary["checkpoint"]})
        stages[-1].update(agent_steps=summary["agent_steps"], train_seconds=round(took, 1))
        sources.append(source)
    episodes, network = whole_towns(level, args.episodes), trainer.agent.online.eval()
    return {
        "seed": seed,
        "config": " + ".join(sources),
        "generated": any(s.startswith("generated") for s in sources),
        "algorithm": "+".join(s["algorithm"] for s in stages),
        "network": cfg.network.kind,
        "total_steps": int(steps),
        "train_seconds": round(seconds, 1),
        "agent_steps_per_second": round(steps / seconds),
        "final_mean_stage": summary["mean_stage"],
        "learned": evaluate(level, "learned", episodes, 1.0, network, device=trainer.device),
        "curve": curve,
        "stages": stages if len(stages) > 1 else [],
        "machine": machine(),
    }


def run_bc(level: str, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Capture the scripted policy's play, clone it, evaluate the clone greedily."""
    from townlet_train.dataset import capture
    from townlet_train.policy import load_network
    from townlet_train.run.bc import train_bc

    started = time.perf_counter()
    slots = whole_towns(level, 64)
    manifest = capture(level, "scripted", args.bc_steps, out / "dataset", seed=seed, num_envs=slots)
    result = train_bc(out / "dataset", out / "bc", args.bc_updates, seed=seed, device="cpu")
    seconds = time.perf_counter() - started
    network, cfg = load_network(Path(result["checkpoint"]), "cpu")
    steps = manifest["agent_steps"]
    return {
        "seed": seed,
        "config": f"capture --policy scripted ({steps:,} agent-steps) + bc ({result['updates']:,} updates)",
        "generated": False,
        "algorithm": "bc",
        "network": cfg.network.kind,
        "total_steps": steps,
        "train_seconds": round(seconds, 1),
        "agent_steps_per_second": round(steps / seconds),
        "final_mean_stage": None,
        "learned": evaluate(level, "learned", whole_towns(level, args.episodes), 1.0, network),
        "curve": [],
        "point": {"agent_steps": steps, "seconds": seconds},
        "machine": machine(),
    }


def run_one(level: str, recipe: str, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any] | str:
    out = out / level / recipe / f"seed{seed}"
    return run_bc(level, seed, args, out) if recipe == "bc" else run_trained(level, recipe, seed, args, out)


def report(recipe: str, seed: int, run: dict[str, Any]) -> None:
    ev = run["learned"]
    print(
        f"   {recipe} seed {seed}: learned mean survival {ev['mean_survival']:.1f} / {ev['max_steps']} "
        f"(median {ev['median_survival']:.0f}); {run['total_steps']:,} agent-steps in "
        f"{run['train_seconds']:.0f} s ({run['agent_steps_per_second']:,}/s); {run['config']}",
        flush=True,
    )


def plan(args: argparse.Namespace) -> None:
    for level in args.levels:
        print(f"== {level} (default recipe: {default_recipe(level)})")
        for recipe in args.recipes:
            seeds = seeds_for(level, recipe, args.seeds)
            if recipe == "bc":
                print(f"   bc seeds {seeds}: capture {args.bc_steps:,} scripted agent-steps, then train_bc")
                continue
            parts = []
            for name in STAGES[recipe]:
                found = config_for(level, name, 0, args)
                parts.append(found if isinstance(found, str) else f"{found[1]} ({found[0].total_steps:,})")
            print(f"   {recipe} seeds {seeds}: {' + '.join(parts)}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", nargs="+", default=builtin_levels(), help="default: every built-in level")
    parser.add_argument(
        "--recipes", nargs="+", default=list(lr.RECIPES), choices=lr.RECIPES, help="default: all"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, help="default: 0 1 2 for a level's default recipe, 0 for the others"
    )
    parser.add_argument(
        "--total-steps", type=int, help="override every training stage's budget (default: the configs')"
    )
    parser.add_argument(
        "--bc-steps", type=int, default=BC_STEPS, help="bc: agent-steps captured (default: %(default)s)"
    )
    parser.add_argument("--bc-updates", type=int, help="bc: gradient updates (default: train_bc's)")
    parser.add_argument("--num-envs", type=int, help="override every stage's slots (smoke runs)")
    parser.add_argument(
        "--episodes", type=int, default=200, help="evaluation episodes per policy (default: %(default)s)"
    )
    parser.add_argument("--recipe-files-only", action="store_true", help="do not generate missing configs")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/learning-benchmark"), help="default: %(default)s"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="the JSON to merge into (default: benchmarks/results/learning.json)",
    )
    parser.add_argument("--plot", type=Path, help="default: docs/learning_curves.png, or --results as .png")
    parser.add_argument("--plan", action="store_true", help="print what would run, and from which configs")
    return parser.parse_args(argv)


def load_results(path: Path) -> dict[str, Any]:
    return lr.upgrade(json.loads(path.read_text())) if path.is_file() else {"format": lr.FORMAT, "levels": {}}


def run_level(level: str, args: argparse.Namespace, results: dict[str, Any], out: Path) -> None:
    print(f"== {level}", flush=True)
    entry = lr.level_entry(results, level, default_recipe(level))
    for policy in ("scripted", "random"):
        entry["baselines"][policy] = evaluate(level, policy, whole_towns(level, args.episodes), 1.0)
        print(f"   {policy}: mean survival {entry['baselines'][policy]['mean_survival']:.1f}", flush=True)
    entry["baselines_machine"] = machine()  # the scripted policy may change between runs
    for recipe in args.recipes:
        for seed in seeds_for(level, recipe, args.seeds):
            run = run_one(level, recipe, seed, args, out)
            if isinstance(run, str):
                print(f"   {recipe}: not run, {run}", flush=True)
                lr.record_missing(results, level, recipe, run)
                break
            lr.record_run(results, level, recipe, seed, run)
            report(recipe, seed, run)
            save(results, args)


def save(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Write this run's levels into the results file as it is now on disk, under a lock, so that
    runs of other levels at the same time (one per core) keep theirs."""
    import fcntl

    from benchmarks.learning_plot import plot

    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = load_results(args.results)
        merged["levels"].update({k: v for k, v in results["levels"].items() if k in args.levels})
        args.results.write_text(json.dumps(merged, indent=1))
    plot(merged, args.plot or (PLOT if args.results == RESULTS else args.results.with_suffix(".png")))


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.plan:
        plan(args)
        return
    results = load_results(args.results)
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    for level in args.levels:
        run_level(level, args, results, out)
        save(results, args)


if __name__ == "__main__":
    main()

"""The data of benchmarks/results/learning.json: its layout, merging and per-recipe summaries.

Plain Python without torch, shared by learning.py (which writes the file, with the curves it
reads from each run's metrics.db) and results_page.py (which renders docs/results.md from it).
The layout (format 2):

    {"format": 2,
     "levels": {LEVEL: {
         "default_recipe": "dqn",
         "baselines": {"scripted": EVAL, "random": EVAL},      # evaluated once per level
         "baselines_machine": {...},                          # when, and at which commit
         "recipes": {RECIPE: {"seeds": {"0": RUN, ...}, "summary": SUMMARY}},
         "missing": {RECIPE: "why it has no config"}}}}      # only where one was asked for

RUN holds the learned policy's evaluation (`learned`), the budget and timing, the config it
came from, the machine, and the curve: training survival per bin of agent-steps, with the
seconds of training at that point (`seconds`; absent for runs from before metrics.db recorded
wall-clock time). SUMMARY is `aggregate` over the seeds' learned mean survival.
"""

from __future__ import annotations

import sqlite3
import statistics
from pathlib import Path
from typing import Any

FORMAT = 2
RECIPES = ("dqn", "ppo", "bc", "dagger", "dagger_ppo")


def aggregate(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summary(recipe: dict[str, Any]) -> dict[str, float]:
    """`aggregate` of the learned mean survival of a recipe's seeds."""
    return aggregate([run["learned"]["mean_survival"] for run in recipe["seeds"].values()])


def upgrade(results: dict[str, Any]) -> dict[str, Any]:
    """A results file of any format as format 2. Format 1 held one DQN run per level (the
    level's default config, seed 0) with its three evaluations side by side, and one machine."""
    if results.get("format") == FORMAT:
        return results
    machine = results.get("machine", {})
    levels: dict[str, Any] = {}
    for level, old in results.get("levels", {}).items():
        run = {
            "seed": 0,
            "config": f"configs/{level}.yaml (the default DQN config at commit {machine.get('commit', '?')})",
            "generated": False,
            "algorithm": "dqn",
            "network": old["network"],
            "total_steps": old["total_steps"],
            "train_seconds": old["train_seconds"],
            "agent_steps_per_second": old["agent_steps_per_second"],
            "final_mean_stage": old["final_mean_stage"],
            "learned": old["eval"]["learned"],
            "curve": old["curve"],
            "machine": machine,
        }
        levels[level] = {
            "default_recipe": "dqn",
            "baselines": {p: old["eval"][p] for p in ("scripted", "random")},
            "baselines_machine": machine,
            "recipes": {"dqn": {"seeds": {"0": run}}},
        }
    return refresh({"format": FORMAT, "levels": levels})


def level_entry(results: dict[str, Any], level: str, default_recipe: str) -> dict[str, Any]:
    entry = results["levels"].setdefault(level, {"baselines": {}, "recipes": {}})
    entry["default_recipe"] = default_recipe
    return entry


def record_run(results: dict[str, Any], level: str, recipe: str, seed: int, run: dict[str, Any]) -> None:
    """Put one (level, recipe, seed) run in, replacing an earlier run of the same three."""
    entry = results["levels"][level]
    entry["recipes"].setdefault(recipe, {"seeds": {}})["seeds"][str(seed)] = run
    entry.get("missing", {}).pop(recipe, None)
    refresh(results)


def record_missing(results: dict[str, Any], level: str, recipe: str, reason: str) -> None:
    results["levels"][level].setdefault("missing", {})[recipe] = reason


def refresh(results: dict[str, Any]) -> dict[str, Any]:
    """Recompute every recipe's summary from its seeds, and keep the seeds in numeric order."""
    for entry in results["levels"].values():
        for recipe in entry["recipes"].values():
            recipe["seeds"] = dict(sorted(recipe["seeds"].items(), key=lambda kv: int(kv[0])))
            recipe["summary"] = summary(recipe)
        if not entry.get("missing"):
            entry.pop("missing", None)
    return results


def learning_curve(db: Path, bins: int = 40) -> list[dict[str, float]]:
    """Mean training survival, difficulty, stage and seconds of training of the episodes in
    each agent-step bin."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT agent_steps, steps_survived, difficulty, curriculum_stage, wall_seconds FROM episodes"
        ).fetchall()
    if not rows:
        return []
    width = max(1, max(r[0] for r in rows) // bins + 1)
    grouped: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(row[0] // width, []).append(row[1:])
    curve = []
    for key in sorted(grouped):
        items = grouped[key]
        point = {"agent_steps": (key + 0.5) * width}
        for name, column in (("survival", 0), ("difficulty", 1), ("stage", 2), ("seconds", 3)):
            values = [i[column] for i in items if i[column] is not None]
            if len(values) == len(items):
                point[name] = sum(values) / len(values)
        curve.append(point)
    return curve


def shifted(curve: list[dict[str, float]], steps: float, seconds: float) -> list[dict[str, float]]:
    """A later stage's curve, placed after the stages before it."""
    return [
        {
            **p,
            "agent_steps": p["agent_steps"] + steps,
            **({"seconds": p["seconds"] + seconds} if "seconds" in p else {}),
        }
        for p in curve
    ]

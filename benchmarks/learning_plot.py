"""docs/learning_curves.png from benchmarks/results/learning.json (see learning.py).

One row per level; the left panel against agent-steps, the right one against seconds of
training. Each recipe's seeds are drawn in one colour (training survival, at whatever
difficulty the run's curriculum set); a BC run, which has no training episodes, is one marker at
its greedy evaluation; the scripted and random evaluations at difficulty 1.0 are grey lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import learning_results as lr
from townlet_env import builtin_levels

COLOURS = dict(zip(lr.RECIPES, ("tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:red"), strict=True))
AXES = (("agent_steps", 1e6, "agent-steps (millions)"), ("seconds", 60.0, "minutes of training"))


def _draw(ax: Any, entry: dict[str, Any], key: str, scale: float) -> bool:
    """Draw one panel; whether any run had points on this axis."""
    drawn = False
    for recipe in [r for r in lr.RECIPES if r in entry["recipes"]]:
        label: str | None = recipe
        for run in entry["recipes"][recipe]["seeds"].values():
            points = [p for p in run["curve"] if key in p]
            if points:
                xs = [p[key] / scale for p in points]
                ax.plot(xs, [p["survival"] for p in points], color=COLOURS[recipe], alpha=0.8, label=label)
                label, drawn = None, True
            elif "point" in run:
                x = run["point"][key] / scale
                y = run["learned"]["mean_survival"]
                ax.plot(
                    [x], [y], "o", color=COLOURS[recipe], label=f"{label} (greedy eval)" if label else None
                )
                label, drawn = None, True
    for policy, style in (("scripted", "--"), ("random", ":")):
        if policy in entry["baselines"]:
            value = entry["baselines"][policy]["mean_survival"]
            ax.axhline(value, linestyle=style, color="gray", label=f"{policy} at 1.0: {value:.0f}")
    return drawn


def _difficulty(ax: Any, entry: dict[str, Any]) -> None:
    """The curriculum difficulty of one run (the default recipe's first seed, else the first
    recipe with a curve), on a right-hand axis."""
    for recipe in [entry["default_recipe"], *lr.RECIPES]:
        runs = list(entry["recipes"].get(recipe, {}).get("seeds", {}).values())
        points = [p for p in runs[0]["curve"] if "difficulty" in p] if runs else []
        if points:
            twin = ax.twinx()
            xs = [p["agent_steps"] / 1e6 for p in points]
            twin.plot(xs, [p["difficulty"] for p in points], color="tab:orange", alpha=0.4, linestyle="-.")
            twin.set_ylabel(f"{recipe} difficulty", color="tab:orange", fontsize=8)
            twin.set_ylim(0, 1.1)
            return


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [lv for lv in builtin_levels() if lv in results["levels"]]
    if not levels:
        return
    fig, axes = plt.subplots(len(levels), 2, figsize=(12, 2.8 * len(levels)), squeeze=False)
    for row, level in zip(axes, levels, strict=True):
        entry = results["levels"][level]
        for ax, (key, scale, xlabel) in zip(row, AXES, strict=True):
            if not _draw(ax, entry, key, scale):
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", color="gray")
            ax.set_title(f"{level}: training survival against {xlabel.split(' (')[0]}", fontsize=9)
            ax.set_ylabel("steps survived")
            ax.set_xlabel(xlabel)
        row[0].legend(fontsize=7, loc="lower right")
        _difficulty(row[0], entry)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)

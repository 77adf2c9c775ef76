"""Write the measured tables of docs/results.md from benchmarks/results/learning.json and
benchmarks/results/sb3_reference.json.

    python -m benchmarks.results_page        # rewrites the blocks between the markers

Only the blocks between `<!-- results:begin -->` and `<!-- results:end -->`, and between
`<!-- reference:begin -->` and `<!-- reference:end -->`, are generated; the prose around them is written by
hand. tests/test_results_page.py checks that the committed page matches the committed JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import learning_results as lr

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "learning.json"
REFERENCE_RESULTS = ROOT / "benchmarks" / "results" / "sb3_reference.json"
PAGE = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
REFERENCE_BEGIN, REFERENCE_END = "<!-- reference:begin -->", "<!-- reference:end -->"
ORDER = [
    "L0_minimal",
    "L0_5_dual_resource",
    "L1_full_observability",
    "L2_partial_observability",
    "L3_temporal_mechanics",
    "L4_social",
]


def _spread(values: list[float], fmt: str, unit: str = "") -> str:
    low, high = min(values), max(values)
    return f"{low:{fmt}}{unit}" if low == high else f"{low:{fmt}}-{high:{fmt}}{unit}"


def recipe_row(level: str, name: str, entry: dict) -> str:
    """One level x recipe: the mean learned survival over seeds, with its spread (sample
    standard deviation, min-max) when there are several; the level's scripted and random."""
    runs = list(entry["recipes"][name]["seeds"].values())
    summary = lr.aggregate([r["learned"]["mean_survival"] for r in runs])
    learned = f"**{summary['mean']:.0f}**"
    if summary["n"] > 1:
        learned += f" ± {summary['std']:.0f} ({summary['min']:.0f}-{summary['max']:.0f})"
    default = " (default)" if name == entry["default_recipe"] else ""
    label = name + default + ("*" if any(r["generated"] for r in runs) else "")
    stages = [r["final_mean_stage"] for r in runs if r["final_mean_stage"] is not None]
    stage = f"{sum(stages) / len(stages):.2f}" if stages else "-"
    speed = sum(r["agent_steps_per_second"] for r in runs) / len(runs)
    base = entry["baselines"]
    return (
        f"| {level} | {label} | {runs[0]['network']} | {summary['n']} "
        f"| {_spread([r['total_steps'] / 1e6 for r in runs], '.1f', ' M')} | {speed:,.0f}/s "
        f"| {learned} / {runs[0]['learned']['max_steps']} | {base['scripted']['mean_survival']:.0f} "
        f"| {base['random']['mean_survival']:.0f} | {stage} |"
    )


def table(results: dict) -> str:
    results = lr.upgrade(results)
    rows = [
        "| level | recipe | network | seeds | agent-steps | train speed | learned: mean ± std (min-max) "
        "| scripted | random | final mean stage |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    missing, runs = [], []
    for level in [lv for lv in ORDER if lv in results["levels"]]:
        entry = results["levels"][level]
        for name in [r for r in lr.RECIPES if r in entry["recipes"]]:
            rows.append(recipe_row(level, name, entry))
            runs += entry["recipes"][name]["seeds"].values()
        missing += [f"{level} {name} ({why})" for name, why in entry.get("missing", {}).items()]
    episodes = sorted({r["learned"]["episodes"] for r in runs})
    setups = sorted(
        {
            f"commit {m['commit']} (torch {m['torch']}, {m['threads']} thread(s), {m['cpu']})"
            for m in (r["machine"] for r in runs)
        }
    )
    notes = [
        f"Mean survival over {', '.join(map(str, episodes))} greedy evaluation episodes per run at "
        "difficulty 1.0; the scripted and random policies are evaluated once per level."
    ]
    if any(r["generated"] for r in runs):
        notes.append(
            "* Config generated from the level's default config with L1's settings for that stage "
            "(algorithm, network, curriculum, replay, exploration): the level has no config for it."
        )
    if missing:
        notes.append(f"Not run, no recipe config: {'; '.join(missing)}.")
    notes.append(f"Runs: {'; '.join(setups)}.")
    return "\n".join([*rows, "", " ".join(notes)])


def reference_table(reference: dict) -> str:
    """One row per stable-baselines3 run (algorithm and level), in level order."""
    rows = [
        "| learner | level | agent-steps | train speed | learned (greedy) | median | scripted | random |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs = sorted(reference["runs"].items(), key=lambda kv: (ORDER.index(kv[1]["level"]), kv[0]))
    for _, e in runs:
        ev = e["eval"]
        rows.append(
            f"| {e['algorithm'].split(' (')[0]} | {e['level']} | {e['timesteps'] / 1e6:.1f} M "
            f"| {e['steps_per_second']:,}/s | **{ev['learned']['mean_survival']:.0f}** / "
            f"{ev['learned']['max_steps']} | {ev['learned']['median_survival']:.0f} "
            f"| {ev['scripted']['mean_survival']:.0f} | {ev['random']['mean_survival']:.0f} |"
        )
    setups = sorted(
        {
            f"stable-baselines3 {v['stable_baselines3']}, sb3-contrib {v['sb3_contrib']}, "
            f"torch {v['torch']}, {v['threads']} thread(s)"
            for v in (run["versions"] for _, run in runs)
        }
    )
    rows.append("")
    rows.append(
        f"Trained at difficulty 1.0, evaluated greedily (masked) on {ev['learned']['episodes']} episodes; "
        f"{'; '.join(setups)}."
    )
    return "\n".join(rows)


def _replace(page: str, begin: str, end: str, block: str) -> str:
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def render(page: str, results: dict, reference: dict | None = None) -> str:
    page = _replace(page, BEGIN, END, table(results))
    if reference is not None and REFERENCE_BEGIN in page:
        page = _replace(page, REFERENCE_BEGIN, REFERENCE_END, reference_table(reference))
    return page


def main() -> None:
    results = json.loads(RESULTS.read_text())
    reference = json.loads(REFERENCE_RESULTS.read_text()) if REFERENCE_RESULTS.is_file() else None
    PAGE.write_text(render(PAGE.read_text(), results, reference))


if __name__ == "__main__":
    main()

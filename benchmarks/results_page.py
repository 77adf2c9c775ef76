"""Write the measured tables of docs/results.md from benchmarks/results/learning.json and
benchmarks/results/sb3_reference.json.

    python benchmarks/results_page.py        # rewrites the blocks between the markers

Only the blocks between `<!-- results:begin -->` and `<!-- results:end -->`, and between
`<!-- reference:begin -->` and `<!-- reference:end -->`, are generated; the prose around them is written by
hand. tests/test_results_page.py checks that the committed page matches the committed JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

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
]


def table(results: dict) -> str:
    rows = [
        "| level | network | agent-steps | train speed | learned | scripted | random | final mean stage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in [lv for lv in ORDER if lv in results["levels"]]:
        e = results["levels"][level]
        ev = e["eval"]
        cap = ev["learned"]["max_steps"]
        speed = e["agent_steps_per_second"]
        rows.append(
            f"| {level} | {e['network']} | {e['total_steps'] / 1e6:.1f} M | {speed:,}/s "
            f"| **{ev['learned']['mean_survival']:.0f}** / {cap} | {ev['scripted']['mean_survival']:.0f} "
            f"| {ev['random']['mean_survival']:.0f} | {e['final_mean_stage']:.2f} |"
        )
    m = results["machine"]
    rows.append("")
    rows.append(
        f"Mean survival over {ev['learned']['episodes']} evaluation episodes per policy at difficulty 1.0; "
        f"torch {m['torch']}, {m['threads']} threads, {m['cpu']}, commit {m['commit']}."
    )
    return "\n".join(rows)


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

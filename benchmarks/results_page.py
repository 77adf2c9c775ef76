"""Write the measured tables of docs/results.md from benchmarks/results/learning.json.

    python benchmarks/results_page.py        # rewrites the block between the markers

Only the block between `<!-- results:begin -->` and `<!-- results:end -->` is generated; the
prose around it is written by hand. tests/test_results_page.py checks that the committed page
matches the committed JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "learning.json"
PAGE = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
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


def render(page: str, results: dict) -> str:
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table(results)}\n{END}{tail}"


def main() -> None:
    results = json.loads(RESULTS.read_text())
    PAGE.write_text(render(PAGE.read_text(), results))


if __name__ == "__main__":
    main()

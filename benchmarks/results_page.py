"""Write the measured tables of docs/results.md from benchmarks/results/learning.json and
benchmarks/results/sb3_ppo.json.

    python benchmarks/results_page.py        # rewrites the blocks between the markers

Only the blocks between `<!-- results:begin -->` and `<!-- results:end -->`, and between
`<!-- ppo:begin -->` and `<!-- ppo:end -->`, are generated; the prose around them is written by
hand. tests/test_results_page.py checks that the committed page matches the committed JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "learning.json"
PPO_RESULTS = ROOT / "benchmarks" / "results" / "sb3_ppo.json"
PAGE = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PPO_BEGIN, PPO_END = "<!-- ppo:begin -->", "<!-- ppo:end -->"
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


def ppo_table(ppo: dict) -> str:
    rows = [
        "| level | agent-steps | train speed | learned (greedy) | median | scripted | random |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in [lv for lv in ORDER if lv in ppo["levels"]]:
        e = ppo["levels"][level]
        ev = e["eval"]
        rows.append(
            f"| {level} | {e['timesteps'] / 1e6:.1f} M | {e['steps_per_second']:,}/s "
            f"| **{ev['learned']['mean_survival']:.0f}** / {ev['learned']['max_steps']} "
            f"| {ev['learned']['median_survival']:.0f} | {ev['scripted']['mean_survival']:.0f} "
            f"| {ev['random']['mean_survival']:.0f} |"
        )
    v = e["versions"]
    rows.append("")
    rows.append(
        f"{e['algorithm']}, trained at difficulty 1.0; {ev['learned']['episodes']} evaluation episodes; "
        f"stable-baselines3 {v['stable_baselines3']}, sb3-contrib {v['sb3_contrib']}, "
        f"torch {v['torch']}, {v['threads']} thread(s)."
    )
    return "\n".join(rows)


def _replace(page: str, begin: str, end: str, block: str) -> str:
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def render(page: str, results: dict, ppo: dict | None = None) -> str:
    page = _replace(page, BEGIN, END, table(results))
    if ppo is not None and PPO_BEGIN in page:
        page = _replace(page, PPO_BEGIN, PPO_END, ppo_table(ppo))
    return page


def main() -> None:
    results = json.loads(RESULTS.read_text())
    ppo = json.loads(PPO_RESULTS.read_text()) if PPO_RESULTS.is_file() else None
    PAGE.write_text(render(PAGE.read_text(), results, ppo))


if __name__ == "__main__":
    main()

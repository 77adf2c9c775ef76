"""Write the measured tables of docs/performance.md from the throughput JSON files.

    python -m benchmarks.performance_page   # rewrites the block between the markers

Reads `benchmarks/results/env_throughput.json`, `train_throughput.json` and
`step_profile.json`. Only the blocks between `<!-- performance:begin -->` and
`<!-- performance:end -->`, and between `<!-- profile:begin -->` and `<!-- profile:end -->`,
are generated; the prose around them (what limits each figure) is written by hand.
tests/test_results_page.py checks that the committed page matches the committed JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV_RESULTS = ROOT / "benchmarks" / "results" / "env_throughput.json"
TRAIN_RESULTS = ROOT / "benchmarks" / "results" / "train_throughput.json"
PROFILE_RESULTS = ROOT / "benchmarks" / "results" / "step_profile.json"
PAGE = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- performance:begin -->", "<!-- performance:end -->"
PROFILE_BEGIN, PROFILE_END = "<!-- profile:begin -->", "<!-- profile:end -->"
L1, L2, L3 = "L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics"


def rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e5 else f"{x / 1e3:.1f} k"


def env_table(levels: dict[str, Any]) -> list[str]:
    slots = list(next(iter(levels.values()))["slots"])
    rows = [
        "| level | " + " | ".join(f"{s} slots" for s in slots) + " | % of floor at 4096 | B/slot |",
        "|---|" + "---|" * (len(slots) + 2),
    ]
    for level, entry in levels.items():
        cells = [
            f"{rate(v['agent_steps_per_s'])} / {rate(v['reused_agent_steps_per_s'])}"
            for v in entry["slots"].values()
        ]
        at = entry["slots"]["4096"]
        fractions = f"{at['fraction_of_floor']:.0%} / {at['reused_fraction_of_floor']:.0%}"
        rows.append(f"| {level} | {' | '.join(cells)} | {fractions} | {at['state_bytes_per_slot']:.0f} |")
    return rows


def comparison_table(levels: dict[str, Any]) -> list[str]:
    rows = [
        "| level | bare-tensor floor at 4096 | plain-Python reference | Townlet's best / reference "
        "| `gym.make` steps/s |",
        "|---|---|---|---|---|",
    ]
    for level, e in levels.items():
        rows.append(
            f"| {level} | {rate(e['slots']['4096']['floor_agent_steps_per_s'])} "
            f"| {e['reference_agent_steps_per_s']:,.0f} | x{e['speedup_over_reference']:,.0f} "
            f"| {e['gym_make_steps_per_s']:,.0f} |"
        )
    return rows


def train_table(train: dict[str, Any]) -> list[str]:
    rows = [
        "| level | network | agent-steps/s with learning | updates/s |",
        "|---|---|---|---|",
    ]
    for level, e in train["levels"].items():
        rows.append(
            f"| {level} | {e['network']} | {e['agent_steps_per_s']:,.0f} | {e['updates_per_s']:.1f} |"
        )
    return rows


def cases_table(cases: dict[str, Any]) -> list[str]:
    """The L1 cases of train_throughput.py: medians of alternating rounds, with the load."""
    rows = [
        "| L1 case | algorithm | slots | rollout x epochs | network | agent-steps/s with learning "
        "| per CPU-second | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in cases["runs"].items():
        alg, net = c["algorithm"], c["network"]
        shape = f"{alg['rollout_steps']} x {alg['epochs']}" if alg["kind"] == "ppo" else "-"
        rows.append(
            f"| {name} | {alg['kind']} | {c['num_envs']} | {shape} | {net['kind']} {net['hidden']}, embed "
            f"{net['field_embed']} | {rate(c['agent_steps_per_s'])} | {rate(c['agent_steps_per_cpu_s'])} "
            f"| {c['load_before'][0]:.1f} |"
        )
    return rows


def ppo_target(train: dict[str, Any]) -> list[str]:
    runs = train.get("cases", {}).get("runs", {})
    if "ppo_recipe" not in runs or "ppo_fast" not in runs:
        return ["| trainer PPO (MLP): 50 k agent-steps/s with learning | not measured | open |"]
    recipe, fast = runs["ppo_recipe"]["agent_steps_per_s"], runs["ppo_fast"]["agent_steps_per_s"]
    verdict = "yes" if recipe >= 5e4 else ("with `ppo_fast`'s settings" if fast >= 5e4 else "no")
    return [
        f"| trainer PPO (MLP): 50 k agent-steps/s with learning | recipe {rate(recipe)}, "
        f"`ppo_fast` {rate(fast)} | {verdict} |"
    ]


def targets_table(levels: dict[str, Any], train: dict[str, Any]) -> list[str]:
    def best(level: str) -> float:
        at = levels[level]["slots"]["4096"]
        return max(at["agent_steps_per_s"], at["reused_agent_steps_per_s"])

    def verdict(ok: bool) -> str:
        return "yes" if ok else "no"

    l1_floor = levels[L1]["slots"]["4096"]["reused_fraction_of_floor"]
    gym = [e["gym_make_steps_per_s"] for e in levels.values()]
    t1, t2 = (train["levels"][lv]["agent_steps_per_s"] for lv in (L1, L2))
    largest = max(int(s) for s in levels[L1]["slots"])
    per_slot = max(e["slots"][str(largest)]["state_bytes_per_slot"] for e in levels.values())
    return [
        "| target | measured | met? |",
        "|---|---|---|",
        f"| L1: 4 M agent-steps/s at 4096 slots | {rate(best(L1))} | {verdict(best(L1) >= 4e6)} |",
        f"| L1: at least half the bare-tensor floor | {l1_floor:.0%} | {verdict(l1_floor >= 0.5)} |",
        f"| L2, L3: 3 M at 4096 slots | {rate(best(L2))}, {rate(best(L3))} "
        f"| {verdict(min(best(L2), best(L3)) >= 3e6)} |",
        f"| `gym.make`: 10 k steps/s for one agent | {rate(min(gym))} to {rate(max(gym))} "
        f"| {verdict(min(gym) >= 1e4)} |",
        f"| trainer L1 (MLP): 20 k agent-steps/s with learning | {rate(t1)} | {verdict(t1 >= 2e4)} |",
        f"| trainer L2 (LSTM): 5 k agent-steps/s with learning | {rate(t2)} | {verdict(t2 >= 5e3)} |",
        *ppo_target(train),
        f"| {largest} slots fit comfortably | {per_slot:.0f} B of state per slot "
        f"({per_slot * largest / 1e6:.1f} MB at {largest}) | yes |",
        "| GPU: 200 M agent-steps/s at 2^20 slots on an H100 | not measured | open |",
    ]


def cases_block(train: dict[str, Any]) -> list[str]:
    if "cases" not in train:
        return []
    cm = train["cases"]["machine"]
    return [
        "### Trainer throughput on L1: DQN, PPO, DAgger (learning included)",
        "",
        *cases_table(train["cases"]),
        "",
        f"Medians of {train['cases']['rounds']} alternating rounds: {cm['date']}, commit {cm['commit']}, "
        f"torch {cm['torch']}, {cm['threads']} thread(s), {cm['cpus']} CPUs, {cm['cpu']}; load average "
        f"{cm['load'][0]:.1f} at the start.",
        "",
    ]


def block(env: dict[str, Any], train: dict[str, Any]) -> str:
    cpu = env["runs"]["cpu"]
    levels, m, tm = cpu["levels"], cpu["machine"], train["machine"]
    parts = [
        "### Env throughput (agent-steps per second: `copy=True` / `copy=False`)",
        "",
        *env_table(levels),
        "",
        "![throughput against slot count](env_throughput.png)",
        "",
        *comparison_table(levels),
        "",
        f"Env figures: {m['date']}, commit {m['commit']}, torch {m['torch']}, {m['threads']} threads, "
        f"{m['device']}.",
        "",
        "### Trainer throughput (default configs, learning included)",
        "",
        *train_table(train),
        "",
        f"Trainer figures: {tm['date']}, commit {tm['commit']}, torch {tm['torch']}, "
        f"{tm['threads']} threads, {tm['cpu']}.",
        "",
        *cases_block(train),
        "### Against the targets",
        "",
        *targets_table(levels, train),
    ]
    return "\n".join(parts)


def profile_block(prof: dict[str, Any]) -> str:
    runs = prof["runs"]
    names = list(runs[0]["phase_seconds"])
    rows = [
        "| phase | " + " | ".join(f"{r['level'].split('_')[0]}, {r['slots']} slots" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    totals = [sum(r["phase_seconds"].values()) for r in runs]
    for name in names:
        cells = [
            f"{r['phase_seconds'][name] * 1e6:,.0f} us ({r['phase_seconds'][name] / t:.0%})"
            for r, t in zip(runs, totals, strict=True)
        ]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    rows.append("| all phases | " + " | ".join(f"{t * 1e3:.2f} ms" for t in totals) + " |")
    rows.append(
        "| aten operations per `env.step` | "
        + " | ".join(f"{r['aten_ops_per_env_step']:.0f}" for r in runs)
        + " |"
    )
    rows.append("")
    threads = f"{prof['threads']} thread" + ("s" if prof["threads"] != 1 else "")
    rows.append(f"Profile: torch {prof['torch']}, {threads}, commit {prof['commit']}.")
    return "\n".join(rows)


def replace_block(page: str, begin: str, end: str, body: str) -> str:
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def render(page: str, env: dict[str, Any], train: dict[str, Any], prof: dict[str, Any]) -> str:
    page = replace_block(page, BEGIN, END, block(env, train))
    return replace_block(page, PROFILE_BEGIN, PROFILE_END, profile_block(prof))


def main() -> None:
    env, train = json.loads(ENV_RESULTS.read_text()), json.loads(TRAIN_RESULTS.read_text())
    prof = json.loads(PROFILE_RESULTS.read_text())
    PAGE.write_text(render(PAGE.read_text(), env, train, prof))


if __name__ == "__main__":
    main()

"""L5_town throughput beside L1 and L4 in the same run: agent-steps per second of TownletVectorEnv.

    python -m benchmarks.economy_throughput                     # 4096 L1 slots, 4098 L4 and L5
    python -m benchmarks.economy_throughput --steps 200 --repeats 5 --threads 1 2

Like benchmarks/social_throughput.py: towns of six make 4098 slots (683 towns) for L4 and L5,
L1 runs 4096 towns of one; random legal actions drawn on the device; a warm-up, then
`--repeats` timed runs of `--steps` steps, interleaved level by level so that a busy shared CPU
slows all alike; the median is reported, with reused buffers (`copy=False`, what the trainer
uses). Also a breakdown of one L5 tick (the core `step`, the observation, the mask, the event
scheduler) and the economy's figures of the random run (events per town-day, exits by reason,
wages). Writes `benchmarks/results/economy_throughput.json`; the target is L5 at 0.5 M
agent-steps/s on the project's CPU, read as the ratio to L1 measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks.social_throughput import Runner, interleaved, run_per_thread_count, tick_breakdown
from townlet_env.core import events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "economy_throughput.json"
CASES = (("L1_full_observability", 4096, 1), ("L4_social", 4098, 6), ("L5_town", 4098, 6))


def count_economy(runner: Runner, info: dict[str, Any]) -> None:
    """Events, wages and exits by reason, of a level with an economy."""
    if "exit_reason" in info:
        runner.counts["ticks"] += 1
        runner.counts["event_slot_ticks"] += int(info["events"].sum())
        runner.counts["wage"] += float(info["wage"].sum())
        for code, count in zip(*info["exit_reason"].unique(return_counts=True), strict=True):
            runner.counts[runner.env.exit_reasons[int(code)]] += int(count)


def l5_tick_breakdown(runner: Runner, steps: int) -> dict[str, float]:
    """Milliseconds per call of the core pieces of one L5 tick, as social_throughput.py measures
    L4's, plus the scheduler's draw and start of events."""
    level, state = runner.env.level, runner.env.state
    assert level.economy is not None
    economy = level.economy
    gen = torch.Generator().manual_seed(1)

    def schedule() -> Any:
        return events.schedule(level, state, events.draw(economy, state.num_towns, gen))

    return tick_breakdown(runner, steps, {"schedule": schedule})


def measure(steps: int, repeats: int) -> dict[str, Any]:
    runners = {
        level: Runner(level, slots, apt, copy=False, tally=count_economy) for level, slots, apt in CASES
    }
    rates = interleaved(runners, steps, repeats)
    results: dict[str, Any] = {"levels": {}}
    for level, slots, apt in CASES:
        median = statistics.median(rates[level])
        results["levels"][level] = {
            "slots": slots,
            "agents_per_town": apt,
            "agent_steps_per_s": median,
            "runs": rates[level],
        }
        print(f"{level:24s} {median / 1e6:6.3f} M agent-steps/s")
    l5, counts = runners["L5_town"], runners["L5_town"].counts
    results["levels"]["L5_town"]["economy"] = {
        "active_events_per_town_tick": counts["event_slot_ticks"] / max(counts["ticks"] * l5.slots, 1),
        "exits": {k: v for k, v in counts.items() if k.startswith(("death", "evicted"))},
        "wage_per_agent_step": counts["wage"] / max(counts["ticks"] * l5.slots, 1),
    }
    results["levels"]["L5_town"]["tick_ms"] = l5_tick_breakdown(l5, max(5, steps // 5))
    l1 = results["levels"]["L1_full_observability"]["agent_steps_per_s"]
    results["l5_over_l1"] = results["levels"]["L5_town"]["agent_steps_per_s"] / l1
    results["l4_over_l1"] = results["levels"]["L4_social"]["agent_steps_per_s"] / l1
    print(f"L5 / L1: {results['l5_over_l1']:.2f}  L4 / L1: {results['l4_over_l1']:.2f}")
    print(f"L5 tick (ms): {results['levels']['L5_town']['tick_ms']}")
    print(f"L5 economy: {results['levels']['L5_town']['economy']}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="*", default=[1])
    args = parser.parse_args()
    run_per_thread_count(measure, args.steps, args.repeats, args.threads, RESULTS)


if __name__ == "__main__":
    main()

"""L4_social throughput beside L1, in the same run: agent-steps per second of TownletVectorEnv.

    python -m benchmarks.social_throughput                      # 4096 L1 slots, 4098 L4 slots
    python -m benchmarks.social_throughput --steps 200 --repeats 5 --threads 1 2

L4 runs whole towns of six agents, so its batch is 4098 slots (683 towns), the multiple of six
nearest 4096; L1 runs 4096 towns of one agent. Random legal actions are drawn on the device
(random scores over the mask, argmax); a warm-up, then `--repeats` timed runs of `--steps` env
steps, interleaved level by level so that a busy shared CPU slows both alike; the median is
reported, with the default fresh tensors per step (`copy=True`) and with reused buffers
(`copy=False`, what the trainer uses). Also a breakdown of one L4 tick (the core `step`, the
observation, the mask) and the social figures of the random run (chats per agent-step, mean
trust and familiarity at the end). Each torch thread count of `--threads` (default: 1 and
torch's default) is a run of its own: on a shared CPU a single thread is often faster. Writes
`benchmarks/results/social_throughput.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from townlet_env import TownletVectorEnv
from townlet_env.core import action_mask, affordance_at, observe, step
from townlet_env.core.pairs import Pairs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "social_throughput.json"
CASES = (("L1_full_observability", 4096, 1), ("L4_social", 4098, 6))


Tally = Callable[["Runner", dict[str, Any]], None]


def count_chats(runner: Runner, info: dict[str, Any]) -> None:
    if "chat_success" in info:
        runner.counts["chats"] += int(info["chat_success"].sum())


class Runner:
    """Random legal play of one level: `run(n)` steps it n times and returns agent-steps per
    second; after each step `tally(runner, info)` adds what the benchmark reports of that level
    to `runner.counts` (inside the timing, as cheap as it is)."""

    def __init__(self, level: str, slots: int, apt: int, copy: bool, tally: Tally = count_chats) -> None:
        self.env = TownletVectorEnv(level, slots, agents_per_town=apt, copy=copy)
        _, self.info = self.env.reset(seed=0)
        self.gen = torch.Generator().manual_seed(0)
        self.slots = slots
        self.tally = tally
        self.counts: Counter[str] = Counter()

    def run(self, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            mask = self.info["action_mask"]
            actions = torch.rand(mask.shape, generator=self.gen).masked_fill_(~mask, -1.0).argmax(1)
            _, _, _, _, self.info = self.env.step(actions)
            self.tally(self, self.info)
        return self.slots * n / (time.perf_counter() - start)


def interleaved(runners: dict[str, Runner], steps: int, repeats: int) -> dict[str, list[float]]:
    """Each runner's rates over `repeats` runs of `steps` steps after a warm-up, level after level
    within each repeat, so that a busy shared CPU slows all levels alike."""
    rates: dict[str, list[float]] = {level: [] for level in runners}
    for runner in runners.values():
        runner.run(max(5, steps // 5))  # warm-up
    for _ in range(repeats):
        for level, runner in runners.items():
            rates[level].append(runner.run(steps))
    return rates


def tick_breakdown(
    runner: Runner, steps: int, extra: dict[str, Callable[[], Any]] | None = None
) -> dict[str, float]:
    """Milliseconds per call of the core pieces of one tick, on the runner's state, as its
    `Town` runs them: the observation into a reused buffer, and the mask, each building the
    pairwise facts they need (`Pairs`; a Town builds them once for both), and the step from a
    state whose facts are known (a Town keeps them from that state's observation); then the
    `extra` pieces of a level."""
    level, state = runner.env.level, runner.env.state
    aff = affordance_at(level, state)
    scratch: dict[str, torch.Tensor] = {}  # the Town's reused buffers

    def fresh() -> Pairs:
        return Pairs(state, aff, level.max_steps, scratch)

    known = fresh()
    mask = action_mask(level, state, aff, known)
    buffer = observe(level, state, aff, pairs=known)
    actions = torch.rand(mask.shape, generator=runner.gen).masked_fill_(~mask, -1.0).argmax(1)
    pieces: dict[str, Callable[[], Any]] = {
        "step": lambda: step(level, state, actions, mask, known),
        "observe": lambda: observe(level, state, aff, out=buffer, pairs=fresh()),
        "action_mask": lambda: action_mask(level, state, aff, fresh()),
    }
    out: dict[str, float] = {}
    for name, fn in (pieces | (extra or {})).items():
        fn()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        out[name] = 1000 * (time.perf_counter() - start) / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, torch.get_num_threads()])
    args = parser.parse_args()
    run_per_thread_count(measure, args.steps, args.repeats, args.threads, RESULTS)


def run_per_thread_count(
    measure: Callable[[int, int], dict[str, Any]], steps: int, repeats: int, threads: list[int], path: Path
) -> None:
    """`measure(steps, repeats)` once per torch thread count, with the machine's load before and
    after, written to `path` (temporary file, fsync, rename)."""
    results: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_before": os.getloadavg(),
        },
        "steps": steps,
        "repeats": repeats,
        "runs": {},
    }
    for count in threads:
        torch.set_num_threads(count)
        print(f"torch threads: {count}")
        results["runs"][f"threads_{count}"] = measure(steps, repeats)
    results["machine"]["load_average_after"] = os.getloadavg()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with tmp.open("w") as f:
        f.write(json.dumps(results, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    print(f"wrote {path.relative_to(ROOT)}")


def measure(steps: int, repeats: int) -> dict[str, Any]:
    """Both levels with reused buffers, then with fresh tensors, interleaved run by run."""
    results: dict[str, Any] = {"levels": {}}
    for copy in (False, True):
        runners = {level: Runner(level, slots, apt, copy) for level, slots, apt in CASES}
        rates = interleaved(runners, steps, repeats)
        for (level, slots, apt), runner in zip(CASES, runners.values(), strict=True):
            entry = results["levels"].setdefault(level, {"slots": slots, "agents_per_town": apt})
            key = "reused_buffers" if not copy else "fresh_tensors"
            entry[key] = {"agent_steps_per_s": statistics.median(rates[level]), "runs": rates[level]}
            if level == "L4_social" and not copy:
                info = runner.info
                agent_steps = slots * (steps * repeats + max(5, steps // 5))
                entry["chats_per_agent_step"] = runner.counts["chats"] / agent_steps
                entry["mean_trust"] = float(info["trust"].mean())
                entry["mean_familiarity"] = float(info["familiarity"].mean())
                entry["tick_ms"] = tick_breakdown(runner, max(5, steps // 5))
            print(f"{level:24s} {key:15s} {statistics.median(rates[level]) / 1e6:6.3f} M agent-steps/s")
    l1, l4 = (results["levels"][n]["reused_buffers"]["agent_steps_per_s"] for n, _, _ in CASES)
    results["l4_over_l1"] = l4 / l1
    print(f"L4 / L1: {l4 / l1:.2f}; L4 tick: {results['levels']['L4_social']['tick_ms']}")
    return results


if __name__ == "__main__":
    main()

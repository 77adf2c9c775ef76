"""Where the time of one `TownletVectorEnv.step` goes, phase by phase.

    python -m benchmarks.profile_step                                   # L1-L3 at 4096 slots
    python -m benchmarks.profile_step --levels L1_full_observability --slots 1 4096

Plays random legal actions until deaths and rebirths are in steady state, then times each
phase of a step on the states the env really reaches (CPU time of this process on one thread, so
that a busy machine inflates the figures less): drawing the actions, the tick (`core.step`), the
observation (`core.observe` into a reused buffer), the action mask, the autoreset of the towns
that ended, and observing those towns again. It also counts the aten operations of a whole
`env.step`, the fixed cost that dominates at few slots. Writes
`benchmarks/results/step_profile.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import profile

from townlet_env import TownletVectorEnv
from townlet_env.core import action_mask, affordance_at, autoreset, observe, step

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "step_profile.json"


def cpu_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def random_actions(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(mask.shape, generator=gen).masked_fill_(~mask, -1.0).argmax(1)


def profile_level(level: str, slots: int, warmup: int, repeats: int) -> dict[str, Any]:
    env = TownletVectorEnv(level, slots, copy=False)
    env.set_difficulty(1.0)
    _, info = env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(warmup):  # into steady state: some slots end in every step at large sizes
        _, _, _, _, info = env.step(random_actions(info["action_mask"], gen))
    lv, state, mask = env.level, env.state, info["action_mask"]
    actions = random_actions(mask, gen)
    after, result = step(lv, state, actions, mask)
    done = result.terminated | result.truncated
    aff = affordance_at(lv, after)
    buffer = observe(lv, after, aff)
    reset = autoreset(lv, after, done, torch.Generator().manual_seed(1))
    towns = done.view(-1, env.agents_per_town).any(dim=1).nonzero().flatten()

    def reobserve() -> None:
        if towns.numel() == 0:  # the env skips this when nothing ended
            return
        sub_state = reset.select_towns(towns)
        sub_aff = affordance_at(lv, sub_state)
        observe(lv, sub_state, sub_aff)
        action_mask(lv, sub_state, sub_aff)

    phases = {
        "draw random actions": lambda: random_actions(mask, gen),
        "tick (core.step)": lambda: step(lv, state, actions, mask),
        "observe into a buffer": lambda: observe(lv, after, aff, out=buffer),
        "action mask": lambda: action_mask(lv, after, aff),
        "autoreset": lambda: autoreset(lv, after, done, torch.Generator().manual_seed(1)),
        "observe the reset towns": reobserve,
    }
    seconds = {name: cpu_time(fn, repeats) for name, fn in phases.items()}
    with profile() as prof:
        for _ in range(20):
            _, _, _, _, info = env.step(random_actions(info["action_mask"], gen))
    ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")) / 20
    return {
        "slots": slots,
        "ended_slots_in_profiled_step": int(done.sum()),
        "reset_towns": int(towns.numel()),
        "phase_seconds": seconds,
        "aten_ops_per_env_step": ops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--levels",
        nargs="*",
        default=["L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics"],
    )
    parser.add_argument("--slots", nargs="*", type=int, default=[4096])
    parser.add_argument("--warmup", type=int, default=300, help="env steps before profiling")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)  # CPU time of one thread is wall time: phases add up to a step
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    results: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": commit.stdout.strip(),
        "runs": [],
    }
    profile_level(args.levels[0], 64, 20, 5)  # discarded: the first timings of a process run slow
    for level in args.levels:
        for slots in args.slots:
            entry = {"level": level, **profile_level(level, slots, args.warmup, args.repeats)}
            results["runs"].append(entry)
            total = sum(entry["phase_seconds"].values())
            print(
                f"{level} at {slots} slots: {total * 1e3:.2f} ms of phases, "
                f"{entry['aten_ops_per_env_step']:.0f} aten ops per env.step, "
                f"{entry['ended_slots_in_profiled_step']} slots ended"
            )
            for name, secs in entry["phase_seconds"].items():
                print(f"  {name:<26} {secs * 1e6:9.0f} us  {secs / total:4.0%}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Where the time of a step goes: the batched tick phase by phase, and the one-town doors.

    python -m benchmarks.profile_step                                   # L1-L5 at 4096 slots
    python -m benchmarks.profile_step --levels L1_full_observability --slots 1 4096

The batched part plays random legal actions until deaths and rebirths are in steady state,
then times each phase of `Town.step` (with `copy=False`) as the Town runs it, on the states the
env really reaches (CPU time of this process on one thread, so that a busy machine inflates the
figures less): drawing the actions, the tick (`core.step` with the kept mask and pairwise
facts), the autoreset of the slots that ended, the one observation pass over the renewed state
and the ended towns' last tick, and its mask; and a whole `env.step` beside them
(`env_step_seconds`: checks, buffers and `info` included). It counts the aten operations of a whole
`env.step`, the fixed cost that dominates at few slots. L4 and L5 run towns of six (4098 slots).

The door part runs `gym.make("Townlet-v0")` on L1, L3 and L5 and the PettingZoo `parallel_env`
on L4 and L5 (six agents) under cProfile and lists the functions with the largest own time: what limits the
one-town doors now that the scalar engine steps them.

Writes `benchmarks/results/step_profile.json` (`--force` to replace it).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch.profiler import profile

import townlet_env
from townlet_env import TownletVectorEnv
from townlet_env.core import action_mask, affordance_at, autoreset, events, observe, step
from townlet_env.core.pairs import Pairs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "step_profile.json"
L4, L5 = "L4_social", "L5_town"


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
    town, lv = env.town, env.level
    state, mask, pairs = town.state, info["action_mask"], town._pairs  # what the Town keeps
    actions = random_actions(mask, gen)
    after, result = step(lv, state, actions, mask, pairs)
    done = result.terminated | result.truncated
    renewed = autoreset(lv, after, done, torch.Generator().manual_seed(1))
    towns = done.view(-1, env.agents_per_town).any(dim=1).nonzero().flatten()
    both = renewed.followed_by(after, towns)
    buffer = torch.zeros(2 * slots, lv.layout.size)

    def facts() -> tuple[torch.Tensor, Pairs | None]:
        aff = affordance_at(lv, both)
        return aff, None if lv.social is None else Pairs(both, aff, lv.max_steps, town._scratch)

    def observe_pass() -> None:  # with the pairwise facts it computes, as the Town's pass does
        aff, p = facts()
        observe(lv, both, aff, out=buffer[: both.num_slots], pairs=p)

    seen_aff, seen_pairs = facts()
    observe(lv, both, seen_aff, out=buffer[: both.num_slots], pairs=seen_pairs)

    phases: dict[str, Callable[[], object]] = {
        "draw random actions": lambda: random_actions(mask, gen),
        "tick (core.step)": lambda: step(lv, state, actions, mask, pairs),
        "autoreset": lambda: autoreset(lv, after, done, torch.Generator().manual_seed(1)),
        "observe renewed + ended towns": observe_pass,
        "action mask of that pass": lambda: action_mask(lv, both, seen_aff, seen_pairs),
    }
    if lv.economy is not None:  # the events that start at the new tick (Town.step draws them)
        economy = lv.economy
        phases["scheduler (draw, start)"] = lambda: events.schedule(
            lv, after, events.draw(economy, after.num_towns, gen)
        )
    seconds = {name: cpu_time(fn, repeats) for name, fn in phases.items()}
    whole = cpu_time(lambda: env.step(random_actions(env.town._mask, gen)), repeats)  # type: ignore[arg-type]
    with profile() as prof:
        for _ in range(20):
            _, _, _, _, info = env.step(random_actions(info["action_mask"], gen))
    ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")) / 20
    return {
        "slots": slots,
        "ended_slots_in_profiled_step": int(done.sum()),
        "reset_towns": int(towns.numel()),
        "phase_seconds": seconds,
        "env_step_seconds": whole,
        "aten_ops_per_env_step": ops,
    }


def door_profile(name: str, run: Callable[[], None], top: int) -> dict[str, Any]:
    """cProfile's largest own times of `run`, as shares of the whole."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    return {
        "door": name,
        "top_own_time": [
            {"function": f"{Path(f).name}:{line}({fn})", "share": v[2] / total, "calls": v[1]}
            for (f, line, fn), v in rows
        ],
    }


def gym_run(steps: int, level: str = "L1_full_observability") -> Callable[[], None]:
    env = gym.make("Townlet-v0", level=level)
    rng = random.Random(0)

    def run() -> None:
        _, info = env.reset(seed=0)
        for _ in range(steps):
            action = rng.choice([a for a, ok in enumerate(info["action_mask"].tolist()) if ok])
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                _, info = env.reset()

    return run


def parallel_run(steps: int, level: str = L4) -> Callable[[], None]:
    env = townlet_env.parallel_env(level=level)
    rng = random.Random(0)

    def run() -> None:
        obs, _ = env.reset(seed=0)
        for _ in range(steps):
            if not env.agents:
                obs, _ = env.reset()
            actions = {
                a: rng.choice([i for i, ok in enumerate(obs[a]["action_mask"].tolist()) if ok])
                for a in env.agents
            }
            obs = env.step(actions)[0]

    return run


def in_towns(level: str, slots: int) -> int:
    """`slots` rounded up to whole towns of six on the social levels."""
    return slots + (-slots) % (6 if level in (L4, L5) else 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--levels",
        nargs="*",
        default=["L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics", L4, L5],
    )
    parser.add_argument("--slots", nargs="*", type=int, default=[4096])
    parser.add_argument("--warmup", type=int, default=300, help="env steps before profiling")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--door-steps", type=int, default=3000, help="steps of each door under cProfile")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="replace an existing results file")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        sys.exit(f"error: {args.out} exists; pass --force to replace it")
    torch.set_num_threads(1)  # CPU time of one thread is wall time: phases add up to a step
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    results: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": commit.stdout.strip(),
        "command": " ".join(sys.argv),
        "runs": [],
        "doors": [],
    }
    profile_level(
        args.levels[0], in_towns(args.levels[0], 64), 20, 5
    )  # discarded: the first timings of a process run slow
    for level in args.levels:
        for slots in args.slots:
            slots = in_towns(level, slots)
            entry = {"level": level, **profile_level(level, slots, args.warmup, args.repeats)}
            results["runs"].append(entry)
            total = sum(entry["phase_seconds"].values())
            print(
                f"{level} at {slots} slots: {total * 1e3:.2f} ms a step, "
                f"{entry['aten_ops_per_env_step']:.0f} aten ops per env.step, "
                f"{entry['ended_slots_in_profiled_step']} slots ended"
            )
            for name, secs in entry["phase_seconds"].items():
                print(f"  {name:<32} {secs * 1e6:9.0f} us  {secs / total:4.0%}")
    for name, run in (
        ("gym.make L1_full_observability", gym_run(args.door_steps)),
        ("gym.make L3_temporal_mechanics", gym_run(args.door_steps, "L3_temporal_mechanics")),
        ("gym.make L5_town", gym_run(args.door_steps, L5)),
        ("parallel_env L4_social x6", parallel_run(args.door_steps // 6)),
        ("parallel_env L5_town x6", parallel_run(args.door_steps // 6, L5)),
    ):
        entry = door_profile(name, run, top=8)
        results["doors"].append(entry)
        print(name)
        for row in entry["top_own_time"]:
            print(f"  {row['share']:5.1%}  {row['function']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp") as f:
        json.dump(results, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(f.name, 0o644)
    os.replace(f.name, args.out)


if __name__ == "__main__":
    main()

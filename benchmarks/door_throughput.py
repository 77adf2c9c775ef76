"""Speed at every door: how fast a step is through each way in, against a same-run anchor.

    python -m benchmarks.door_throughput                  # -> benchmarks/results/door_throughput.json
    python -m benchmarks.door_throughput --rounds 3 --seconds 0.5 --force
    python -m benchmarks.door_throughput --page           # rewrite the doors block of docs/performance.md

The doors, each measured once per round, in turn, so that a busy machine weighs on all alike:

- `gym.make("Townlet-v0", level=...)`, one agent, random legal actions, against
  `gym.make("CartPole-v1")` with random actions (target: at least 0.2 x CartPole, every level);
- PettingZoo `parallel_env` and the AEC `env`: 8 agents on L1, 6 on L4 and L5 (targets: 20 k
  agent-steps/s in parallel, half that through AEC), with the same town stepped by the tensor
  core beside them (what the adapters ran before the scalar engine);
- `TownletVectorEnv` at 4096 slots (4098 on L4 and L5: towns of six) with `copy=False`, against the
  bare-tensor floor of the same shape (`env_throughput.time_floor`; targets: L1 at least 0.8 x
  its floor and 3 M agent-steps/s, every other level 0.5 x).

Every figure is the median over rounds, and every ratio the median of the ratios of one round
(door / anchor measured minutes apart at most). Rates are wall-clock; `cpu_rate` divides by the
CPU time of this process instead, which a shared machine inflates less. The random policies are
part of the timed loop (a cheap draw from the legal actions, the same for every door).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import townlet_env
from benchmarks.env_throughput import machine, time_env, time_floor
from townlet_env import builtin_levels
from townlet_env.core.town import Town

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "door_throughput.json"
PAGE = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- doors:begin -->", "<!-- doors:end -->"
L1, L4, L5 = "L1_full_observability", "L4_social", "L5_town"
MULTI = [(L1, 8), (L4, 6), (L5, 6)]  # (level, agents) of the PettingZoo targets
GYM_TARGET, PZ_TARGET, AEC_TARGET = 0.2, 20_000.0, 10_000.0
VECTOR_TARGET = {L1: (0.8, 3e6)}  # others: 0.5 x the floor
Rate = tuple[float, float]  # (per wall second, per CPU second)


def timed(loop: Callable[[], int], seconds: float) -> Rate:
    """Run `loop` (it returns the steps it did) until `seconds` have passed."""
    loop()  # warm-up
    done, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        done += loop()
    return done / (time.perf_counter() - wall), done / max(time.process_time() - cpu, 1e-9)


def legal(rng: random.Random, mask: np.ndarray) -> int:
    return rng.choice([a for a, ok in enumerate(mask.tolist()) if ok])


def gym_loop(env_id: str, **kwargs: Any) -> Callable[[], int]:
    env = gym.make(env_id, **kwargs)
    rng = random.Random(0)
    _, info = env.reset(seed=0)
    masked = "action_mask" in info
    n = int(env.action_space.n)  # type: ignore[attr-defined]
    state = {"info": info}

    def loop() -> int:
        info = state["info"]
        for _ in range(200):
            action = legal(rng, info["action_mask"]) if masked else rng.randrange(n)
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                _, info = env.reset()
        state["info"] = info
        return 200

    return loop


def parallel_loop(level: str, agents: int, package: Any = townlet_env) -> Callable[[], int]:
    """`package`: townlet_env, or another tree's copy of it (door_ab's base revision)."""
    env = package.parallel_env(level=level, num_agents=agents)
    rng = random.Random(0)
    state = {"obs": env.reset(seed=0)[0]}

    def loop() -> int:
        obs, done = state["obs"], 0
        for _ in range(50):
            if not env.agents:
                obs, _ = env.reset()
            actions = {a: legal(rng, obs[a]["action_mask"]) for a in env.agents}
            obs = env.step(actions)[0]
            done += len(actions)
        state["obs"] = obs
        return done

    return loop


def aec_loop(level: str, agents: int, package: Any = townlet_env) -> Callable[[], int]:
    env = package.env(level=level, num_agents=agents)
    rng = random.Random(0)
    env.reset(seed=0)

    def loop() -> int:
        done = 0
        while done < 200:
            if not env.agents:
                env.reset()
            agent = env.agent_selection
            obs, _, terminated, truncated, _ = env.last()
            env.step(None if terminated or truncated else legal(rng, obs["action_mask"]))
            done += 1
            del agent
        return done

    return loop


def tensor_town_loop(level: str, agents: int) -> Callable[[], int]:
    """The same town stepped by the tensor core, with numpy out, as the adapters did before."""
    town = Town(level, agents, agents, autoreset=False)
    rng = random.Random(0)
    state = {"now": town.reset(0)}

    def loop() -> int:
        now, done = state["now"], 0
        for _ in range(20):
            masks = now.mask.numpy()
            actions = [legal(rng, m) for m in masks]
            now = town.step(torch.tensor(actions))
            now.obs.numpy(), now.reward.tolist(), now.terminated.tolist()
            done += agents
            if not any(town.state.alive.tolist()) or bool(now.truncated.any()):
                now = town.reset()
        state["now"] = now
        return done

    return loop


def vector_pair(level: str, slots: int, steps: int) -> tuple[float, float]:
    """(copy=False agent-steps/s, its bare-tensor floor), measured back to back."""
    env = time_env(level, slots, torch.device("cpu"), steps, 1, copy=False)["agent_steps_per_s"]
    return env, time_floor(level, slots, torch.device("cpu"), steps, 1)


def command() -> str:
    """This run's command line, the script named from the repository root."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return " ".join([str(name), *sys.argv[1:]])


def median(values: list[float]) -> float:
    return statistics.median(values)


def run(args: argparse.Namespace) -> dict[str, Any]:
    gym_levels = list(args.levels)
    doors: dict[str, Callable[[], int]] = {"CartPole-v1": gym_loop("CartPole-v1")}
    for level in gym_levels:
        doors[f"gym.make {level}"] = gym_loop("Townlet-v0", level=level)
    for level, agents in MULTI:
        doors[f"parallel_env {level} x{agents}"] = parallel_loop(level, agents)
        doors[f"aec env {level} x{agents}"] = aec_loop(level, agents)
        doors[f"tensor core {level} x{agents}"] = tensor_town_loop(level, agents)
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        measured = {name: timed(loop, args.seconds) for name, loop in doors.items()}
        vector = {}
        for level in gym_levels if args.slots else []:
            slots = args.slots + (-args.slots) % (6 if level in (L4, L5) else 1)
            vector[level] = {
                "slots": slots,
                **dict(zip(("env", "floor"), vector_pair(level, slots, args.steps), strict=True)),
            }
        rounds.append({"doors": measured, "vector": vector})
        anchor = measured["CartPole-v1"][0]
        print(f"round {r + 1}: CartPole {anchor:,.0f}/s", flush=True)
        for name, (wall, _) in measured.items():
            print(f"  {name:<40} {wall:>12,.0f}/s  x{wall / anchor:.3f}", flush=True)
        for level, v in vector.items():
            print(
                f"  vector {level:<33} {v['env'] / 1e6:8.2f} M/s  floor {v['floor'] / 1e6:.2f} M  "
                f"({v['env'] / v['floor']:.0%})"
            )
    return summarise(rounds, gym_levels, args)


def summarise(
    rounds: list[dict[str, Any]], gym_levels: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    def door(name: str, anchor: str = "CartPole-v1") -> dict[str, float]:
        walls = [r["doors"][name][0] for r in rounds]
        return {
            "rate": median(walls),
            "cpu_rate": median([r["doors"][name][1] for r in rounds]),
            "ratio_to_cartpole": median([r["doors"][name][0] / r["doors"][anchor][0] for r in rounds]),
            "runs": walls,
        }

    out: dict[str, Any] = {
        "machine": {**machine(torch.device("cpu")), "load_average": os.getloadavg(), "cpus": os.cpu_count()},
        "command": command(),
        "rounds": args.rounds,
        "seconds_per_door": args.seconds,
        "cartpole": door("CartPole-v1"),
        "gym_make": {level: door(f"gym.make {level}") for level in gym_levels},
        "pettingzoo": {},
        "vector": {},
    }
    for level, agents in MULTI:
        parallel = door(f"parallel_env {level} x{agents}")
        aec = door(f"aec env {level} x{agents}")
        tensor = door(f"tensor core {level} x{agents}")
        out["pettingzoo"][f"{level} x{agents}"] = {
            "parallel": parallel,
            "aec": aec,
            "tensor_core_town": tensor,
            "speedup_over_tensor_core": median(
                [
                    r["doors"][f"parallel_env {level} x{agents}"][0]
                    / r["doors"][f"tensor core {level} x{agents}"][0]
                    for r in rounds
                ]
            ),
        }
    for level in rounds[0]["vector"]:
        runs = [r["vector"][level] for r in rounds]
        share, least = VECTOR_TARGET.get(level, (0.5, 0.0))
        fraction = median([v["env"] / v["floor"] for v in runs])
        env = median([v["env"] for v in runs])
        out["vector"][level] = {
            "slots": runs[0]["slots"],
            "agent_steps_per_s": env,
            "floor_agent_steps_per_s": median([v["floor"] for v in runs]),
            "fraction_of_floor": fraction,
            "target_fraction": share,
            "target_rate": least,
            "met": fraction >= share and env >= least,
        }
    out["targets"] = {
        "gym_make_ratio": {lv: v["ratio_to_cartpole"] >= GYM_TARGET for lv, v in out["gym_make"].items()},
        "parallel_env": {k: v["parallel"]["rate"] >= PZ_TARGET for k, v in out["pettingzoo"].items()},
        "aec_env": {k: v["aec"]["rate"] >= AEC_TARGET for k, v in out["pettingzoo"].items()},
        "vector": {lv: v["met"] for lv, v in out["vector"].items()},
    }
    return out


# --- the page -----------------------------------------------------------------------------------


def k(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k"


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render(results: dict[str, Any]) -> list[str]:
    cp = results["cartpole"]
    lines = [
        f"`CartPole-v1` in the same run: {k(cp['rate'])} steps/s ({k(cp['cpu_rate'])} per CPU-second).",
        "",
        "| door | level | Townlet steps/s | per CPU-second | x CartPole (same round) | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for level, v in results["gym_make"].items():
        lines.append(
            f"| `gym.make` | {level} | {k(v['rate'])} | {k(v['cpu_rate'])} | {v['ratio_to_cartpole']:.2f} "
            f"| 0.2 x CartPole | {yes(v['ratio_to_cartpole'] >= GYM_TARGET)} |"
        )
    for case, v in results["pettingzoo"].items():
        level, agents = case.split(" x")
        for kind, target in (("parallel", PZ_TARGET), ("aec", AEC_TARGET)):
            name = "`parallel_env`" if kind == "parallel" else "AEC `env`"
            lines.append(
                f"| {name}, {agents} agents | {level} | {k(v[kind]['rate'])} agent-steps | "
                f"{k(v[kind]['cpu_rate'])} | {v[kind]['ratio_to_cartpole']:.2f} | {k(target)} | "
                f"{yes(v[kind]['rate'] >= target)} |"
            )
        t = v["tensor_core_town"]
        lines.append(
            f"| the same town by the tensor core, {agents} agents | {level} | {k(t['rate'])} agent-steps | "
            f"{k(t['cpu_rate'])} | {t['ratio_to_cartpole']:.2f} | (before: `parallel_env` is "
            f"x{v['speedup_over_tensor_core']:.1f}) | |"
        )
    lines += [
        "",
        "| level | `TownletVectorEnv` slots | agent-steps/s (`copy=False`) | bare-tensor floor "
        "| share of floor | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for level, v in results["vector"].items():
        target = f"{v['target_fraction']:.1f} x floor" + (
            f", {k(v['target_rate'])}" if v["target_rate"] else ""
        )
        lines.append(
            f"| {level} | {v['slots']} | {k(v['agent_steps_per_s'])} | {k(v['floor_agent_steps_per_s'])} "
            f"| {v['fraction_of_floor']:.0%} | {target} | {yes(v['met'])} |"
        )
    m = results["machine"]
    lines += [
        "",
        f"Medians of {results['rounds']} rounds: {m['date']}, commit {m['commit']}, torch {m['torch']}, "
        f"{m['threads']} torch thread(s), {m['cpus']} CPUs, "
        f"load average {m['load_average'][0]:.1f} at the end. "
        f"Command: `{results['command']}`.",
    ]
    return lines


def write_page(results: dict[str, Any]) -> None:
    page = PAGE.read_text()
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(head + BEGIN + "\n" + "\n".join(render(results)) + "\n" + END + tail)


def write_json(path: Path, data: dict[str, Any], force: bool) -> None:
    if path.exists() and not force:
        sys.exit(f"error: {path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", nargs="*", default=builtin_levels(), help="gym.make and vector levels")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per door per round")
    parser.add_argument("--slots", type=int, default=4096, help="vector env slots (0: skip the vector env)")
    parser.add_argument("--steps", type=int, default=60, help="vector env steps per round")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: no OpenMP waits on a busy CPU)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="replace an existing results file")
    parser.add_argument("--page", action="store_true", help="only rewrite docs/performance.md from --out")
    args = parser.parse_args()
    if args.page:
        write_page(json.loads(args.out.read_text()))
        return
    if args.out.exists() and not args.force:
        sys.exit(f"error: {args.out} exists; pass --force to replace it")
    unknown = sorted(set(args.levels) - set(builtin_levels()))
    if unknown:
        sys.exit(f"error: --levels: unknown {unknown}; built-in levels: {', '.join(builtin_levels())}")
    torch.set_num_threads(args.threads)
    write_json(args.out, run(args), args.force)


if __name__ == "__main__":
    main()

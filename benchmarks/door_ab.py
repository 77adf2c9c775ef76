"""A/B of the one-town doors: this tree against an earlier git revision, in one process.

    python -m benchmarks.door_ab --base e962780                 # L4_social and L5_town
    python -m benchmarks.door_ab --base HEAD~3 --levels L1_full_observability --pairs 20

On a shared machine two runs of `door_throughput` minutes apart differ by more than a change of a
tenth. Here the base revision's `townlet_env` is exported with `git archive` and imported under
another name (`townlet_base`), and each door (`gym.make`'s env with its checker wrappers,
`parallel_env` and the AEC `env` with 6 agents) is timed old and new back to back, `--pairs`
times in alternating order, beside CartPole. The medians and quartiles of new / old, per
CPU-second of this process (`--wall` for wall-clock), are printed and written to
`benchmarks/results/door_ab.json`. The working tree is never touched.
"""

from __future__ import annotations

import argparse
import importlib
import io
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

import townlet_env
from benchmarks.door_throughput import (
    ROOT,
    aec_loop,
    command,
    gym_loop,
    legal,
    parallel_loop,
    timed,
    write_json,
)

RESULTS = ROOT / "benchmarks" / "results" / "door_ab.json"
PACKAGE = "packages/townlet-env/src/townlet_env"


def export_base(revision: str, into: Path) -> None:
    """The revision's `townlet_env` as package `townlet_base` under `into`."""
    try:
        blob = subprocess.run(
            ["git", "archive", revision, PACKAGE], cwd=ROOT, check=True, capture_output=True
        ).stdout
    except subprocess.CalledProcessError as err:
        sys.exit(f"error: --base: git cannot export {revision!r}: {err.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    src = into / PACKAGE
    for path in src.rglob("*.py"):
        path.write_text(path.read_text().replace("townlet_env", "townlet_base"))
    src.rename(into / "townlet_base")


def gym_door(envs: Any, level: str) -> Callable[[], int]:
    env = OrderEnforcing(PassiveEnvChecker(envs.gym_env.TownletEnv(level)))
    rng = random.Random(0)
    state = {"info": env.reset(seed=0)[1]}

    def loop() -> int:
        info = state["info"]
        for _ in range(200):
            _, _, terminated, truncated, info = env.step(legal(rng, info["action_mask"]))
            if terminated or truncated:
                _, info = env.reset()
        state["info"] = info
        return 200

    return loop


def quartiles(values: list[float]) -> list[float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return [q[0], statistics.median(values), q[2]]


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = importlib.import_module("townlet_base")  # put on sys.path by main
    old_gym, new_gym = (importlib.import_module(f"{p}.envs") for p in ("townlet_base", "townlet_env"))
    pairs: dict[str, tuple[Callable[[], int], Callable[[], int]]] = {}
    for level in args.levels:
        pairs[f"gym.make {level}"] = (gym_door(old_gym, level), gym_door(new_gym, level))
        pairs[f"parallel_env {level} x6"] = (
            parallel_loop(level, 6, base),
            parallel_loop(level, 6, townlet_env),
        )
        pairs[f"aec env {level} x6"] = (aec_loop(level, 6, base), aec_loop(level, 6, townlet_env))
    cartpole = gym_loop("CartPole-v1")
    pick = 0 if args.wall else 1
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in pairs}
    for p in range(args.pairs):
        for name, (old, new) in pairs.items():
            anchor = timed(cartpole, args.seconds)[pick]
            first, second = (old, new) if p % 2 == 0 else (new, old)
            a, b = timed(first, args.seconds)[pick], timed(second, args.seconds)[pick]
            runs[name].append((a, b, anchor) if p % 2 == 0 else (b, a, anchor))
    doors = {}
    for name, values in runs.items():
        ratio = quartiles([new / old for old, new, _ in values])
        doors[name] = {
            "old_rate": statistics.median(old for old, _, _ in values),
            "new_rate": statistics.median(new for _, new, _ in values),
            "new_over_old_quartiles": ratio,
            "old_x_cartpole": statistics.median(old / cp for old, _, cp in values),
            "new_x_cartpole": statistics.median(new / cp for _, new, cp in values),
        }
        print(
            f"{name:<34} old {doors[name]['old_rate']:>9,.0f}/s  new {doors[name]['new_rate']:>9,.0f}/s  "
            f"new/old {ratio[1]:.2f} ({ratio[0]:.2f}-{ratio[2]:.2f})",
            flush=True,
        )
    return {
        "command": command(),
        "base": args.base,
        "rates": "wall-clock" if args.wall else "per CPU-second of this process",
        "pairs": args.pairs,
        "seconds": args.seconds,
        "doors": doors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--levels", nargs="*", default=["L4_social", "L5_town"])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=0.3, help="time per door per pair")
    parser.add_argument("--wall", action="store_true", help="wall-clock rates (default: per CPU-second)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="replace an existing results file")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        sys.exit(f"error: {args.out} exists; pass --force to replace it")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        export_base(args.base, Path(tmp))
        sys.path.insert(0, tmp)
        results = run(args)
    write_json(args.out, results, args.force)


if __name__ == "__main__":
    main()

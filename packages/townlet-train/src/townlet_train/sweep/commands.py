"""The `seeds` and `sweep` subcommands of `townlet-train` (their arguments and entry points)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="training config YAML, or a packaged config's name")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<command>/<config name>)")
    p.add_argument("--total-steps", type=int, help="agent-steps of each run (default: the config's)")
    p.add_argument("--num-envs", type=int, help="agent slots of each run (default: the config's)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the config's")
    p.add_argument("--episodes", type=int, default=100, help="greedy evaluation episodes per seed")
    p.add_argument("--eval-seed", type=int, default=12345, help="the evaluation towns' seed")
    p.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all); one per running seed")
    p.add_argument("--address", help="join this Ray cluster (ray start --head ...) instead of a local Ray")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--startup-timeout",
        type=float,
        help="seconds to wait for the first seed to start on Ray before giving up "
        "(default: TOWNLET_RAY_STARTUP_TIMEOUT, else 120)",
    )


def add_commands(sub: Any) -> None:
    seeds = sub.add_parser("seeds", help="train one config over many seeds on Ray; aggregate their survival")
    _common(seeds)
    seeds.add_argument("--seeds", default="0-9", help="seeds: 0-9, 3 or 0,2,5-7 (default: 0-9)")
    sweep = sub.add_parser("sweep", help="search config values with Optuna on Ray (docs/sweeps.md)")
    _common(sweep)
    sweep.add_argument("--space", type=Path, required=True, help="search-space YAML")
    sweep.add_argument("--trials", type=int, required=True, help="trials in all (a resumed sweep counts on)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per trial: 0..K-1 (default 1)")
    sweep.add_argument(
        "--batch",
        type=int,
        help="trials asked together (default: enough to fill the CPUs; kept by the study)",
    )
    sweep.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    sweep.add_argument("--sampler-seed", type=int, default=0)
    sweep.add_argument("--startup-trials", type=int, default=10, help="TPE: random trials first")
    sweep.add_argument("--pruner", choices=["median", "none"], default="median")
    sweep.add_argument(
        "--prune-every",
        type=int,
        help="agent-steps between the evaluations the pruner reads (default: a fifth)",
    )
    sweep.add_argument("--prune-episodes", type=int, default=32, help="episodes of those evaluations")
    sweep.add_argument("--storage", help="Optuna storage URL (default: a journal file OUT/study.journal)")


def run(args: argparse.Namespace) -> int:
    from townlet_env.cli_errors import fail
    from townlet_train.sweep.engine import StartupTimeout, require, startup_timeout

    require(args.command)
    args.startup_timeout = startup_timeout(args.startup_timeout)
    if args.cpus is not None and args.address is not None:
        raise ValueError("--cpus is for a local Ray; a cluster (--address) has the CPUs of its nodes")
    if args.cpus is not None and args.cpus < 1:
        raise ValueError(f"--cpus must be >= 1, got {args.cpus}")
    try:
        if args.command == "seeds":
            from townlet_train.sweep.seeds import run_seeds

            return run_seeds(args)
        from townlet_train.sweep.study import run_sweep

        return run_sweep(args)
    except StartupTimeout as exc:  # the study and the seeds' results stay as they were: a rerun resumes
        return fail(exc)

"""`townlet-train`: train, resume and evaluate from the command line.

townlet-train train --level L1_full_observability [--config FILE|NAME] [--total-steps N]
                    [--num-envs N] [--device auto|cpu|cuda] [--seed S] [--run-dir DIR]
townlet-train train --resume DIR [--total-steps N] [--device auto|cpu|cuda]
townlet-train eval --checkpoint PATH [--episodes K] [--policy learned|scripted|random]
                   [--difficulty 1.0] [--sample] [--json] [--details] [--record DIR [--force]]
townlet-train capture --level L --policy scripted --agent-steps N --out DIR [--seed S] [--num-envs N]
townlet-train bc --dataset DIR [--run-dir DIR] [--updates N] [--seed S] [--device auto|cpu|cuda]
townlet-train seeds CONFIG --seeds 0-9 [--cpus N | --address HOST:PORT]          (docs/sweeps.md)
townlet-train sweep CONFIG --space SPACE.yaml --trials N --seeds K [--cpus N | --address HOST:PORT]

`train` runs the config's algorithm (`algorithm.kind`: dqn, the default, dagger or ppo).

Bad input of any kind (arguments, configs, checkpoints, run directories, memory requests, a
damaged metrics.db, a full disk) prints one `error: ...` line and exits with status 2, never a
traceback. SIGINT or SIGTERM stops training with a checkpoint and exits with 128 + the signal.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from townlet_env.cli_errors import ArgumentParser, UsageError, fail
from townlet_env.config import ConfigError
from townlet_train.config import TrainConfig, load_config
from townlet_train.config_files import find_config
from townlet_train.evaluate import POLICIES, check_level_fits, checkpoint_tag, evaluate, load_policy_network
from townlet_train.run.checkpoint import CheckpointError, resolve_checkpoint
from townlet_train.run.metrics import MetricsError


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="townlet-train", description="Train and evaluate Townlet agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a new run, or resume one with --resume DIR")
    train.add_argument("--level", help="built-in level or pack directory (default: the config's)")
    train.add_argument(
        "--config", type=Path, help="training config YAML, or a packaged config's name (default: the level's)"
    )
    train.add_argument("--total-steps", type=int, help="agent-steps, all slots together")
    train.add_argument("--num-envs", type=int, help="agent slots stepped together")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"])
    train.add_argument("--seed", type=int)
    train.add_argument("--run-dir", type=Path, help="default: runs/<level>/<timestamp>/")
    train.add_argument("--resume", type=Path, metavar="DIR", help="continue a run from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no live table on the terminal")
    train.add_argument(
        "--observe",
        type=int,
        nargs="?",
        const=8765,
        metavar="PORT",
        help="serve the live observer page on 127.0.0.1:PORT (default 8765; docs/observer.md)",
    )
    ev = sub.add_parser("eval", help="play greedy episodes and report survival")
    ev.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint to evaluate (needed for --policy learned): a .pt file, a run directory (its "
        "newest checkpoint) or RUN_DIR/best (the best of its evaluation callback)",
    )
    ev.add_argument("--level", help="level for scripted/random without a checkpoint")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--policy", choices=POLICIES, default="learned")
    ev.add_argument("--difficulty", type=float, default=1.0)
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ev.add_argument(
        "--sample",
        action="store_true",
        help="draw each action from a policy network's masked softmax instead of its best one",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON line")
    ev.add_argument(
        "--details", action="store_true", help="also report action shares, affordance uses and deaths"
    )
    ev.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="write the episodes as a recording into DIR (townlet-env replay), named after the checkpoint",
    )
    ev.add_argument("--force", action="store_true", help="replace a recording of the same name in DIR")
    cap = sub.add_parser("capture", help="play a policy and write its steps as a dataset")
    cap.add_argument("--level", required=True)
    cap.add_argument("--policy", choices=["scripted", "random"], default="scripted")
    cap.add_argument("--agent-steps", type=int, required=True, help="agent-steps, all slots together")
    cap.add_argument("--out", type=Path, required=True, help="dataset directory (must not hold one)")
    cap.add_argument("--seed", type=int, default=0)
    cap.add_argument("--num-envs", type=int, default=64)
    bc = sub.add_parser("bc", help="behaviour cloning from a captured dataset")
    bc.add_argument("--dataset", type=Path, required=True)
    bc.add_argument("--run-dir", type=Path, help="default: runs/bc/<timestamp>/")
    bc.add_argument("--updates", type=int, help="gradient updates (default 5000)")
    bc.add_argument("--seed", type=int, default=0)
    bc.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    from townlet_train.sweep.commands import add_commands

    add_commands(sub)  # seeds, sweep (docs/sweeps.md)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        commands = {"train": _train, "eval": _eval, "capture": _capture, "bc": _bc, **_sweep_commands()}
        return commands[args.command](args)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except (UsageError, ConfigError, CheckpointError, MetricsError, ValueError) as exc:
        return fail(exc)
    except OSError as exc:
        return fail(_describe_os_error(exc))
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        first = (str(exc).strip().splitlines() or ["MemoryError"])[0]
        return fail(
            f"out of memory ({first}); lower env.num_envs or algorithm.replay.capacity, then --resume"
        )
    except KeyboardInterrupt:
        print("interrupted (the checkpoints already written are intact)", file=sys.stderr)
        return 128 + signal.SIGINT


def _sweep_commands() -> dict[str, Any]:
    from townlet_train.sweep.commands import run

    return {"seeds": run, "sweep": run}


def _describe_os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    text = f"{where}{exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        text += " (free some space, then continue with --resume: the checkpoints already written are intact)"
    return text


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return "can't allocate memory" in str(exc) or "not enough memory" in str(exc)


def _train(args: argparse.Namespace) -> int:
    from townlet_train.run import observe
    from townlet_train.run.loop import resolve_device, write_resolved_config
    from townlet_train.run.resources import check_memory
    from townlet_train.run.runlock import run_lock
    from townlet_train.trainers import make_trainer

    # the port first: one that is in use is refused before a run directory is made
    args.observer_socket = observe.listen(args.observe)
    if args.resume is not None:
        return _resume(args)
    cfg = load_config(
        find_config(args.config),
        level=args.level,
        total_steps=args.total_steps,
        env__num_envs=args.num_envs,
        device=args.device,
        seed=args.seed,
    )
    run_dir = args.run_dir or Path("runs") / Path(cfg.level).name / time.strftime("%Y%m%d-%H%M%S")
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--run-dir {run_dir}: exists and is not a directory")
    _refuse_existing_run(run_dir)
    check_memory(cfg, _compiled(cfg.level), resolve_device(cfg.device))
    trainer = make_trainer(_quiet(cfg, args), run_dir)  # first: a bad level leaves no half-made run
    with run_lock(run_dir):
        _refuse_existing_run(run_dir)  # again: another trainer may have started it meanwhile
        write_resolved_config(cfg, run_dir)
        print(f"training {cfg.level} for {cfg.total_steps:,} agent-steps into {run_dir}")
        return _finish(observe.run(trainer, cfg.total_steps, args.observer_socket), run_dir)


def _refuse_existing_run(run_dir: Path) -> None:
    if (run_dir / "config.yaml").exists() or (run_dir / "metrics.db").exists():
        # a second run there would mix its episodes and checkpoints into the first one's
        raise ValueError(
            f"{run_dir} already holds a run: continue it with --resume {run_dir}, or give another --run-dir"
        )


def _resume(args: argparse.Namespace) -> int:
    from townlet_train.run import observe
    from townlet_train.run.loop import resolve_device
    from townlet_train.run.resources import check_memory
    from townlet_train.run.resume import resume
    from townlet_train.run.runlock import run_lock
    from townlet_train.trainers import make_trainer

    run_dir = args.resume
    fixed = [
        flag
        for flag, value in (
            ("--level", args.level),
            ("--config", args.config),
            ("--num-envs", args.num_envs),
            ("--seed", args.seed),
            ("--run-dir", args.run_dir),
        )
        if value is not None
    ]
    if fixed:  # silently ignoring them would resume something other than what was asked for
        raise ValueError(
            f"{', '.join(fixed)} cannot be changed on --resume (the run's config.yaml fixes them); "
            "only --total-steps and --device can"
        )
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file}: not a run directory (no config.yaml)")
    with run_lock(run_dir):  # before reading: another trainer may be writing this run
        cfg = load_config(cfg_file, total_steps=args.total_steps, device=args.device)
        check_memory(cfg, _compiled(cfg.level), resolve_device(cfg.device))
        resumed = resume(cfg, run_dir, lambda: make_trainer(_quiet(cfg, args), run_dir))
        for note in resumed.skipped:
            print(f"warning: skipped {note}", file=sys.stderr)
        steps = resumed.trainer.counters["agent_steps"]
        print(f"resuming {run_dir} from {resumed.path.name} at {steps:,} agent-steps")
        return _finish(observe.run(resumed.trainer, cfg.total_steps, args.observer_socket), run_dir)


def _compiled(level: str) -> Any:
    from townlet_env.core import compile_level

    return compile_level(level, "cpu")


def _finish(result: dict[str, Any], run_dir: Path) -> int:
    print(_json_line(result))
    stopped_by = result.get("interrupted")
    if stopped_by is None:
        return 0
    print(
        f"stopped by {stopped_by} at {result['agent_steps']:,} agent-steps; saved {result['checkpoint']}; "
        f"continue with: townlet-train train --resume {run_dir}",
        file=sys.stderr,
    )
    return 128 + int(signal.Signals[stopped_by])


def _json_line(result: dict) -> str:
    """One line of strict JSON: NaN (no episode has ended yet) becomes null."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}
    return json.dumps(clean, allow_nan=False)


def _quiet(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    if args.no_progress:  # without a terminal, Progress prints a plain line every 30 seconds
        return cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"progress": False})})
    return cfg


def _eval(args: argparse.Namespace) -> int:
    from townlet_train.run.loop import resolve_device

    device = resolve_device(args.device)
    if args.checkpoint is not None:
        args.checkpoint = resolve_checkpoint(args.checkpoint)
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    network = agent = None
    level = args.level
    if args.sample and (args.checkpoint is None or args.policy != "learned"):
        raise ValueError("--sample plays a checkpoint's policy: give --checkpoint PATH (--policy learned)")
    if args.checkpoint is not None:
        if args.sample:
            agent, cfg = _sampled(args.checkpoint, args.seed, device)
        else:
            network, cfg = load_policy_network(args.checkpoint, device)
        if level is not None:
            check_level_fits(level, cfg.level, args.checkpoint)
        level = level or cfg.level
    elif args.policy == "learned":
        raise ValueError("--policy learned needs --checkpoint PATH")
    if level is None:
        raise ValueError("give --checkpoint or --level")
    result = evaluate(
        level,
        args.policy,
        args.episodes,
        args.difficulty,
        network,
        args.seed,
        device,
        args.details,
        args.record,
        agent,
        checkpoint_tag(args.checkpoint) if args.checkpoint is not None else "",
        args.force,
    )
    if args.sample:
        result = {"policy": result["policy"], "sampled": True, **result}
    if args.json:
        print(_json_line(result))
    else:
        for key, value in result.items():
            if isinstance(value, dict):  # affordances never used are left out of the line
                shown = {k: v for k, v in value.items() if v or key != "uses_per_episode"}
                value = ", ".join(f"{k} {v}" for k, v in shown.items()) or "-"
            print(f"{key:>26}: {value}")
    return 0


def _sampled(checkpoint: Path, seed: int, device: torch.device) -> tuple[Any, TrainConfig]:
    """The checkpoint's policy network, sampled with a generator seeded by --seed, and its config."""
    from townlet_train.policy import load_policy

    rng = torch.Generator(device=device).manual_seed(seed)
    agent, cfg = load_policy(checkpoint, device, sample=True, rng=rng)
    if cfg.algorithm.kind == "dqn":
        raise ValueError(
            f"--sample needs a policy network (ppo, dagger or bc); {checkpoint} holds DQN Q-values"
        )
    return agent, cfg


def _capture(args: argparse.Namespace) -> int:
    from townlet_train.dataset import capture

    if args.agent_steps < 1 or args.num_envs < 1:
        raise ValueError("--agent-steps and --num-envs must be >= 1")
    manifest = capture(args.level, args.policy, args.agent_steps, args.out, args.seed, args.num_envs)
    counts = {k: manifest[k] for k in ("level", "policy", "agent_steps", "episodes_ended")}
    print(_json_line({"dataset": str(args.out), **counts, "shards": len(manifest["shards"])}))
    return 0


def _bc(args: argparse.Namespace) -> int:
    from townlet_train.run.bc import train_bc

    if args.updates is not None and args.updates < 1:
        raise ValueError(f"--updates must be >= 1, got {args.updates}")
    run_dir = args.run_dir or Path("runs") / "bc" / time.strftime("%Y%m%d-%H%M%S")
    _refuse_existing_run(run_dir)
    print(_json_line(train_bc(args.dataset, run_dir, args.updates, args.seed, args.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`townlet-train`: train, resume and evaluate from the command line.

townlet-train train --level L1_full_observability [--config FILE] [--total-steps N]
                    [--num-envs N] [--device auto|cpu|cuda] [--seed S] [--run-dir DIR]
townlet-train train --resume DIR [--total-steps N] [--device auto|cpu|cuda]
townlet-train eval --checkpoint PATH [--episodes K] [--policy learned|scripted|random]
                   [--difficulty 1.0] [--json] [--details]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from townlet_env.config import ConfigError
from townlet_train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from townlet_train.config import TrainConfig, load_config
from townlet_train.evaluate import POLICIES, evaluate, load_policy_network


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="townlet-train", description="Train and evaluate Townlet agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a new run, or resume one with --resume DIR")
    train.add_argument("--level", help="built-in level or pack directory (default: the config's)")
    train.add_argument("--config", type=Path, help="training config YAML (default: configs/<level>.yaml)")
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
    ev.add_argument("--checkpoint", type=Path, help="checkpoint to evaluate (needed for --policy learned)")
    ev.add_argument("--level", help="level for scripted/random without a checkpoint")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--policy", choices=POLICIES, default="learned")
    ev.add_argument("--difficulty", type=float, default=1.0)
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ev.add_argument("--json", action="store_true", help="print one JSON line")
    ev.add_argument(
        "--details", action="store_true", help="also report action shares, affordance uses and deaths"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _train(args) if args.command == "train" else _eval(args)
    except (ConfigError, CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace) -> int:
    from townlet_train import observe
    from townlet_train.loop import Trainer, write_resolved_config

    listener = observe.listen(args.observe)

    if args.resume is not None:
        run_dir = args.resume
        cfg_file = run_dir / "config.yaml"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{cfg_file}: not a run directory (no config.yaml)")
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
        cfg = load_config(cfg_file, total_steps=args.total_steps, device=args.device)
        path = latest_checkpoint(run_dir / "checkpoints")
        if path is None:
            raise FileNotFoundError(f"{run_dir / 'checkpoints'}: no checkpoint to resume from")
        trainer = Trainer(_quiet(cfg, args), run_dir)
        shapes = {k: tuple(v.shape) for k, v in trainer.agent.online.state_dict().items()}
        trainer.load_state_dict(
            load_checkpoint(path, level_hash=trainer.env.level.content_hash, network_shapes=shapes)
        )
        print(f"resuming {run_dir} from {path.name} at {trainer.counters['agent_steps']:,} agent-steps")
    else:
        cfg = load_config(
            args.config,
            level=args.level,
            total_steps=args.total_steps,
            env__num_envs=args.num_envs,
            device=args.device,
            seed=args.seed,
        )
        run_dir = args.run_dir or Path("runs") / Path(cfg.level).name / time.strftime("%Y%m%d-%H%M%S")
        if (run_dir / "config.yaml").exists() or (run_dir / "metrics.db").exists():
            # a second run there would mix its episodes and checkpoints into the first one's
            raise ValueError(
                f"{run_dir} already holds a run: continue it with --resume {run_dir}, "
                "or give another --run-dir"
            )
        trainer = Trainer(_quiet(cfg, args), run_dir)  # first: a bad level leaves no half-made run
        write_resolved_config(cfg, run_dir)
        print(f"training {cfg.level} for {cfg.total_steps:,} agent-steps into {run_dir}")
    observer = observe.attach(trainer, listener)
    try:
        result = trainer.run(cfg.total_steps)
    finally:
        if observer is not None:
            observer.close()
    print(_json_line(result))
    return 0


def _json_line(result: dict) -> str:
    """One line of strict JSON: NaN (no episode has ended yet) becomes null."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}
    return json.dumps(clean, allow_nan=False)


def _quiet(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    if args.no_progress or not sys.stderr.isatty():
        return cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"progress": False})})
    return cfg


def _eval(args: argparse.Namespace) -> int:
    from townlet_train.loop import resolve_device

    device = resolve_device(args.device)
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    network = None
    level = args.level
    if args.checkpoint is not None:
        network, cfg = load_policy_network(args.checkpoint, device)
        level = level or cfg.level
    elif args.policy == "learned":
        raise ValueError("--policy learned needs --checkpoint PATH")
    if level is None:
        raise ValueError("give --checkpoint or --level")
    result = evaluate(
        level, args.policy, args.episodes, args.difficulty, network, args.seed, device, args.details
    )
    if args.json:
        print(_json_line(result))
    else:
        for key, value in result.items():
            if isinstance(value, dict):  # affordances never used are left out of the line
                shown = {k: v for k, v in value.items() if v or key != "uses_per_episode"}
                value = ", ".join(f"{k} {v}" for k, v in shown.items()) or "-"
            print(f"{key:>26}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

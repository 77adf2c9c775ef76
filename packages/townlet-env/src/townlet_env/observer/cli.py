"""`townlet-env serve`: watch a town in a browser (see docs/observer.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from townlet_env.observer.security import default_audit_path


def add_parser(commands: Any, int_at_least: Any) -> None:
    serve = commands.add_parser("serve", help="step a town and serve a live page of it (observer extra)")
    serve.add_argument(
        "--level", default="L1_full_observability", metavar="LEVEL", help="(default: %(default)s)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)"
    )
    serve.add_argument(
        "--port", type=int_at_least(0), default=8765, metavar="P", help="(default: %(default)s)"
    )
    for flag, low, default, text in (
        ("--towns", 1, 4, "towns stepped together"),
        ("--agents-per-town", 1, 1, "agents sharing each town"),
        ("--seed", 0, 0, "seeds the towns and the random policy"),
    ):
        serve.add_argument(
            flag, type=int_at_least(low), default=default, metavar="N", help=f"{text} (default: {default})"
        )
    serve.add_argument(
        "--speed", type=float, default=10.0, help="ticks per second, 0 = flat out (default: 10)"
    )
    serve.add_argument(
        "--policy", choices=["random", "scripted"], default="random", help="who acts (default: random)"
    )
    serve.add_argument(
        "--recording",
        type=Path,
        metavar="FILE",
        help="play back a recording (townlet-env record) with a scrubber instead of stepping a town",
    )
    serve.add_argument(
        "--audit-log", type=Path, default=None, help=f"admin command log (default: {default_audit_path()})"
    )


def make_policy(name: str, town: Any, seed: int) -> Any:
    from townlet_env.observer.source import random_policy

    if name == "random":
        return random_policy(seed)
    from townlet_env.policies import ScriptedPolicy

    scripted = ScriptedPolicy(town)
    return lambda now: scripted(now.obs, {"action_mask": now.mask})


def live_source(args: argparse.Namespace) -> Any:
    from townlet_env.core import Town
    from townlet_env.observer.source import LiveSource

    k = args.agents_per_town
    town = Town(args.level, args.towns * k, k)
    town.reset(seed=args.seed)
    return LiveSource(town, make_policy(args.policy, town, args.seed), speed=args.speed)


def replay_source(args: argparse.Namespace) -> Any:
    from townlet_env.observer.replay import ReplaySource

    # the recording fixes the level, the towns and every action
    return ReplaySource(args.recording, speed=args.speed)


def run(args: argparse.Namespace) -> int:
    try:  # checked first: one clear message instead of a traceback
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise ValueError('serve needs the observer extra: pip install "townlet-env[observer]"') from None
    from townlet_env.observer.security import AuditLog
    from townlet_env.observer.server import create_app, listen

    if not 0 <= args.speed <= 1000:
        raise ValueError(f"--speed must be in [0, 1000], got {args.speed:g}")
    source = replay_source(args) if args.recording is not None else live_source(args)
    audit = AuditLog(args.audit_log)
    app = create_app(source, audit=audit)
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    url = f"http://{args.host}:{port}/"
    print(f"watching {source.town.level.name} at {url} (audit log {audit.path})", flush=True)
    source.start()
    try:
        config = uvicorn.Config(app, log_level="warning", ws_max_size=1 << 20)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        source.stop()
        source.join(5)
    return 0

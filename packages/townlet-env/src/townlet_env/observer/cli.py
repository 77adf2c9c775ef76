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
        ("--agents-per-town", 1, None, "agents sharing each town; None: the level's population"),
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
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the page may be reached by, besides the bound address and localhost (repeatable)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve beyond this machine without TOWNLET_VIEWER_TOKEN (anyone who reaches the port may watch)",
    )


def make_policy(name: str, town: Any, seed: int) -> Any:
    from townlet_env.observer.source import random_policy

    if name == "random":
        return random_policy(seed)
    from townlet_env.policies import ScriptedPolicy

    scripted = ScriptedPolicy(town)
    return lambda now: scripted(now.obs, {"action_mask": now.mask})


def live_source(args: argparse.Namespace) -> Any:
    from townlet_env.core import Town, compile_level
    from townlet_env.core.town import default_agents_per_town
    from townlet_env.observer.source import LiveSource

    level = compile_level(args.level)
    k = args.agents_per_town or default_agents_per_town(level)
    town = Town(level, args.towns * k, k)
    town.reset(seed=args.seed)
    return LiveSource(town, make_policy(args.policy, town, args.seed), speed=args.speed)


def replay_source(args: argparse.Namespace) -> Any:
    from townlet_env.observer.replay import ReplaySource

    # the recording fixes the level, the towns and every action
    return ReplaySource(args.recording, speed=args.speed)


def exposure(host: str, tokens: Any, names: list[str]) -> str:
    """One line saying who can reach what, printed at start so that nothing is exposed silently."""
    from townlet_env.observer.security import is_loopback

    reach = "this machine only" if is_loopback(host) else f"every network {host} is on"
    watch = "with the viewer token" if tokens.viewer else "anyone (no TOWNLET_VIEWER_TOKEN)"
    command = "with the admin token" if tokens.admin else "no one (no TOWNLET_ADMIN_TOKEN)"
    hosts = f"; also answers to {', '.join(names)}" if names else ""
    return f"exposed to {reach}: watch: {watch}; command: {command}{hosts}"


def run(args: argparse.Namespace) -> int:
    try:  # checked first: one clear message instead of a traceback
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise ValueError('serve needs the observer extra: pip install "townlet-env[observer]"') from None
    from townlet_env.observer.security import AuditLog, HostRules, Tokens, is_loopback
    from townlet_env.observer.server import create_app, listen, server_config

    if not 0 <= args.speed <= 1000:
        raise ValueError(f"--speed must be in [0, 1000], got {args.speed:g}")
    tokens = Tokens.from_env()
    if not is_loopback(args.host) and tokens.viewer is None and not args.insecure:
        raise ValueError(
            f"--host {args.host} serves beyond this machine, and TOWNLET_VIEWER_TOKEN is not set: "
            "anyone who reaches the port could watch. Set it (and TOWNLET_ADMIN_TOKEN to command), "
            "or pass --insecure"
        )
    source = replay_source(args) if args.recording is not None else live_source(args)
    try:
        audit = AuditLog(args.audit_log)
    except OSError as exc:
        raise ValueError(str(exc)) from None
    app = create_app(source, tokens, audit, HostRules(args.host, args.allow_host))
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    url = f"http://{args.host}:{port}/"
    print(f"watching {source.town.level.name} at {url} (audit log {audit.path})", flush=True)
    print(exposure(args.host, tokens, args.allow_host), flush=True)
    source.start()
    try:
        uvicorn.Server(server_config(app)).run(sockets=[sock])
    finally:
        source.stop()
        source.join(5)
    return 0

"""`townlet-env`: list, check, explain and watch level packs from a terminal.

    townlet-env levels                      the built-in levels, one line each
    townlet-env validate PACK               load and compile a pack; exit 2 with one message if not
    townlet-env inspect PACK [--json]       every rule of a pack and its observation layout
    townlet-env simulate [--level L0_minimal] [--steps 30] [--seed 0] ...   watch a town live
    townlet-env record | replay | video ...  recordings: see townlet_env/recording/commands.py
    townlet-env serve [--level L] [--port 8765] [--towns 4] ...    watch towns in a browser

PACK is a built-in level name or a pack directory. Problems with a pack or with the arguments
print one `error: ...` message to stderr and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from townlet_env import __version__
from townlet_env.cli_errors import ArgumentParser, UsageError, fail
from townlet_env.config import ConfigError, builtin_levels
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import compile_level
from townlet_env.describe import describe_level, render_description
from townlet_env.files import OutputError
from townlet_env.observer import cli as observer_cli
from townlet_env.recording import RecordingError
from townlet_env.recording import commands as recording
from townlet_env.recording.video import VideoDependencyError


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="townlet-env",
        description="Townlet level packs: list, validate, inspect, and simulate a town.",
        epilog="PACK is a built-in level name (see 'townlet-env levels') or a pack directory.",
    )
    parser.add_argument("--version", action="version", version=f"townlet-env {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("levels", help="list the built-in levels")

    validate = commands.add_parser("validate", help="check a level pack; exit 2 with a message if bad")
    validate.add_argument("pack", metavar="PACK", help="built-in level name or pack directory")

    inspect = commands.add_parser("inspect", help="show a pack's rules and observation layout")
    inspect.add_argument("pack", metavar="PACK", help="built-in level name or pack directory")
    inspect.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    sim = commands.add_parser("simulate", help="run one town with random legal actions and show it")
    sim.add_argument(
        "--level",
        default="L0_minimal",
        metavar="LEVEL",
        help="built-in level or pack dir (default: %(default)s)",
    )
    for flag, low, default, text in (
        ("--steps", 1, 30, "ticks to run"),
        ("--seed", 0, 0, "seeds the town and the action draws"),
        ("--agents-per-town", 1, None, "agents sharing the town; None: the level's population"),
        ("--every", 1, 10, "draw the town every N steps, and at the end"),
    ):
        sim.add_argument(
            flag, type=_int_at_least(low), default=default, metavar="N", help=f"{text} (default: {default})"
        )
    sim.add_argument(
        "--policy",
        choices=["random", "interact"],
        default="random",
        help="random: uniform over legal actions; interact: INTERACT whenever it is legal",
    )
    recording.add_commands(commands, _int_at_least)
    observer_cli.add_parser(commands, _int_at_least)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        run = {
            "levels": _levels,
            "validate": _validate,
            "inspect": _inspect,
            "simulate": _simulate,
            "record": recording.run_record,
            "replay": recording.run_replay,
            "video": recording.run_video,
            "serve": _serve,
        }
        return run[args.command](args)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except (
        UsageError,
        ConfigError,
        RecordingError,
        recording.CommandError,
        VideoDependencyError,
        OutputError,
    ) as exc:
        return fail(exc)  # a bad pack is a bad argument too
    except BrokenPipeError:  # `townlet-env inspect L1_full_observability | head` is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


# --- levels and validate -----------------------------------------------------------------------


def _levels(args: argparse.Namespace) -> int:
    names = builtin_levels()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {readme_summary(BUILTIN_DIR / name)}")
    return 0


def readme_summary(pack: Path, limit: int = 100) -> str:
    """The first sentence of the README after its title, cut to `limit` characters."""
    readme = pack / "README.md"
    if not readme.is_file():
        return ""
    paragraph: list[str] = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or (not line.strip() and not paragraph):
            continue
        if not line.strip():
            break
        paragraph.append(line.strip())
    text = " ".join(paragraph)
    end = text.find(". ")
    text = text if end < 0 else text[: end + 1]
    return text if len(text) <= limit else text[: limit - 3].rsplit(" ", 1)[0] + "..."


def _validate(args: argparse.Namespace) -> int:
    # Compiling, not just loading, so "ok" means the env itself accepts the pack.
    level = compile_level(args.pack)
    print(
        f"ok: {level.name}: {level.n_meters} meters, {level.n_affordances} affordances, "
        f"{level.n_actions} actions, observation {level.layout.size} floats, "
        f"hash {level.content_hash[:12]}"
    )
    return 0


# --- inspect (the view itself is townlet_env/describe.py) --------------------------------------


def _inspect(args: argparse.Namespace) -> int:
    info = describe_level(compile_level(args.pack))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(render_description(info))
    return 0


# --- simulate ----------------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    import torch

    from townlet_env.core import Town, compile_level
    from townlet_env.core.town import default_agents_per_town

    try:  # a bad level or too many agents for the free cells: a usage error, not a crash
        compiled = compile_level(args.level)
        k = args.agents_per_town or default_agents_per_town(compiled)
        town = Town(compiled, k, k)
        now = town.reset(seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    level = town.level
    # A generator of our own for the action draws: the same seed gives the same run, and the
    # global torch RNG of whoever called main() is left alone.
    draws = torch.Generator().manual_seed(args.seed)
    meters = level.layout["meters"].slice
    print(
        f"simulating {level.name}: {k} agent{'s' if k > 1 else ''}, {args.steps} steps, "
        f"policy {args.policy}, seed {args.seed}\n"
    )
    print(town.render("ansi"), end="")
    print("step 0: a new town")
    returns = torch.zeros(k)
    deaths = timeouts = 0
    for t in range(1, args.steps + 1):
        actions = choose_actions(now.mask, args.policy, level.interact_action, draws)
        now = town.step(actions)
        reward, terminated, truncated = now.reward, now.terminated, now.truncated
        returns += reward.cpu()
        events = []
        for slot in terminated.nonzero().flatten().tolist():
            final = now.final_obs[slot, meters]
            empty = [n for i, n in enumerate(level.meter_names) if level.terminal[i] and final[i] <= 0]
            events.append(f"step {t}: agent {slot} died ({', '.join(empty) or 'a terminal meter'} at 0)")
        if bool(truncated.any()):
            events.append(f"step {t}: time limit of {level.max_steps} steps reached")
        deaths += int(terminated.sum())
        timeouts += int((truncated & ~terminated).sum())
        if events:
            print("\n".join(["", *events]))
        if t % args.every == 0 or t == args.steps:
            # After a death or the time limit the picture is already the next life's town.
            fresh = " (the picture shows the new town)" if events and k == 1 else ""
            print()
            print(town.render("ansi"), end="")
            print(
                f"step {t}: reward {float(reward.mean()):.2f}, return {float(returns.mean()):.2f}, "
                f"deaths so far {deaths}{fresh}"
            )
    print(
        f"\ndone: {args.steps} steps, mean reward {float(returns.mean()) / args.steps:.3f} per step "
        f"and agent; lives ended by death {deaths}, by the time limit {timeouts}"
    )
    town.close()
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:  # a bad level, port or missing extra: one error line, like every other command
        return observer_cli.run(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def choose_actions(mask: Any, policy: str, interact: int, generator: Any) -> Any:
    """One legal action per slot: uniform over the mask, or INTERACT wherever it is legal."""
    weights = mask.float()
    if policy == "interact" and interact >= 0:
        can = mask[:, interact]
        weights[can] = 0.0
        weights[can, interact] = 1.0
    return weights.cpu().multinomial(1, generator=generator).squeeze(1)


if __name__ == "__main__":
    sys.exit(main())

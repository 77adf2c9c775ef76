"""The `townlet-env record`, `replay` and `video` commands (registered by townlet_env.cli).

    townlet-env record --level L [--policy random|scripted] [--towns N] [--agents-per-town K]
                       [--ticks T] [--seed S] [--every N] -o FILE [--force]
    townlet-env replay FILE [--level PACK]
    townlet-env video FILE -o out.mp4|out.gif [--town I] [--fps F] [--force]

townlet-env never imports townlet-train: a trained agent is recorded by
`townlet-train eval --checkpoint PATH --record DIR`. Outputs are written atomically and an
existing file is replaced only with --force.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from townlet_env.core import compile_level
from townlet_env.core.town import Observation, Town, default_agents_per_town
from townlet_env.files import OutputError, check_output
from townlet_env.policies import ScriptedPolicy
from townlet_env.recording.format import DEFAULT_EVERY, MAX_SLOTS, MAX_TICKS, RecordingError
from townlet_env.recording.recorder import Recorder
from townlet_env.recording.replay import verify_recording
from townlet_env.recording.video import write_video

POLICIES = ("random", "scripted")
Policy = Callable[[Observation], torch.Tensor]
# townlet_env never imports townlet_train: a trained agent is recorded by the trainer's eval
TRAINED = (
    "townlet-env record plays random or scripted; record a trained checkpoint with "
    "townlet-train eval --checkpoint PATH --record DIR"
)


class CommandError(ValueError):
    """A bad argument combination or a missing optional package: one `error:` line."""


def add_commands(commands: Any, int_at_least: Callable[[int], Any]) -> None:
    rec = commands.add_parser("record", help="run towns with a policy and write a recording file")
    rec.add_argument(
        "--level", metavar="LEVEL", help="built-in level or pack dir (default: the checkpoint's)"
    )
    rec.add_argument(
        "--policy", type=_policy, default="random", metavar="{random,scripted}", help="(default: %(default)s)"
    )
    rec.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)  # only to say where it went
    for flag, low, default, text in (
        ("--towns", 1, 1, "towns run side by side"),
        ("--agents-per-town", 1, None, "agents sharing each town; None: the level's population"),
        ("--ticks", 1, 500, "ticks to record"),
        ("--seed", 0, 0, "seeds the towns and the random policy"),
        ("--every", 1, DEFAULT_EVERY, "store a state checksum every N ticks"),
    ):
        rec.add_argument(
            flag, type=int_at_least(low), default=default, metavar="N", help=f"{text} (default: {default})"
        )
    rec.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="recording to write")
    rec.add_argument("--force", action="store_true", help="replace FILE if it exists")

    rep = commands.add_parser("replay", help="re-simulate a recording and verify its checksums")
    rep.add_argument("file", type=Path, metavar="FILE")
    rep.add_argument("--level", metavar="LEVEL", help="replay on this pack (default: the recorded one)")

    vid = commands.add_parser("video", help="render a recording to an .mp4 or .gif (needs [video])")
    vid.add_argument("file", type=Path, metavar="FILE")
    vid.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="out.mp4 or out.gif")
    vid.add_argument("--town", type=int_at_least(0), default=0, metavar="I", help="town to show (default: 0)")
    vid.add_argument("--fps", type=float, default=8.0, metavar="F", help="frames per second (default: 8)")
    vid.add_argument("--force", action="store_true", help="replace OUT if it exists")


def _policy(text: str) -> str:
    if text == "checkpoint":
        raise argparse.ArgumentTypeError(TRAINED)
    if text not in POLICIES:
        raise argparse.ArgumentTypeError(f"invalid choice: '{text}' (choose from {', '.join(POLICIES)})")
    return text


def make_policy(args: argparse.Namespace, town: Town) -> Policy:
    if args.policy == "random":  # uniform over legal actions, from a generator of our own
        draws = torch.Generator().manual_seed(args.seed)
        return lambda now: now.mask.float().cpu().multinomial(1, generator=draws).squeeze(1)
    scripted = ScriptedPolicy(town)
    return lambda now: scripted(now.obs, {"action_mask": now.mask})


def run_record(args: argparse.Namespace) -> int:
    if args.checkpoint is not None:
        raise CommandError(TRAINED)
    level = args.level
    if not level:
        raise CommandError("give --level LEVEL")
    limit = f"a recording holds at most {MAX_TICKS:,} ticks of at most {MAX_SLOTS:,} slots"
    if args.ticks > MAX_TICKS or args.towns * (args.agents_per_town or 1) > MAX_SLOTS:
        raise CommandError(limit)
    check_output(args.output, args.force)  # before the work, not after it
    try:
        compiled = compile_level(level)
        k = args.agents_per_town or default_agents_per_town(compiled)
        if args.towns * k > MAX_SLOTS:
            raise CommandError(limit)
        town = Town(compiled, args.towns * k, k)
        now: Observation = town.reset(seed=args.seed)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    policy = make_policy(args, town)
    recorder = Recorder(town, every=args.every, seed=args.seed, policy=args.policy)
    deaths = 0
    for _ in range(args.ticks):
        out = recorder.step(policy(now))
        deaths += int(out.terminated.sum())
        now = out
    path = recorder.save(args.output, args.force)
    print(
        f"recorded {path}: {town.level.name}, {args.ticks} ticks, {args.towns} towns x {k} agents, "
        f"policy {args.policy}, {deaths} deaths, {path.stat().st_size:,} bytes"
    )
    return 0


def run_replay(args: argparse.Namespace) -> int:
    print(verify_recording(args.file, level=args.level).line())
    return 0


def run_video(args: argparse.Namespace) -> int:
    try:
        frames = write_video(args.file, args.output, town=args.town, fps=args.fps, force=args.force)
    except (RecordingError, OutputError):
        raise
    except ValueError as exc:  # a bad suffix, town or fps
        raise CommandError(str(exc)) from None
    print(f"wrote {args.output}: {frames} frames of town {args.town} at {args.fps:g} fps")
    return 0


__all__ = ["POLICIES", "CommandError", "add_commands", "run_record", "run_replay", "run_video"]

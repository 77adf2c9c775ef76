"""The `townlet-env record`, `replay` and `video` commands (registered by townlet_env.cli).

    townlet-env record --level L [--policy random|scripted|checkpoint] [--checkpoint PATH]
                       [--towns N] [--agents-per-town K] [--ticks T] [--seed S] [--every N] -o FILE
    townlet-env replay FILE [--level PACK]
    townlet-env video FILE -o out.mp4|out.gif [--town I] [--fps F]

townlet-env does not depend on townlet-train: the checkpoint policy imports it
only when asked for, and say how to install it when it is missing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from townlet_env.core.town import Observation, StepOutput, Town
from townlet_env.policies import ScriptedPolicy
from townlet_env.recording.format import DEFAULT_EVERY, RecordingError
from townlet_env.recording.recorder import Recorder
from townlet_env.recording.replay import verify_recording
from townlet_env.recording.video import write_video

POLICIES = ("random", "scripted", "checkpoint")
Policy = Callable[[Observation], torch.Tensor]


class CommandError(ValueError):
    """A bad argument combination or a missing optional package: one `error:` line."""


def add_commands(commands: Any, int_at_least: Callable[[int], Any]) -> None:
    rec = commands.add_parser("record", help="run towns with a policy and write a recording file")
    rec.add_argument(
        "--level", metavar="LEVEL", help="built-in level or pack dir (default: the checkpoint's)"
    )
    rec.add_argument("--policy", choices=POLICIES, default="random", help="(default: %(default)s)")
    rec.add_argument(
        "--checkpoint", type=Path, metavar="PATH", help="trained checkpoint (--policy checkpoint)"
    )
    for flag, low, default, text in (
        ("--towns", 1, 1, "towns run side by side"),
        ("--agents-per-town", 1, 1, "agents sharing each town"),
        ("--ticks", 1, 500, "ticks to record"),
        ("--seed", 0, 0, "seeds the towns and the random policy"),
        ("--every", 1, DEFAULT_EVERY, "store a state checksum every N ticks"),
    ):
        rec.add_argument(
            flag, type=int_at_least(low), default=default, metavar="N", help=f"{text} (default: {default})"
        )
    rec.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="recording to write")

    rep = commands.add_parser("replay", help="re-simulate a recording and verify its checksums")
    rep.add_argument("file", type=Path, metavar="FILE")
    rep.add_argument("--level", metavar="LEVEL", help="replay on this pack (default: the recorded one)")

    vid = commands.add_parser("video", help="render a recording to an .mp4 or .gif (needs [video])")
    vid.add_argument("file", type=Path, metavar="FILE")
    vid.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="out.mp4 or out.gif")
    vid.add_argument("--town", type=int_at_least(0), default=0, metavar="I", help="town to show (default: 0)")
    vid.add_argument("--fps", type=float, default=8.0, metavar="F", help="frames per second (default: 8)")


def _trainer(what: str) -> Any:
    try:
        import townlet_train
    except ImportError:
        raise CommandError(f"{what} needs the townlet-train package: pip install townlet-train") from None
    return townlet_train


def make_policy(args: argparse.Namespace, town: Town) -> Policy:
    if args.policy == "random":  # uniform over legal actions, from a generator of our own
        draws = torch.Generator().manual_seed(args.seed)
        return lambda now: now.mask.float().cpu().multinomial(1, generator=draws).squeeze(1)
    if args.policy == "scripted":
        scripted = ScriptedPolicy(town)
        return lambda now: scripted(now.obs, {"action_mask": now.mask})
    return _network_policy(args, town)


def _network_policy(args: argparse.Namespace, town: Town) -> Policy:
    _trainer("--policy checkpoint")
    from townlet_train.checkpoint import CheckpointError
    from townlet_train.evaluate import load_policy_network
    from townlet_train.policy import policy_for_network

    try:
        network = load_policy_network(args.checkpoint, town.device)[0]
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    policy = policy_for_network(network)  # greedy, carrying a recurrent network's state
    carried = {"state": policy.initial_state(town.num_slots, town.device)}

    def act(now: Observation) -> torch.Tensor:
        if isinstance(now, StepOutput):  # newcomers start with a fresh memory
            carried["state"] = policy.reset(carried["state"], now.done)
        action, carried["state"] = policy.act(now.obs, now.mask, carried["state"])
        return action

    return act


def _checkpoint_level(args: argparse.Namespace) -> str:
    _trainer("--policy checkpoint")
    from townlet_train.checkpoint import CheckpointError, load_checkpoint

    try:
        config = load_checkpoint(args.checkpoint).get("config") or {}
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    return str(config.get("level", ""))


def run_record(args: argparse.Namespace) -> int:
    if args.policy == "checkpoint" and args.checkpoint is None:
        raise CommandError("--policy checkpoint needs --checkpoint PATH")
    if args.checkpoint is not None and args.policy != "checkpoint":
        raise CommandError(f"--checkpoint is only used with --policy checkpoint, not {args.policy}")
    level = args.level or (_checkpoint_level(args) if args.policy == "checkpoint" else None)
    if not level:
        raise CommandError("give --level LEVEL")
    k = args.agents_per_town
    try:
        town = Town(level, args.towns * k, k)
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
    path = recorder.save(args.output)
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
        frames = write_video(args.file, args.output, town=args.town, fps=args.fps)
    except RecordingError:
        raise
    except ValueError as exc:  # a bad suffix, town or fps
        raise CommandError(str(exc)) from None
    print(f"wrote {args.output}: {frames} frames of town {args.town} at {args.fps:g} fps")
    return 0


__all__ = ["POLICIES", "CommandError", "add_commands", "run_record", "run_replay", "run_video"]

"""`Replayer`: re-simulate a recording tick by tick, verifying every stored checksum it passes.

    replayer = Replayer(load_recording("run.townlet"))
    replayer.seek(300)                 # re-simulates (from the nearest state it has kept)
    picture = replayer.town.render("rgb_array", town=0)
    replayer.step()                    # one tick forward
    summary = replayer.verify()        # run to the end; raises RecordingError on a mismatch

A tick is a pure function of the state and the actions, and all randomness comes from the
Town's generator, which is part of the recorded start state: on the same device type the
re-simulation reproduces the recorded run bit for bit, and the checksums prove it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from townlet_env.config import ConfigError
from townlet_env.core import CompiledLevel, compile_level
from townlet_env.core.snapshot import StateMismatchError
from townlet_env.core.town import StepOutput, Town
from townlet_env.recording.format import Recording, RecordingError, load_recording, state_checksum


@dataclass(frozen=True)
class ReplaySummary:
    path: str
    level: str
    ticks: int
    towns: int
    agents_per_town: int
    checksums: int  # how many checksums were verified

    def line(self) -> str:
        return (
            f"ok: {self.path}: {self.level}, {self.ticks} ticks, {self.towns} towns x "
            f"{self.agents_per_town} agents, {self.checksums} checksums verified"
        )


def resolve_level(recording: Recording, level: str | Path | CompiledLevel | None, device: Any) -> Any:
    """The level to replay on: `level` if given, else the recorded pack directory if it still
    exists, else the built-in level of the recorded name. Its content hash must match."""
    name = recording.path
    header = recording.header
    if isinstance(level, CompiledLevel):
        compiled = level.to(torch.device(device))
    else:
        if level is None:
            source = Path(header["level_source"]) if header["level_source"] else None
            level = source if source is not None and source.is_dir() else header["level"]
        try:
            compiled = compile_level(level, torch.device(device))
        except (ConfigError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise RecordingError(
                f"{name}: cannot load its level {header['level'][:80]!r} ({first})"
            ) from None
    if compiled.content_hash != header["level_hash"]:
        raise RecordingError(
            f"{name}: recorded on another version of level '{header['level']}' (hash "
            f"{header['level_hash'][:12]}), but the level here has hash {compiled.content_hash[:12]}"
        )
    if compiled.n_actions != header["n_actions"]:
        raise RecordingError(
            f"{name}: header field 'n_actions' is {header['n_actions']}, but level "
            f"'{compiled.name}' has {compiled.n_actions} actions"
        )
    return compiled


def usable_device(recording: Recording, device: str | torch.device | None) -> torch.device:
    """The device to replay on: the recorded device type unless told otherwise, and one that
    exists here (a CUDA recording on a CPU-only machine is one line, not an AssertionError)."""
    recorded = recording.header["device_type"]
    try:
        chosen = torch.device(device if device is not None else recorded)
        torch.empty(0, device=chosen)
    except (RuntimeError, AssertionError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise RecordingError(
            f"{recording.path}: recorded on {recorded}, and this machine cannot use that device "
            f"({type(exc).__name__}: {first}); replay it on a machine with a {recorded} device"
        ) from None
    if chosen.type != recorded:
        raise RecordingError(
            f"{recording.path}: recorded on {recorded}, cannot be verified on "
            f"{chosen.type} (the random streams differ between device types)"
        )
    return chosen


class Replayer:
    def __init__(
        self,
        recording: Recording | str | Path,
        level: str | Path | CompiledLevel | None = None,
        device: str | torch.device | None = None,
        keep: bool = True,
    ) -> None:
        """Re-simulate `recording` (or the file at that path) from its start state. `device`
        defaults to the recorded device type. With `keep`, the state at every checksum tick
        passed is kept in memory, so that `seek` backwards starts from the nearest one."""
        if not isinstance(recording, Recording):
            recording = load_recording(recording)
        self.recording = recording
        header = recording.header
        device = usable_device(recording, device)
        compiled = resolve_level(recording, level, device)
        self.town = Town(
            compiled,
            recording.header["num_slots"],
            recording.agents_per_town,
            device,
            autoreset=bool(header["autoreset"]),
        )
        self._actions = torch.from_numpy(recording.actions).to(device)
        self._expected = {
            int(t): bytes(s) for t, s in zip(recording.checksum_ticks, recording.checksums, strict=True)
        }
        self.keep = keep
        self._kept: dict[int, dict[str, Any]] = {}
        self.verified: set[int] = set()
        self.tick = 0
        self._restart()

    @property
    def ticks(self) -> int:
        return self.recording.ticks

    def _restart(self) -> None:
        try:
            self.town.load_state_dict(self.recording.start)
        except StateMismatchError as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise RecordingError(f"{self.recording.path}: its start state is not usable ({first})") from None
        except (RuntimeError, ValueError, TypeError) as exc:  # e.g. a generator state torch refuses
            first = (str(exc).strip().splitlines() or [""])[0][:120]
            raise RecordingError(
                f"{self.recording.path}: its start state is not usable ({type(exc).__name__}: {first})"
            ) from None
        self.tick = 0
        self._check()

    def _check(self) -> None:
        expected = self._expected.get(self.tick)
        if expected is None:
            return
        if state_checksum(self.town.state, self.town.generator) != expected:
            raise RecordingError(
                f"{self.recording.path}: checksum mismatch at tick {self.tick} (the re-simulated state "
                "differs from the recorded one: edited actions or checksums, or another device type)"
            )
        self.verified.add(self.tick)
        if self.keep and self.tick:
            self._kept[self.tick] = self.town.state_dict()

    def step(self) -> StepOutput:
        """Run the next recorded tick (verifying its checksum if one is stored)."""
        if self.tick >= self.ticks:
            raise IndexError(f"the recording ends at tick {self.ticks}")
        out = self.town.step(self._actions[self.tick])
        self.tick += 1
        self._check()
        return out

    def seek(self, tick: int) -> None:
        """Put the town in the state after `tick` ticks (0: the start), re-simulating from the
        latest kept state at or before it."""
        if not 0 <= tick <= self.ticks:
            raise IndexError(f"tick {tick} is not in [0, {self.ticks}]")
        if tick < self.tick:
            kept = [t for t in self._kept if t <= tick]
            if kept:
                self.tick = max(kept)
                self.town.load_state_dict(self._kept[self.tick])
            else:
                self._restart()
        while self.tick < tick:
            self.step()

    def verify(self) -> ReplaySummary:
        """Run to the end of the recording, verifying every checksum not verified yet."""
        if any(t < self.tick and t not in self.verified for t in self._expected):
            self._restart()
        self.seek(self.ticks)
        return ReplaySummary(
            self.recording.path,
            self.recording.level,
            self.ticks,
            self.recording.num_towns,
            self.recording.agents_per_town,
            len(self.verified),
        )


def verify_recording(path: str | Path, level: str | Path | None = None) -> ReplaySummary:
    """Load, re-simulate and verify a recording file; raises `RecordingError` on any problem."""
    return Replayer(load_recording(path), level=level).verify()


__all__ = ["ReplaySummary", "Replayer", "verify_recording"]

"""`Recorder`: keeps the start state of a `Town` and the actions of every tick, and writes them.

    town = Town("L1_full_observability", num_slots=64)
    now = town.reset(seed=0)
    recorder = Recorder(town, seed=0)            # after reset: tick 0 is the current state
    for _ in range(1000):
        now = recorder.step(actions)             # steps the town and records the tick
    recorder.save("run.townlet")

Code that steps the town itself (a vector env, the trainer's evaluation) calls
`recorder.record(actions)` right after each `town.step(actions)` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_env.core.town import StepOutput, Town, check_actions
from townlet_env.recording.format import (
    DEFAULT_EVERY,
    FORMAT,
    MAGIC,
    Recording,
    save_recording,
    state_checksum,
)


class Recorder:
    def __init__(
        self, town: Town, every: int = DEFAULT_EVERY, seed: int | None = None, policy: str = ""
    ) -> None:
        """Start recording `town` from its current state (call `town.reset` first). The state
        is hashed at tick 0, every `every` ticks, and at the last tick recorded."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if town.level.n_actions > 256:
            raise ValueError(f"{town.level.n_actions} actions do not fit the uint8 action record")
        self.town = town
        self.every = every
        self.seed = seed
        self.policy = policy
        self.start = town.state_dict()
        self._actions: list[np.ndarray] = []
        self._ticks = [0]
        self._sums = [state_checksum(town.state, town.generator)]
        # the latest tick's state (frozen tensors, never written in place) and generator state,
        # hashed only if the recording ends there: no device-to-host copy of the state per tick
        self._last: tuple[Any, torch.Tensor] | None = None

    @property
    def ticks(self) -> int:
        return len(self._actions)

    def step(self, actions: Any) -> StepOutput:
        """Step the town with `actions` and record the tick."""
        out = self.town.step(actions)
        self.record(actions)
        return out

    def record(self, actions: Any) -> None:
        """Record a tick the town has just run with `actions`."""
        town = self.town
        checked = check_actions(actions, town.num_slots, town.level, town.device)
        self._actions.append(checked.cpu().numpy().astype(np.uint8))
        tick = len(self._actions)
        if tick % self.every == 0:
            self._ticks.append(tick)
            self._sums.append(state_checksum(town.state, town.generator))
            self._last = None
        else:
            self._last = (town.state, town.generator.get_state())

    def recording(self) -> Recording:
        """What has been recorded so far, as a `Recording` (the last tick is always hashed)."""
        town, n = self.town, self.town.num_slots
        ticks, sums = list(self._ticks), list(self._sums)
        if self._last is not None:
            ticks.append(len(self._actions))
            sums.append(state_checksum(*self._last))
        actions = np.stack(self._actions) if self._actions else np.zeros((0, n), dtype=np.uint8)
        source = town.level.config.source
        header = {
            "magic": MAGIC,
            "format": FORMAT,
            "level": town.level.name,
            "level_hash": town.level.content_hash,
            "level_source": str(source) if source is not None else "",
            "num_towns": town.num_towns,
            "agents_per_town": town.agents_per_town,
            "num_slots": n,
            "n_actions": town.level.n_actions,
            "ticks": int(actions.shape[0]),
            "every": self.every,
            "autoreset": town.autoreset,
            "device_type": town.device.type,
            "seed": self.seed,
            "policy": self.policy,
        }
        return Recording(
            header=header,
            actions=actions,
            checksum_ticks=np.asarray(ticks, dtype=np.int64),
            checksums=np.frombuffer(b"".join(sums), dtype=np.uint8).reshape(-1, 32).copy(),
            start=self.start,
        )

    def save(self, path: str | Path, force: bool = False) -> Path:
        """Write the recording to `path` atomically (an existing file only with `force`)."""
        return save_recording(self.recording(), path, force)


__all__ = ["Recorder"]

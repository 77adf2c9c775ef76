"""What every learner of a recurrent memory shares: windows of consecutive steps per slot and a
replay of whole windows (learning unrolls the model over them: `models.Model.unroll`).

Recurrent DQN stores actions, rewards and final observations in its windows; recurrent DAgger
stores the teacher's labels. Both keep the acting memory's state at each window's start
(R2D2's stored state), so learning can replay a window from where the actor really was instead
of from a zero state. `WindowReplay` is the two together, the buffer both learners use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from townlet_train.models import State

# name -> (shape of one slot's value at one step, dtype)
Fields = dict[str, tuple[tuple[int, ...], torch.dtype]]

STATE_KEYS = ("h", "c")  # a window's memory state parts, named as checkpoints have always named them


def state_key(part: int) -> str:
    return STATE_KEYS[part] if part < len(STATE_KEYS) else f"s{part}"


def state_fields(state: State) -> Fields:
    """The window fields of a carried memory state ([1, N, ...] parts): one per part."""
    return {state_key(i): (tuple(part.shape[2:]), part.dtype) for i, part in enumerate(state)}


def window_state(window: dict[str, torch.Tensor], state: State) -> State:
    """The memory state (rows) a window stored at its start, for a memory whose state is like
    `state`."""
    return tuple(window[state_key(i)] for i in range(len(state)))


class SequenceCollector:
    """The last L steps of every slot in a ring; every `stride` steps, emits one window per slot.

    A window holds [N, L, ...] of every field, except the memory state's (`state_keys`), of which
    it keeps only the state at the window's start, [N, ...]: the one learning replays from.
    """

    def __init__(
        self,
        length: int,
        stride: int,
        num_envs: int,
        fields: Fields,
        device: torch.device,
        state_keys: tuple[str, ...] = STATE_KEYS,
    ):
        self.length, self.stride, self.state_keys = length, stride, state_keys
        self.buf = {
            key: torch.zeros(length, num_envs, *shape, dtype=dtype, device=device)
            for key, (shape, dtype) in fields.items()
        }
        self.steps = 0  # steps written so far

    def push(self, step: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        head = self.steps % self.length
        for key, ring in self.buf.items():
            ring[head] = step[key]
        self.steps += 1
        if self.steps < self.length or (self.steps - self.length) % self.stride:
            return None
        device = next(iter(self.buf.values())).device
        order = (head + 1 + torch.arange(self.length, device=device)) % self.length
        window = {key: ring[order].transpose(0, 1) for key, ring in self.buf.items()}  # [N, L, ...]
        for key in self.state_keys:
            if key in window:
                window[key] = window[key][:, 0]
        return window

    def state_dict(self) -> dict:
        return {"buf": self.buf, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        for key, ring in self.buf.items():
            ring.copy_(state["buf"][key])
        self.steps = int(state["steps"])


class SequenceReplay:
    """Uniform replay of whole windows."""

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.store: dict[str, torch.Tensor] = {}
        self.cursor = self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, window: dict[str, torch.Tensor]) -> None:
        count = min(next(iter(window.values())).shape[0], self.capacity)
        if not self.store:
            self.store = {
                k: torch.zeros(self.capacity, *v.shape[1:], dtype=v.dtype, device=self.device)
                for k, v in window.items()
            }
        rows = (self.cursor + torch.arange(count, device=self.device)) % self.capacity
        for key, value in window.items():
            self.store[key][rows] = value[-count:]
        self.cursor = (self.cursor + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        rows = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return {k: v[rows] for k, v in self.store.items()}

    def state_dict(self) -> dict:
        return {
            "store": {k: v[: self.size] for k, v in self.store.items()},
            "cursor": self.cursor,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.cursor, self.size = int(state["cursor"]), int(state["size"])
        saved = state["store"]
        self.store = {
            k: torch.zeros(self.capacity, *v.shape[1:], dtype=v.dtype, device=self.device)
            for k, v in saved.items()
        }
        for key, value in saved.items():
            self.store[key][: self.size] = value


class WindowReplay:
    """A recurrent learner's buffer: windows of `length` steps of one slot, a new one every
    `stride` steps, each with the memory state the actor had at its start, replayed uniformly.
    `keep` transforms each window before it is stored. `replay` is what
    `checkpoint.include_replay` saves; the collector is per-run state every checkpoint holds."""

    def __init__(
        self,
        length: int,
        stride: int,
        capacity: int,
        num_envs: int,
        fields: Fields,
        state: State,
        device: torch.device,
        keep: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    ):
        fields = {**fields, **state_fields(state)}
        keys = tuple(state_key(i) for i in range(len(state)))
        self.collector = SequenceCollector(length, stride, num_envs, fields, device, keys)
        self.replay = SequenceReplay(max(1, capacity // stride), device)
        self.keep = keep

    def add(self, step: dict[str, torch.Tensor], before: State) -> None:
        """One env step of every slot, with the memory state its action was chosen from."""
        rows = {state_key(i): part[0] for i, part in enumerate(before)}
        window = self.collector.push({**step, **rows})
        if window is not None:
            self.replay.add(self.keep(window) if self.keep is not None else window)

    def ready(self, batch_size: int = 1) -> bool:
        """One window is enough to learn from (a batch of windows repeats rows until full)."""
        return len(self.replay) >= 1

    def sample(self, windows: int, rng: torch.Generator, agent_steps: int = 0) -> dict[str, torch.Tensor]:
        return self.replay.sample(windows, rng)

    def state_dict(self) -> dict[str, Any]:
        return {"collector": self.collector.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.collector.load_state_dict(state["collector"])

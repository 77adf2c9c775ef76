"""What every recurrent learner shares: windows of consecutive steps per slot and a replay of whole
windows (learning unrolls the model over them: `models.Model.unroll`).

Recurrent DQN (recurrent.py) stores actions, rewards and final observations in its windows;
recurrent DAgger (recurrent_imitation.py) stores the teacher's labels. Both keep the acting
LSTM's state at each window's start (R2D2's stored state), so learning can replay a window
from where the actor really was instead of from a zero state.
"""

from __future__ import annotations

import torch

# name -> (shape of one slot's value at one step, dtype)
Fields = dict[str, tuple[tuple[int, ...], torch.dtype]]


class SequenceCollector:
    """The last L steps of every slot in a ring; every `stride` steps, emits one window per slot.

    A window holds [N, L, ...] of every field, except the LSTM state fields `h` and `c`, of which
    it keeps only the state at the window's start, [N, H]: the one learning replays from.
    """

    def __init__(self, length: int, stride: int, num_envs: int, fields: Fields, device: torch.device):
        self.length, self.stride = length, stride
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
        for key in ("h", "c"):
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

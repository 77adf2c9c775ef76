"""PPO's buffer: one iteration's steps of every slot, [T, N], and (with a memory) the state each
slot had at the rollout's first step, from which learning replays the slot's whole rollout."""

from __future__ import annotations

from typing import Any

import torch

from townlet_train.models import State, rows_of


class Rollout:
    """[T, N] storage for one iteration's steps; `t` is how many are filled. With a recurrent
    policy, also the memory state (rows [N, ...]) each slot had at the first step: `h0`, `c0`."""

    KEYS: tuple[str, ...] = ("obs", "mask", "action", "logprob", "value", "reward", "done")
    STATE_KEYS = ("h0", "c0")

    def __init__(
        self, steps: int, n: int, obs_dim: int, n_actions: int, device: torch.device, state: State = ()
    ):
        def z(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(steps, n, *shape, dtype=dtype, device=device)

        self.obs, self.mask = z(obs_dim), z(n_actions, dtype=torch.bool)
        self.action = z(dtype=torch.long)
        self.logprob, self.value, self.reward = z(), z(), z()
        self.done = z(dtype=torch.bool)
        self.start = tuple(torch.zeros_like(part) for part in rows_of(state))
        self.t = 0

    def begin(self, carried: State) -> None:
        """Keep the carried state ([1, N, ...]) as the one learning replays this rollout from."""
        for part, now in zip(self.start, rows_of(carried), strict=True):
            part.copy_(now)

    def state_dict(self) -> dict[str, Any]:
        start = dict(zip(self.STATE_KEYS, self.start, strict=False))
        return {**{k: getattr(self, k) for k in self.KEYS}, **start, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        for key in self.KEYS:
            getattr(self, key).copy_(state[key])
        for key, part in zip(self.STATE_KEYS, self.start, strict=False):
            part.copy_(state[key])
        self.t = int(state["t"])

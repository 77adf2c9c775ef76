"""DAgger's buffer of labelled states: a ring of (observation, action mask, teacher action)."""

from __future__ import annotations

from typing import Any

import torch


class LabelBuffer:
    """A ring of (observation, action mask, teacher action); the oldest labels go first."""

    KEYS = ("obs", "mask", "label")

    def __init__(self, capacity: int, obs_dim: int, n_actions: int, device: torch.device):
        self.capacity = capacity
        self.obs = torch.zeros(capacity, obs_dim, device=device)
        self.mask = torch.zeros(capacity, n_actions, dtype=torch.bool, device=device)
        self.label = torch.zeros(capacity, dtype=torch.long, device=device)
        self.cursor = self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, mask: torch.Tensor, label: torch.Tensor) -> None:
        rows = (self.cursor + torch.arange(obs.shape[0], device=obs.device)) % self.capacity
        self.obs[rows], self.mask[rows], self.label[rows] = obs, mask, label
        self.cursor = (self.cursor + obs.shape[0]) % self.capacity
        self.size = min(self.capacity, self.size + obs.shape[0])

    def sample(self, batch: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
        index = torch.randint(0, self.size, (batch,), generator=rng, device=rng.device)
        return {"obs": self.obs[index], "mask": self.mask[index], "label": self.label[index]}

    def state_dict(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k)[: self.size] for k in self.KEYS},
            "cursor": self.cursor,
            "size": self.size,
        }

    def load_state_dict(self, state: dict) -> None:
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        for key in self.KEYS:
            getattr(self, key)[: self.size] = state[key]

"""Replay for feed-forward DQN: n-step accumulation, a uniform ring buffer and a prioritized buffer
on a vectorised sum tree, and `NStepReplay`, the two together as the DQN learner's buffer (the
recurrent one replays windows: sequences.py). Everything stays on the learner's device.

A stored transition is (obs, action, n-step return, next obs, next action mask, discount), where
discount = gamma^k when the k-step return ends on a live or truncated state (we bootstrap from
it) and 0 when it ends on a termination (we do not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Batch:
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    next_mask: torch.Tensor
    discount: torch.Tensor
    weight: torch.Tensor  # importance weight (ones for uniform replay)
    index: torch.Tensor  # buffer rows, for priority updates


class NStepAccumulator:
    """Turns each slot's stream of 1-step transitions into n-step transitions.

    Keeps the last n (obs, action, reward) per slot in a ring. A transition leaves when its
    window is full, or early, with fewer steps, when the slot's episode ends.
    """

    def __init__(self, n: int, gamma: float, num_envs: int, obs_dim: int, device: torch.device):
        self.n, self.gamma = n, gamma
        self.obs = torch.zeros(n, num_envs, obs_dim, device=device)
        self.action = torch.zeros(n, num_envs, dtype=torch.long, device=device)
        self.reward = torch.zeros(n, num_envs, device=device)
        self.count = torch.zeros(num_envs, dtype=torch.long, device=device)  # pending per slot
        self.head = 0  # ring position the next step is written to
        self.powers = gamma ** torch.arange(n, device=device, dtype=torch.float32)

    def push(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        next_mask: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Add one env step (next_obs is the final obs for slots that ended); return the ready
        n-step transitions as flat tensors."""
        n = self.n
        self.obs[self.head], self.action[self.head], self.reward[self.head] = obs, action, reward
        self.count = (self.count + 1).clamp(max=n)
        ended = terminated | truncated
        # ages 0 (newest) .. n-1 (oldest); ring position of age a is head - a
        ages = torch.arange(n, device=obs.device)
        positions = (self.head - ages) % n  # [n]
        valid = ages[:, None] < self.count[None, :]  # [n, N]
        # the oldest pending step leaves when the window is full; all of them when the slot ended
        leaving = valid & ((ages[:, None] == n - 1) | ended[None, :])
        rewards = self.reward[positions] * valid  # [n(age), N]
        # return of the step of age a: sum over ages b <= a of gamma^(a - b) r_b
        weights = torch.tril(self.powers[(ages[:, None] - ages[None, :]).clamp(min=0)])
        returns = weights @ rewards  # [n, N]
        discount = self.gamma ** (ages + 1).float()[:, None] * (~terminated).float()[None, :]
        age_idx, slot_idx = leaving.nonzero(as_tuple=True)
        pos = positions[age_idx]
        out = {
            "obs": self.obs[pos, slot_idx],
            "action": self.action[pos, slot_idx],
            "reward": returns[age_idx, slot_idx],
            "next_obs": next_obs[slot_idx],
            "next_mask": next_mask[slot_idx],
            "discount": discount[age_idx, slot_idx],
        }
        self.count = torch.where(ended, 0, self.count)
        self.head = (self.head + 1) % n
        return out

    def state_dict(self) -> dict[str, torch.Tensor | int | float]:
        return {
            "obs": self.obs,
            "action": self.action,
            "reward": self.reward,
            "count": self.count,
            "head": self.head,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("obs", "action", "reward", "count"):
            getattr(self, key).copy_(state[key])
        self.head = int(state["head"])


class UniformReplay:
    def __init__(self, capacity: int, obs_dim: int, n_actions: int, device: torch.device):
        self.capacity = capacity
        self.device = device
        self.obs = torch.zeros(capacity, obs_dim, device=device)
        self.next_obs = torch.zeros(capacity, obs_dim, device=device)
        self.action = torch.zeros(capacity, dtype=torch.long, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.discount = torch.zeros(capacity, device=device)
        self.next_mask = torch.zeros(capacity, n_actions, dtype=torch.bool, device=device)
        self.cursor = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Write a batch of transitions at the ring cursor; returns the rows written."""
        count = batch["obs"].shape[0]
        if count > self.capacity:  # only the newest fit
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            count = self.capacity
        rows = (self.cursor + torch.arange(count, device=self.device)) % self.capacity
        for key, value in batch.items():
            getattr(self, key)[rows] = value
        self.cursor = (self.cursor + count) % self.capacity
        self.size = min(self.size + count, self.capacity)
        return rows

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        rows = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return self._gather(rows, torch.ones(batch_size, device=self.device))

    def _gather(self, rows: torch.Tensor, weight: torch.Tensor) -> Batch:
        return Batch(
            self.obs[rows],
            self.action[rows],
            self.reward[rows],
            self.next_obs[rows],
            self.next_mask[rows],
            self.discount[rows],
            weight,
            rows,
        )

    def update_priorities(self, rows: torch.Tensor, td_error: torch.Tensor) -> None:
        """Uniform replay ignores priorities."""

    def state_dict(self) -> dict[str, torch.Tensor | int | float]:
        keys = ("obs", "next_obs", "action", "reward", "discount", "next_mask")
        return {**{k: getattr(self, k)[: self.size] for k in keys}, "cursor": self.cursor, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        for key in ("obs", "next_obs", "action", "reward", "discount", "next_mask"):
            getattr(self, key)[: self.size] = state[key]


class SumTree:
    """Binary tree of priorities in one tensor: leaves at [capacity, 2 capacity), node i holds
    the sum of its children 2i and 2i + 1. Updates and searches are vectorised per level."""

    def __init__(self, capacity: int, device: torch.device):
        self.capacity = 1 << max(1, (capacity - 1).bit_length())
        self.tree = torch.zeros(2 * self.capacity, dtype=torch.float64, device=device)

    @property
    def total(self) -> torch.Tensor:
        return self.tree[1]

    def update(self, leaves: torch.Tensor, priorities: torch.Tensor) -> None:
        nodes = leaves + self.capacity
        self.tree[nodes] = priorities.double()
        nodes = torch.unique(nodes // 2)
        while True:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if bool((nodes == 1).all()):
                break
            nodes = torch.unique(nodes // 2)

    def find(self, values: torch.Tensor) -> torch.Tensor:
        """Leaf index whose prefix-sum interval holds each value in [0, total)."""
        nodes = torch.ones_like(values, dtype=torch.long)
        values = values.double()
        while self.capacity > 1 and bool((nodes < self.capacity).any()):
            left = self.tree[2 * nodes]
            right = values >= left
            values = torch.where(right, values - left, values)
            nodes = 2 * nodes + right.long()
        return nodes - self.capacity


class PrioritizedReplay(UniformReplay):
    """Proportional prioritized replay (Schaul et al. 2016) with importance weights."""

    def __init__(self, capacity: int, obs_dim: int, n_actions: int, device: torch.device, alpha: float):
        super().__init__(capacity, obs_dim, n_actions, device)
        self.alpha = alpha
        self.tree = SumTree(capacity, device)
        self.max_priority = 1.0
        self.beta = 0.4

    def add(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = super().add(batch)
        self.tree.update(rows, torch.full_like(rows, self.max_priority, dtype=torch.float64))
        return rows

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        total = self.tree.total
        # stratified: one draw in each of batch_size equal slices of the total priority
        u = torch.rand(batch_size, device=self.device, generator=generator, dtype=torch.float64)
        values = (torch.arange(batch_size, device=self.device) + u) * (total / batch_size)
        rows = self.tree.find(values.clamp(max=total * (1 - 1e-12))).clamp(max=self.size - 1)
        probs = self.tree.tree[rows + self.tree.capacity] / total
        weight = (self.size * probs).pow(-self.beta)
        return self._gather(rows, (weight / weight.max()).float())

    def update_priorities(self, rows: torch.Tensor, td_error: torch.Tensor) -> None:
        priority = (td_error.detach().abs().double() + 1e-6).pow(self.alpha)
        self.max_priority = max(self.max_priority, float(priority.max()))
        self.tree.update(rows, priority)

    def state_dict(self) -> dict[str, torch.Tensor | int | float]:
        return {**super().state_dict(), "tree": self.tree.tree, "max_priority": self.max_priority}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree.tree.copy_(state["tree"])
        self.max_priority = float(state["max_priority"])


class NStepReplay:
    """Feed-forward DQN's buffer: each slot's steps become n-step transitions (`NStepAccumulator`)
    in uniform or prioritized replay. `replay` is what `checkpoint.include_replay` saves; the
    accumulator is per-run state that every checkpoint holds (`nstep`)."""

    def __init__(
        self,
        settings: Any,
        n_step: int,
        gamma: float,
        n: int,
        obs_dim: int,
        n_actions: int,
        device: torch.device,
    ):
        self.settings = settings
        self.nstep = NStepAccumulator(n_step, gamma, n, obs_dim, device)
        if settings.kind == "prioritized":
            self.replay: UniformReplay = PrioritizedReplay(
                settings.capacity, obs_dim, n_actions, device, settings.alpha
            )
        else:
            self.replay = UniformReplay(settings.capacity, obs_dim, n_actions, device)

    def add(self, step: dict[str, torch.Tensor], before: Any = ()) -> None:
        """One env step of every slot (`before`, the memory state, is for windows: unused)."""
        keys = ("obs", "action", "reward", "next_obs", "next_mask", "terminated", "truncated")
        self.replay.add(self.nstep.push(*(step[key] for key in keys)))

    def ready(self, batch_size: int) -> bool:
        return len(self.replay) >= batch_size

    def sample(self, batch_size: int, rng: torch.Generator, agent_steps: int) -> Batch:
        if isinstance(self.replay, PrioritizedReplay):  # importance weights anneal to 1
            s = self.settings
            self.replay.beta = s.beta_start + min(1.0, agent_steps / s.beta_steps) * (1.0 - s.beta_start)
        return self.replay.sample(batch_size, rng)

    def state_dict(self) -> dict[str, Any]:
        return {"nstep": self.nstep.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.nstep.load_state_dict(state["nstep"])

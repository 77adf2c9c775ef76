"""Exploration: masked epsilon-greedy with a linear decay, and RND intrinsic reward.

RND (Burda et al. 2018): a fixed random network and a trained predictor; the prediction error
on the next observation is the novelty bonus. It is normalised by a running standard deviation
and scaled by an annealed weight, and the weighted bonus is added to the reward that goes into
replay (an earlier implementation logged the weight but never applied it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from townlet_train.config import EpsilonSettings, RndSettings


def linear(start: float, end: float, steps: int, t: int) -> float:
    return end + (start - end) * max(0.0, 1.0 - t / steps)


class EpsilonGreedy:
    """Each slot's epsilon decays linearly from `start` to its own end. With `spread` 0 every
    slot ends at `end`; otherwise the ends fan out geometrically as in Ape-X (Horgan et al.
    2018), so that some slots keep exploring for the whole run while others act almost greedily."""

    def __init__(self, settings: EpsilonSettings, num_slots: int, device: torch.device):
        self.settings = settings
        fraction = torch.arange(num_slots, device=device, dtype=torch.float64) / max(num_slots - 1, 1)
        self.ends = (settings.end ** (1.0 + settings.spread * fraction)).float()

    def per_slot(self, agent_steps: int) -> torch.Tensor:
        """[N] epsilon of every slot at this point of training."""
        s = self.settings
        remaining = max(0.0, 1.0 - agent_steps / s.decay_steps)
        return self.ends + (s.start - self.ends) * remaining

    def epsilon(self, agent_steps: int) -> float:
        """The mean over slots, for logs and progress (every slot's value when spread is 0)."""
        s = self.settings
        if s.spread == 0.0:
            return linear(s.start, s.end, s.decay_steps, agent_steps)
        return float(self.per_slot(agent_steps).mean())

    def select(
        self,
        greedy: torch.Tensor,
        mask: torch.Tensor,
        epsilon: float | torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """With probability epsilon a uniformly random legal action, else the greedy one."""
        scores = torch.rand(mask.shape, device=mask.device, generator=generator).masked_fill(~mask, -1.0)
        random_action = scores.argmax(dim=1)
        explore = torch.rand(mask.shape[0], device=mask.device, generator=generator) < epsilon
        return torch.where(explore, random_action, greedy)


class RunningStd:
    """Running variance (parallel Welford) for normalising intrinsic rewards."""

    def __init__(self, device: torch.device):
        self.count = torch.tensor(1e-4, dtype=torch.float64, device=device)
        self.mean = torch.zeros((), dtype=torch.float64, device=device)
        self.var = torch.ones((), dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        x = x.double()
        n, mean, var = x.numel(), x.mean(), x.var(unbiased=False)
        delta = mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt().float().clamp(min=1e-8)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"count": self.count, "mean": self.mean, "var": self.var}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.count, self.mean, self.var = state["count"], state["mean"], state["var"]


class RND(nn.Module):
    def __init__(self, obs_dim: int, settings: RndSettings):
        super().__init__()
        self.settings = settings
        self.target = nn.Sequential(nn.Linear(obs_dim, 128), nn.ReLU(), nn.Linear(128, settings.embed))
        self.predictor = nn.Sequential(
            nn.Linear(obs_dim, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, settings.embed)
        )
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=settings.lr, fused=True)
        self.reward_std = RunningStd(next(self.parameters()).device)

    def weight(self, agent_steps: int) -> float:
        s = self.settings
        return linear(s.weight_start, s.weight_end, s.anneal_steps, agent_steps)

    def error(self, obs: torch.Tensor) -> torch.Tensor:
        return (self.predictor(obs) - self.target(obs)).pow(2).mean(dim=-1)

    def intrinsic(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Normalised novelty of each next observation (no gradient)."""
        with torch.no_grad():
            err = self.error(next_obs)
        self.reward_std.update(err)
        return err / self.reward_std.std

    def learn(self, obs: torch.Tensor) -> float:
        loss = self.error(obs).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def to(self, *args: Any, **kwargs: Any) -> RND:  # keep the running statistics on the same device
        module = super().to(*args, **kwargs)
        device = next(self.parameters()).device
        for key in ("count", "mean", "var"):
            setattr(self.reward_std, key, getattr(self.reward_std, key).to(device))
        return module

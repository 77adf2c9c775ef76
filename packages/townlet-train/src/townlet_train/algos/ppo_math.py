"""PPO's arithmetic, free of any state: GAE, the clipped objectives and shuffled minibatches."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), all [T, N]; `dones[t]` means step t ended its episode, so neither
    the value nor the advantage of step t + 1 (a new life) flows back into step t."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        live = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * following * live - values[t]
        last = delta + gamma * lam * live * last
        advantages[t] = last
    return advantages, advantages + values


def shuffled(total: int, size: int, rng: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """One epoch of row indices: a permutation of range(total) in whole batches of `size` (the
    remainder is left out)."""
    order = torch.randperm(total, generator=rng, device=device)
    for start in range(0, total - size + 1, size):
        yield order[start : start + size]


def clipped_policy_loss(
    new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the clipped surrogate loss, the fraction of samples where the clip was active)."""
    ratio = (new_logprob - old_logprob).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    return torch.max(unclipped, clipped).mean(), ((ratio - 1.0).abs() > clip).float().mean()


def value_loss(
    new: torch.Tensor, old: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> torch.Tensor:
    if clip is None:
        return 0.5 * (new - returns).pow(2).mean()
    clipped = old + (new - old).clamp(-clip, clip)
    return 0.5 * torch.max((new - returns).pow(2), (clipped - returns).pow(2)).mean()

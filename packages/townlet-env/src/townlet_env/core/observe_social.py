"""The social fields of an observation on a social level (docs/observations.md#l4_social).

`personality`: the agent's own traits. `queue`: 1 when queued, then 1 / (1 + agents served
before it). `nearest`: for each of the `nearest` other agents of the town, closest first
(Manhattan distance, then slot order; the dead after the living, as zero rows), the row dx, dy
(normalised like every offset), alive, busy (part-way through a use), queued, and the observer's
trust, familiarity and rivalry toward it. An agent that is not alive sees no one (and, having
left any queue when it died, is not queued).
"""

from __future__ import annotations

import torch

from townlet_env.core.level import CompiledLevel
from townlet_env.core.queue import queue_position
from townlet_env.core.state import TownState

NEAREST_COLUMNS = ("dx", "dy", "alive", "busy", "queued", "trust", "familiarity", "rivalry")


def nearest_order(state: TownState) -> torch.Tensor:
    """[T, K, K - 1] the other slots of each agent's town, nearest living first."""
    k = state.agents_per_town
    pos = state.position.view(-1, k, 2)
    dist = (pos[:, :, None, :] - pos[:, None, :, :]).abs().sum(dim=3)
    living = state.alive.view(-1, k)[:, None, :]
    column = torch.arange(k, device=pos.device)
    far = 256  # beyond any Manhattan distance on a 64 x 64 grid
    key = torch.where(living, dist, far) * k + column
    key = key.masked_fill(torch.eye(k, dtype=torch.bool, device=pos.device), torch.iinfo(torch.long).max)
    return key.argsort(dim=2)[:, :, : k - 1]


def social_view(level: CompiledLevel, state: TownState, aff: torch.Tensor, obs: torch.Tensor) -> None:
    layout = level.layout
    n, k = state.num_slots, state.agents_per_town
    obs[:, layout["personality"].slice] = state.personality
    position = queue_position(state, aff, level.max_steps)
    queued = position >= 0
    queue = obs[:, layout["queue"].slice]
    queue[:, 0] = queued
    queue[:, 1] = (1.0 / (1.0 + position.clamp(min=0))) * queued
    field = obs[:, layout["nearest"].slice].view(n, *layout["nearest"].shape)
    width = min(k - 1, field.shape[1])
    if width <= 0:
        return
    # Every column of a row comes from one of two gathers: the other agent's facts (x, y,
    # alive, busy, queued) and the observer's ties toward it.
    order = nearest_order(state)[:, :, :width].reshape(-1, k * width, 1)  # [T, K*W, 1]
    facts = torch.cat([state.position, torch.stack([state.alive, state.progress > 0, queued], dim=1)], dim=1)
    facts = facts.float().view(-1, k, 5).gather(1, order.expand(-1, -1, 5)).view(n, width, 5)
    ties = torch.stack((state.trust, state.familiarity, state.rivalry), dim=2)
    ties = ties.gather(1, order.view(n, width, 1).expand(-1, -1, 3))
    rel = (facts[:, :, :2] - state.position.view(n, 1, 2)) / level.position_scale
    # built contiguous and copied once: strided writes into the observation cost far more
    block = torch.cat([rel, facts[:, :, 2:], ties], dim=2)
    field[:, :width] = block.mul_(facts[:, :, 2:3] * state.alive.view(n, 1, 1))

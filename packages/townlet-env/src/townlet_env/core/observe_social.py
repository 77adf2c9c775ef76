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
    n = state.num_slots
    k = state.agents_per_town
    obs[:, layout["personality"].slice] = state.personality
    position = queue_position(state, aff, level.max_steps)
    queued = position >= 0
    queue = obs[:, layout["queue"].slice]
    queue[:, 0] = queued.float()
    queue[:, 1] = torch.where(queued, 1.0 / (1.0 + position.float()), 0.0)
    field = obs[:, layout["nearest"].slice].view(n, *layout["nearest"].shape)
    field.zero_()
    width = min(k - 1, field.shape[1])
    if width <= 0:
        return
    order = nearest_order(state)[:, :, :width]  # [T, K, W]
    towns = torch.arange(state.num_towns, device=aff.device)[:, None, None]
    other = (towns * k + order).flatten(1)  # [T, K*W] global slots
    seen = (state.alive[other].view(-1, k, width) & state.alive.view(-1, k, 1)).view(n, width)
    other = other.view(n, width)
    rel = (state.position[other] - state.position[:, None, :]).float() / level.position_scale
    column = order.reshape(n, width)
    ties = [t.gather(1, column) for t in (state.trust, state.familiarity, state.rivalry)]
    values = [
        rel[..., 0],
        rel[..., 1],
        torch.ones_like(rel[..., 0]),
        (state.progress[other] > 0).float(),
        (state.queue_key[other] >= 0).float(),
        *ties,
    ]
    field[:, :width] = torch.stack(values, dim=2) * seen[..., None]

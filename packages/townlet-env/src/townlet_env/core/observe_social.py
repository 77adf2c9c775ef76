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
from townlet_env.core.pairs import Pairs, columns

NEAREST_COLUMNS = ("dx", "dy", "alive", "busy", "queued", "trust", "familiarity", "rivalry")
FAR = 256  # more than any Manhattan distance between two cells of a 64 x 64 grid (126 at most)


def social_view(level: CompiledLevel, pairs: Pairs, obs: torch.Tensor) -> None:
    layout = level.layout
    state = pairs.state
    n = state.num_slots
    obs[:, layout["personality"].slice] = state.personality
    position = pairs.queue_position
    queued = position >= 0
    queue = obs[:, layout["queue"].slice]
    queue[:, 0] = queued
    queue[:, 1] = (1.0 / (1.0 + position.clamp(min=0))) * queued
    width = min(pairs.k - 1, layout["nearest"].shape[0])
    if width > 0:
        obs[:, layout["nearest"].slice].view(n, -1)[:, : width * len(NEAREST_COLUMNS)] = nearest_rows(
            level, pairs, width
        )


def nearest_rows(level: CompiledLevel, pairs: Pairs, width: int) -> torch.Tensor:
    """[N, width * 8] the rows of each agent's `width` nearest others, nearest first.

    Every row is a row of one [T, K (i), K (j), 8] table of what i sees of j, so the block is a
    single `index_select` of rows. The table is filled column by column in the town-last layout,
    where each column is a few fast whole-row operations, and turned into rows by one
    transposing copy; gathering column by column, or writing the observation strided, costs
    several times more.
    """
    state, k = pairs.state, pairs.k
    t = state.num_towns
    scale = level.position_scale
    c = len(NEAREST_COLUMNS)
    table = pairs.buffer("nearest_table", (k, k, c, t))  # [i, j, column, town]
    for axis, offset in enumerate(pairs.offset):
        torch.div(offset, scale[axis], out=table[:, :, axis])
    table[:, :, 2:5] = torch.stack((pairs.alive, pairs.busy, pairs.queued), dim=1)  # of j, for every i
    table[:, :, 5:8] = pairs.ties.permute(1, 2, 0, 3)
    table *= pairs.living[:, :, None, :]  # a dead one is unseen, and sees no one
    rows = pairs.buffer("nearest_rows", (t, k * k * c))
    rows.copy_(table.view(-1, t).t())  # row (town, i, j)
    order = nearest_order(pairs, width)
    block = pairs.buffer("nearest_block", (order.numel(), c))
    return torch.index_select(rows.view(-1, c), 0, order, out=block).view(state.num_slots, -1)


def nearest_order(pairs: Pairs, width: int) -> torch.Tensor:
    """[N * width] for each slot, its `width` nearest others as rows of the [T * K * K] pairs of
    its town (`slot * K + j`), nearest first."""
    k = pairs.k
    # living others by distance then slot, the dead after them by slot (as if FAR away), oneself
    # last; torch.sort is fastest along the last dimension, so the keys go town-first
    distance = pairs.distance.masked_fill(~pairs.alive[None, :, :], FAR)
    # int32 like the distance: torch sorts int32 keys nearly twice as fast as int64 ones
    key = distance * k + columns(k, pairs.aff.device, torch.int32)
    key.diagonal(dim1=0, dim2=1).fill_((FAR + 1) * k)
    order = key.permute(2, 0, 1).contiguous().argsort(dim=2)[:, :, :width]
    slot = torch.arange(pairs.state.num_slots, device=key.device).view(-1, k, 1)
    return (order + slot * k).flatten()

"""What an agent may do (the action mask) and what it sees (the observation).

Both read the state only through gathers on the padded cell grid, so the partial window costs
one gather per agent rather than a Python loop.
"""

from __future__ import annotations

import math

import torch

from townlet_env.core.level import BLOCKED, EMPTY, HOURS_PER_DAY, CompiledLevel
from townlet_env.core.state import TownState


def cell_index(level: CompiledLevel, state: TownState, dx: int = 0, dy: int = 0) -> torch.Tensor:
    """[N] flat index into `state.cells` of each agent's cell (shifted by dx, dy)."""
    wp = level.width + 2 * level.pad
    hp = level.height + 2 * level.pad
    x = state.position[:, 0] + (level.pad + dx)
    y = state.position[:, 1] + (level.pad + dy)
    return state.town * (hp * wp) + y * wp + x


def affordance_at(level: CompiledLevel, state: TownState) -> torch.Tensor:
    """[N] index of the affordance under each agent, -1 where there is none."""
    return state.cells.view(-1)[cell_index(level, state)].long()


def hour_of_day(state: TownState) -> torch.Tensor:
    """[N] hour (0-23) of each slot's town clock."""
    return (state.clock % HOURS_PER_DAY)[state.town]


def action_mask(level: CompiledLevel, state: TownState, aff: torch.Tensor | None = None) -> torch.Tensor:
    """[N, n_actions] bool: which actions each agent may take now."""
    n = state.num_slots
    aff = affordance_at(level, state) if aff is None else aff
    mask = torch.ones(n, level.n_actions, dtype=torch.bool, device=state.meters.device)
    if level.move_actions.numel():
        wp = level.width + 2 * level.pad
        deltas = level.move_delta[level.move_actions]
        offsets = deltas[:, 1] * wp + deltas[:, 0]
        targets = cell_index(level, state)[:, None] + offsets[None, :]
        mask[:, level.move_actions] = state.cells.view(-1)[targets] != BLOCKED
    if level.interact_action >= 0:
        mask[:, level.interact_action] = can_interact(level, state, aff)
    dead_row = torch.zeros(level.n_actions, dtype=torch.bool, device=mask.device)
    dead_row[level.wait_action] = True
    return torch.where(state.alive[:, None], mask, dead_row)


def can_interact(level: CompiledLevel, state: TownState, aff: torch.Tensor) -> torch.Tensor:
    """On an affordance that is open, affordable and not taken by another agent of the town."""
    a = aff.clamp(min=0)
    ok = (aff >= 0) & (state.meters >= level.aff_required[a]).all(dim=1)
    if level.day_cycle:
        ok &= level.aff_open[a, hour_of_day(state)]
    if state.agents_per_town > 1:
        ok &= ~taken_by_other(level, state, aff)
    return ok


def taken_by_other(level: CompiledLevel, state: TownState, aff: torch.Tensor) -> torch.Tensor:
    """[N] True where another agent has priority on the affordance underfoot (capacity 1).

    Priority goes to an agent already part-way through a use, then to the lowest slot; that is
    also how contention inside one tick resolves, since only the holder may INTERACT.
    """
    k = state.agents_per_town
    n_aff = level.n_affordances
    slot_in_town = torch.arange(state.num_slots, device=aff.device) % k
    key = slot_in_town - k * (state.progress > 0).long()
    present = (aff >= 0) & state.alive
    bucket = torch.where(present, state.town * n_aff + aff, state.num_towns * n_aff)
    best = torch.full((state.num_towns * n_aff + 1,), k, dtype=torch.long, device=aff.device)
    best = best.scatter_reduce(0, bucket, key, reduce="amin")
    return present & (best[bucket] != key)


def observe(level: CompiledLevel, state: TownState, aff: torch.Tensor | None = None) -> torch.Tensor:
    """[N, obs_dim] float32 observation of the current state (see `level.layout`)."""
    layout = level.layout
    n = state.num_slots
    dev = state.meters.device
    obs = torch.zeros(n, layout.size, dtype=torch.float32, device=dev)
    obs[:, layout["meters"].slice] = state.meters
    if level.day_cycle:
        angle = hour_of_day(state).float() * (2 * math.pi / HOURS_PER_DAY)
        obs[:, layout["time"].slice] = torch.stack([angle.sin(), angle.cos()], dim=1)
    if level.multi_tick:
        aff = affordance_at(level, state) if aff is None else aff
        ticks = level.aff_ticks[aff.clamp(min=0)]
        progress = torch.where(aff >= 0, state.progress.float() / ticks, 0.0)
        obs[:, layout["interaction_progress"].offset] = progress
    obs[:, layout["episode_progress"].offset] = state.clock[state.town].float() / level.max_steps
    scale = torch.tensor([max(level.width - 1, 1), max(level.height - 1, 1)], dtype=torch.float32, device=dev)
    obs[:, layout["position"].slice] = state.position.float() / scale
    if layout.encoding == "full":
        _full_view(level, state, obs, scale)
    else:
        _partial_view(level, state, obs)
    return obs


def _full_view(level: CompiledLevel, state: TownState, obs: torch.Tensor, scale: torch.Tensor) -> None:
    layout = level.layout
    n = state.num_slots
    field = obs[:, layout["affordances"].slice].view(n, len(layout.channels), 3)
    offsets = (state.affordance_position[state.town] - state.position[:, None, :]).float() / scale
    channels = slice(0, level.n_affordances) if level.channels_in_order else level.aff_channel
    field[:, channels, 0:2] = offsets
    field[:, channels, 2] = 1.0
    k = state.agents_per_town
    if layout.other_agents and k > 1:
        others = _other_slots(k, layout.other_agents, state.meters.device)  # [K, O]
        t = state.num_towns
        pos = state.position.view(t, k, 2)
        alive = state.alive.view(t, k)
        rel = (pos[:, others] - pos[:, :, None, :]).float() / scale  # [T, K, O, 2]
        seen = alive[:, others] & alive[:, :, None]  # [T, K, O]
        agents = obs[:, layout["agents"].slice].view(t, k, layout.other_agents, 3)
        width = others.shape[1]
        agents[:, :, :width, 0:2] = rel * seen[..., None]
        agents[:, :, :width, 2] = seen.float()


def _other_slots(k: int, limit: int, device: torch.device) -> torch.Tensor:
    """[K, min(K - 1, limit)]: for each slot of a town, the other slots in slot order."""
    rows = [[j for j in range(k) if j != i][:limit] for i in range(k)]
    return torch.tensor(rows, dtype=torch.long, device=device)


def _partial_view(level: CompiledLevel, state: TownState, obs: torch.Tensor) -> None:
    layout = level.layout
    n = state.num_slots
    w = layout.window
    r = w // 2
    n_ch = len(layout.channels)
    wp = level.width + 2 * level.pad
    dev = state.meters.device
    dy, dx = torch.meshgrid(
        torch.arange(-r, r + 1, device=dev), torch.arange(-r, r + 1, device=dev), indexing="ij"
    )
    index = cell_index(level, state)[:, None] + (dy * wp + dx).flatten()[None, :]  # [N, w*w]
    codes = state.cells.view(-1)[index].long()
    # code -> channel: BLOCKED -> n_ch, affordance -> its channel; EMPTY writes a 0 into channel 0,
    # which leaves that (all-zero) cell unchanged, so every cell takes one scatter.
    lookup = torch.cat([torch.tensor([n_ch, 0], device=dev), level.aff_channel])
    cells = obs[:, layout["window"].slice].view(n, w * w, n_ch + 2)
    cells.scatter_(2, lookup[codes + 2].unsqueeze(2), (codes != EMPTY).float().unsqueeze(2))
    if state.agents_per_town > 1:
        occupied = torch.zeros(state.cells.numel(), dtype=torch.float32, device=dev)
        own = cell_index(level, state)
        occupied.index_add_(0, own, state.alive.float())
        seen = occupied[index]
        seen[:, (w * w) // 2] -= state.alive.float()  # not oneself
        cells[:, :, n_ch + 1] = (seen > 0).float() * state.alive[:, None]

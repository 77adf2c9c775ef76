"""What an agent may do (the action mask) and what it sees (the observation).

Both read the state only through gathers on the padded cell grid, so the partial window costs
one gather per agent rather than a Python loop.
"""

from __future__ import annotations

import torch

from townlet_env.core.economy import Market, market
from townlet_env.core.level import BLOCKED, EMPTY, HOURS_PER_DAY, CompiledLevel
from townlet_env.core.observe_economy import economy_view
from townlet_env.core.observe_social import social_view
from townlet_env.core.pairs import Pairs
from townlet_env.core.state import TownState


def cell_index(level: CompiledLevel, state: TownState, dx: int = 0, dy: int = 0) -> torch.Tensor:
    """[N] flat index into `state.cells` of each agent's cell (shifted by dx, dy)."""
    wp = level.width + 2 * level.pad
    hp = level.height + 2 * level.pad
    # (x + pad + dx) + (y + pad + dy) * wp + town * hp * wp; with one town the last term is 0,
    # and skipping it saves two [N] operations on every call
    index = state.position[:, 0] + state.position[:, 1] * wp + ((level.pad + dy) * wp + level.pad + dx)
    if state.num_towns == 1:
        return index
    return index + state.town * (hp * wp)


def affordance_at(level: CompiledLevel, state: TownState) -> torch.Tensor:
    """[N] index of the affordance under each agent, -1 where there is none."""
    return state.cells.view(-1).index_select(0, cell_index(level, state)).long()


def hour_of_day(state: TownState) -> torch.Tensor:
    """[N] hour (0-23) of each slot's town clock."""
    return state.per_slot(state.clock % HOURS_PER_DAY)


def pairs_of(level: CompiledLevel, state: TownState, aff: torch.Tensor, pairs: Pairs | None) -> Pairs:
    """`pairs` when it is the `Pairs` of `state`, else new ones."""
    return pairs if pairs is not None and pairs.state is state else Pairs(state, aff, level.max_steps)


def market_of(level: CompiledLevel, pairs: Pairs) -> Market:
    """On an economy level, the `Market` of `pairs.state`, computed once and kept with its pairs
    (shared by the mask, the observation and the tick)."""
    assert level.economy is not None
    found = pairs.__dict__.get("market")
    if found is None:
        found = pairs.__dict__["market"] = market(level.economy, pairs.state, pairs.aff)
    return found


def action_mask(
    level: CompiledLevel, state: TownState, aff: torch.Tensor | None = None, pairs: Pairs | None = None
) -> torch.Tensor:
    """[N, n_actions] bool: which actions each agent may take now. On a social level `pairs` may
    pass in the `Pairs` of `state`, shared with `observe`."""
    n = state.num_slots
    aff = affordance_at(level, state) if aff is None else aff
    mask = torch.ones(n, level.n_actions, dtype=torch.bool, device=state.meters.device)
    if level.move_actions.numel():
        targets = cell_index(level, state)[:, None] + level.move_cell_offset
        mask[:, level.move_columns] = torch.take(state.cells, targets) != BLOCKED
    if level.interact_action >= 0:
        prices = None if level.economy is None else market_of(level, pairs_of(level, state, aff, pairs))
        mask[:, level.interact_action] = can_interact(level, state, aff, prices)
    if level.social is not None:
        mask[:, level.social.chat_action] = pairs_of(level, state, aff, pairs).has_neighbour
    # an agent that is not alive may only WAIT: two in-place operations, several times cheaper
    # than a torch.where over the whole mask
    mask &= state.alive[:, None]
    mask[:, level.wait_action] |= ~state.alive
    return mask


def can_interact(
    level: CompiledLevel, state: TownState, aff: torch.Tensor, prices: Market | None = None
) -> torch.Tensor:
    """On an affordance that is open, affordable and not taken by another agent of the town; on
    a social level a taken affordance may be queued for, so INTERACT stays legal there. On an
    economy level (`prices`) the price multiplier scales what a use needs, and an outage closes."""
    a = aff.clamp(min=0)
    required = level.aff_required.index_select(0, a)
    if prices is not None:
        required = required * prices.price_here[:, None]
    ok = (aff >= 0) & (state.meters >= required).all(dim=1)
    if prices is not None:
        ok &= ~prices.closed_here
    if level.day_cycle:
        ok &= level.aff_open[a, hour_of_day(state)]
    if state.agents_per_town > 1 and level.social is None:
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


def observe(
    level: CompiledLevel,
    state: TownState,
    aff: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    pairs: Pairs | None = None,
) -> torch.Tensor:
    """[N, obs_dim] float32 observation of the current state (see `level.layout`).

    With `out`, the observation is written into that buffer and returned. Only the fields this
    level can change are written, so `out` must hold zeros, or an observation that this
    function wrote for the same level: the fields a level never fills (the window on a
    full-view level, the clock without a day cycle) stay as they are. That is what lets a
    caller reuse one buffer without clearing hundreds of floats per slot every step. On a social
    level `pairs` may pass in the `Pairs` of `state`, shared with `action_mask`.
    """
    layout = level.layout
    n = state.num_slots
    dev = state.meters.device
    if out is None:
        obs = torch.zeros(n, layout.size, dtype=torch.float32, device=dev)
    else:
        if out.shape != (n, layout.size) or out.dtype != torch.float32:
            raise ValueError(f"out must be a float32 tensor of shape ({n}, {layout.size}), got {out.shape}")
        obs = out
        if layout.encoding == "partial":
            obs[:, layout["window"].slice] = 0.0  # the window is scattered into, not overwritten
    obs[:, layout["meters"].slice] = state.meters
    if level.day_cycle:
        obs[:, layout["time"].slice] = level.hour_features.index_select(0, hour_of_day(state))
    aff = affordance_at(level, state) if aff is None else aff
    underfoot = obs[:, layout["underfoot"].slice]
    if out is not None:
        underfoot.zero_()
    # no affordance (-1) maps to channel 0 with the value 0, which leaves the zero row as it is
    underfoot.scatter_(1, level.code_channel.take(aff + 2)[:, None], (aff >= 0).float()[:, None])
    if level.multi_tick:
        ticks = level.aff_ticks.index_select(0, aff.clamp(min=0))
        progress = torch.where(aff >= 0, state.progress.float() / ticks, 0.0)
        obs[:, layout["interaction_progress"].offset] = progress
    obs[:, layout["episode_progress"].offset] = state.per_slot(state.clock).float() / level.max_steps
    scale = level.position_scale
    obs[:, layout["position"].slice] = state.position.float() / scale
    if layout.encoding == "full":
        _full_view(level, state, obs, scale)
    else:
        _partial_view(level, state, obs)
    if level.social is not None:
        pairs = pairs_of(level, state, aff, pairs)
        social_view(level, pairs, obs)
        if level.economy is not None:
            economy_view(level, pairs, market_of(level, pairs), obs)
    return obs


def _full_view(level: CompiledLevel, state: TownState, obs: torch.Tensor, scale: torch.Tensor) -> None:
    layout = level.layout
    n = state.num_slots
    field = obs[:, layout["affordances"].slice].view(n, 3, len(layout.channels))
    k = state.agents_per_town
    targets = state.per_slot(state.affordance_position)  # [N, A, 2]
    if level.channels_in_order:  # each row straight into the observation
        a = level.n_affordances
        # int16 like the layout (grids are at most 64 wide): an int64 difference written into
        # a float32 row goes through a temporary and costs a third more
        position = state.position.to(targets.dtype)
        for axis in (0, 1):
            torch.div(targets[:, :, axis] - position[:, axis, None], scale[axis], out=field[:, axis, :a])
        field[:, 2, :a] = 1.0
    else:
        offsets = (targets - state.position[:, None, :]).float() / scale  # [N, A, 2]
        field[:, 0:2, level.aff_channel] = offsets.transpose(1, 2)
        field[:, 2, level.aff_channel] = 1.0
    if layout.other_agents and k > 1:
        others = _other_slots(k, layout.other_agents, state.meters.device)  # [K, O]
        t = state.num_towns
        pos = state.position.view(t, k, 2)
        alive = state.alive.view(t, k)
        rel = (pos[:, others] - pos[:, :, None, :]).float() / scale  # [T, K, O, 2]
        seen = alive[:, others] & alive[:, :, None]  # [T, K, O]
        agents = obs[:, layout["agents"].slice].view(t, k, 3, layout.other_agents)
        width = others.shape[1]
        agents[:, :, 0:2, :width] = (rel * seen[..., None]).transpose(2, 3)
        agents[:, :, 2, :width] = seen.float()


def _other_slots(k: int, limit: int, device: torch.device) -> torch.Tensor:
    """[K, min(K - 1, limit)]: for each slot of a town, the other slots in slot order."""
    rows = [[j for j in range(k) if j != i][:limit] for i in range(k)]
    return torch.tensor(rows, dtype=torch.long, device=device)


def _partial_view(level: CompiledLevel, state: TownState, obs: torch.Tensor) -> None:
    layout = level.layout
    n = state.num_slots
    w = layout.window
    n_ch = len(layout.channels)
    dev = state.meters.device
    index = cell_index(level, state)[:, None] + level.window_offset  # [N, w*w]
    codes = torch.take(state.cells, index).long()
    # code -> channel: BLOCKED -> n_ch, affordance -> its channel; EMPTY writes a 0 into channel 0,
    # which leaves that (all-zero) cell unchanged, so every cell takes one scatter.
    channel = torch.take(level.code_channel, codes + 2)
    cells = obs[:, layout["window"].slice].view(n, w * w, n_ch + 2)
    cells.scatter_(2, channel.unsqueeze(2), (codes != EMPTY).float().unsqueeze(2))
    if state.agents_per_town > 1:
        occupied = torch.zeros(state.cells.numel(), dtype=torch.float32, device=dev)
        own = cell_index(level, state)
        occupied.index_add_(0, own, state.alive.float())
        seen = occupied[index]
        seen[:, (w * w) // 2] -= state.alive.float()  # not oneself
        cells[:, :, n_ch + 1] = (seen > 0).float() * state.alive[:, None]

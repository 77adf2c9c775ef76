"""Randomness lives here: new towns, newcomers, and the vector env's autoreset.

All draws come from one `torch.Generator`, so a seed fixes every layout and birth cell.
Towns are regenerated only where asked (indices, not a Python loop over towns), and a
regenerated town gets a new layout, fresh agents and clock 0.
"""

from __future__ import annotations

import torch

from townlet_env.core import lifecycle
from townlet_env.core.economy import WORK_COLUMNS
from townlet_env.core.level import BLOCKED, EMPTY, CompiledLevel
from townlet_env.core.social import SocialTables, draw_traits, forget
from townlet_env.core.state import POSITION_DTYPE, TownState


def check_room(level: CompiledLevel, agents_per_town: int) -> None:
    """A town must hold every affordance and every agent on distinct free cells."""
    if level.free_cells.numel() < level.n_affordances + agents_per_town:
        raise ValueError(
            f"level '{level.name}' has {level.free_cells.numel()} free cells, too few for "
            f"{level.n_affordances} affordances and agents_per_town={agents_per_town}"
        )


def initial_state(
    level: CompiledLevel,
    num_towns: int,
    agents_per_town: int,
    generator: torch.Generator,
    difficulty: torch.Tensor | None = None,
) -> TownState:
    dev = level.device
    check_room(level, agents_per_town)
    n = num_towns * agents_per_town
    p = level.pad
    k_ties = agents_per_town if level.social is not None else 0
    n_traits = 3 if level.social is not None else 0
    econ = level.economy
    n_work, n_events = (WORK_COLUMNS, econ.n_events) if econ is not None else (0, 0)
    cells = torch.full(
        (num_towns, level.height + 2 * p, level.width + 2 * p), BLOCKED, dtype=torch.int8, device=dev
    )
    blank = TownState(
        meters=level.initial_meters.expand(n, -1).clone(),
        position=torch.zeros(n, 2, dtype=torch.long, device=dev),
        alive=torch.ones(n, dtype=torch.bool, device=dev),
        progress=torch.zeros(n, dtype=torch.long, device=dev),
        life_steps=torch.zeros(n, dtype=torch.long, device=dev),
        difficulty=torch.ones(n, dtype=torch.float32, device=dev) if difficulty is None else difficulty,
        clock=torch.zeros(num_towns, dtype=torch.long, device=dev),
        affordance_position=torch.zeros(num_towns, level.n_affordances, 2, dtype=POSITION_DTYPE, device=dev),
        cells=cells,
        trust=torch.zeros(n, k_ties, device=dev),
        familiarity=torch.zeros(n, k_ties, device=dev),
        rivalry=torch.zeros(n, k_ties, device=dev),
        personality=torch.zeros(n, n_traits, device=dev),
        queue_key=torch.full((n,), -1, dtype=torch.long, device=dev),
        stall=torch.zeros(n, dtype=torch.long, device=dev),
        work=torch.zeros(n, n_work, dtype=torch.long, device=dev),
        ledger=torch.zeros(n, 1 if econ is not None else 0, device=dev),
        event_clock=torch.zeros(num_towns, n_events, 2, dtype=torch.long, device=dev),
        event_value=torch.ones(num_towns, n_events, device=dev),
    )
    return regenerate(level, blank, torch.arange(num_towns, device=dev), generator)


def draw_grid(level: CompiledLevel, affordance_xy: torch.Tensor) -> torch.Tensor:
    """[R, H, W] int8 cell codes of R towns (no padding): walls BLOCKED, each affordance's index
    on its cell, EMPTY elsewhere. `affordance_xy` is [R, A, 2] (x, y)."""
    towns = affordance_xy.shape[0]
    inner = torch.full((level.height, level.width), EMPTY, dtype=torch.int8, device=level.device)
    inner[level.walls] = BLOCKED
    grid = inner.expand(towns, -1, -1).clone()
    rows = torch.arange(towns, device=level.device)[:, None]
    xy = affordance_xy.long()
    grid[rows, xy[..., 1], xy[..., 0]] = torch.arange(
        level.n_affordances, dtype=torch.int8, device=level.device
    )
    return grid


def regenerate(
    level: CompiledLevel, state: TownState, towns: torch.Tensor, generator: torch.Generator
) -> TownState:
    """New layout, fresh agents and clock 0 for the given town indices."""
    if towns.numel() == 0:
        return state
    k = state.agents_per_town
    n_aff = level.n_affordances
    # A uniformly random permutation of the free cells per town; the first picks are distinct.
    scores = torch.rand(towns.numel(), level.free_cells.numel(), generator=generator, device=level.device)
    picks = level.free_cells[scores.argsort(dim=1)[:, : n_aff + k]]  # [R, A + K]
    xy = torch.stack([picks % level.width, picks // level.width], dim=2)  # [R, A + K, 2]

    aff_pos = state.affordance_position.clone()
    aff_pos[towns] = xy[:, :n_aff].to(POSITION_DTYPE)
    cells = state.cells.clone()
    p = level.pad
    cells[towns, p : p + level.height, p : p + level.width] = draw_grid(level, xy[:, :n_aff])

    slots = state.slots_of(towns)
    state = _fresh_agents(level, state, slots, xy[:, n_aff:].reshape(-1, 2), generator).replace(
        affordance_position=aff_pos,
        cells=cells,
        clock=state.clock.index_fill(0, towns, 0),
    )
    if level.economy is not None:  # no events yet, and no more agents than the cap
        state = state.replace(
            event_clock=state.event_clock.index_fill(0, towns, 0),
            event_value=state.event_value.index_fill(0, towns, 1.0),
        )
        state = lifecycle.cap_population(level.economy, state, towns)
    return state


def respawn(
    level: CompiledLevel, state: TownState, slots: torch.Tensor, generator: torch.Generator
) -> TownState:
    """Newcomers in the given slots, each on a free cell of its town (no wall, affordance or
    living agent), never two on one cell."""
    if slots.numel() == 0:
        return state
    k = state.agents_per_town
    slots = slots.sort().values  # slots of one town are then adjacent
    towns, inverse, counts = torch.unique_consecutive(
        state.town[slots], return_inverse=True, return_counts=True
    )
    # rank of each newcomer among its town's newcomers, so that they take distinct picks
    rank = torch.arange(slots.numel(), device=slots.device) - (counts.cumsum(0) - counts)[inverse]

    w, h, p = level.width, level.height, level.pad
    free = state.cells[towns, p : p + h, p : p + w].reshape(towns.numel(), -1) == EMPTY
    living = state.alive.view(-1, k)[towns]  # [U, K]
    pos = state.position.view(-1, k, 2)[towns]
    occupied_cell = pos[..., 1] * w + pos[..., 0]
    # Counted, not scattered: agents may share a cell, and with scatter_ a dead agent's False
    # could overwrite a living one's True on that cell.
    occupied = torch.zeros(free.shape, dtype=torch.long, device=free.device)
    occupied.scatter_add_(1, occupied_cell, living.long())
    free &= occupied == 0
    scores = torch.rand(free.shape, generator=generator, device=level.device)
    scores = torch.where(free, scores, -1.0)
    picks = scores.topk(k, dim=1).indices[inverse, rank]  # [S]
    xy = torch.stack([picks % w, picks // w], dim=1)
    return _fresh_agents(level, state, slots, xy, generator)


def _fresh_agents(
    level: CompiledLevel, state: TownState, slots: torch.Tensor, xy: torch.Tensor, generator: torch.Generator
) -> TownState:
    meters = state.meters.clone()
    meters[slots] = level.initial_meters
    position = state.position.clone()
    position[slots] = xy
    if level.social is not None:
        # drawn after the layout and birth cells, so those stay what they were without traits
        state = _newcomers_social(level.social, state, slots, generator)
    if level.economy is not None:  # drawn after the traits, for the same reason
        state = lifecycle.newcomers(level.economy, state, slots, xy, generator)
    return state.replace(
        meters=meters,
        position=position,
        alive=state.alive.index_fill(0, slots, True),
        progress=state.progress.index_fill(0, slots, 0),
        life_steps=state.life_steps.index_fill(0, slots, 0),
    )


def _newcomers_social(
    tables: SocialTables, state: TownState, slots: torch.Tensor, generator: torch.Generator
) -> TownState:
    """Newcomers get traits drawn from the pack's ranges, neutral ties both ways, no queue place."""
    personality = state.personality.clone()
    personality[slots] = draw_traits(tables, slots.numel(), generator)
    ties = (state.trust, state.familiarity, state.rivalry)
    trust, familiarity, rivalry = forget(ties, slots, state.agents_per_town)
    return state.replace(
        trust=trust,
        familiarity=familiarity,
        rivalry=rivalry,
        personality=personality,
        queue_key=state.queue_key.index_fill(0, slots, -1),
        stall=state.stall.index_fill(0, slots, 0),
    )


def autoreset(
    level: CompiledLevel, state: TownState, done: torch.Tensor, generator: torch.Generator
) -> TownState:
    """After a tick: regenerate towns whose agents have all ended or that reached max_steps;
    in other towns, replace each agent that died by a newcomer."""
    k = state.agents_per_town
    ended_town = (~state.alive).view(-1, k).all(dim=1) | (state.clock >= level.max_steps)
    towns = ended_town.nonzero().flatten()
    if level.economy is None:
        replace = (done & ~state.alive & ~ended_town[state.town]).nonzero().flatten()
    else:  # empty slots past the respawn delay, within the population cap
        replace = lifecycle.arrivals(level.economy, state, ended_town)
    state = regenerate(level, state, towns, generator)
    return respawn(level, state, replace, generator)

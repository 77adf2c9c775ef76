"""The SAME_STEP autoreset of `Town.step`: ended slots replaced, and what the caller sees of both
the renewed state and the tick that ended.

Only towns with an ended slot change. The renewed state and the last tick of those towns are
observed in one pass, as one batch of T + R towns (R renewed), rather than every town and then
the R again: each pass costs a few hundred small operations whatever its size, and the second
one cost a sixth of an L4 step.
"""

from __future__ import annotations

import torch

from townlet_env.core import lifecycle
from townlet_env.core.level import CompiledLevel
from townlet_env.core.observe import action_mask, affordance_at, observe
from townlet_env.core.outputs import Observation
from townlet_env.core.pairs import Pairs
from townlet_env.core.spawn import autoreset
from townlet_env.core.state import TownState


def arrivals_due(level: CompiledLevel, state: TownState) -> bool:
    """On an economy level, whether a newcomer takes an empty slot this tick although no
    slot ended (a respawn delay, or room under the population cap)."""
    tables = level.economy
    if tables is None:
        return False
    life = tables.spec.lifecycle
    if life.respawn_delay == 0 and life.population_cap >= state.agents_per_town:
        return False  # an empty slot is filled on the tick its agent leaves, a done tick
    ended = torch.zeros(state.num_towns, dtype=torch.bool, device=state.clock.device)
    return lifecycle.arrivals(tables, state, ended).numel() > 0


def renew(
    level: CompiledLevel,
    ended: TownState,
    done: torch.Tensor,
    generator: torch.Generator,
    scratch: dict[str, torch.Tensor],
    buffer: torch.Tensor | None,
) -> tuple[TownState, Observation, torch.Tensor, torch.Tensor, Pairs | None]:
    """Autoreset `ended` where `done`, then (renewed state, its observation, final_obs,
    final_mask, the renewed state's `Pairs` on a social level). `scratch` is the Town's (see
    `Pairs`); `buffer` the [2N, obs_dim] one of `Town._next_buffer`, or None."""
    n = ended.num_slots
    renewed = autoreset(level, ended, done, generator)
    towns = done.view(-1, ended.agents_per_town).any(dim=1).nonzero().flatten()
    slots = ended.slots_of(towns)
    both = renewed.followed_by(ended, towns)
    aff = affordance_at(level, both)
    pairs = None if level.social is None else Pairs(both, aff, level.max_steps, scratch)
    rows = None if buffer is None else buffer[: both.num_slots]
    seen = observe(level, both, aff, out=rows, pairs=pairs)
    mask = action_mask(level, both, aff, pairs)
    final_mask = mask[:n].clone()
    final_mask.index_copy_(0, slots, mask[n:])
    if buffer is None:
        obs, final_obs = seen[:n].clone(), seen[:n]
        final_obs.index_copy_(0, slots, seen[n:])
    else:  # final_obs is the buffer's second half, where the ended towns' rows were written
        obs, final_obs = seen[:n], buffer[n:]
        final_obs.index_copy_(0, slots, seen[n:].clone())
    kept = None if pairs is None else pairs.head(renewed, aff[:n])
    return renewed, Observation(obs, mask[:n], aff[:n]), final_obs, final_mask, kept

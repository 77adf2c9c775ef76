"""The scalar engine's interface over the tensor core, for a level it cannot replay exactly.

`Town(..., scalar=True)` on such a level (see `scalar_base.unsupported`) says so in one line
and steps with the tensor core; the adapters still read `engine` and call `step_scalar`, and
get the same numbers the engine would give, only as slowly as before.
"""

from __future__ import annotations

import warnings

import numpy as np

from townlet_env.core.level import CompiledLevel
from townlet_env.core.outputs import Observation, StepOutput
from townlet_env.core.scalar import ScalarTown, unsupported
from townlet_env.core.scalar_base import ScalarResult
from townlet_env.core.state import TownState


def scalar_engine(level: CompiledLevel) -> ScalarTown | None:
    """The scalar engine of `level`, or None (with a warning that says why) where it cannot
    replay the tensor core exactly."""
    reason = unsupported(level)
    if reason is None:
        return ScalarTown(level)
    warnings.warn(
        f"level '{level.name}': {reason}, which the scalar engine cannot replay "
        "exactly; stepping it with the tensor core (slower, same results)",
        stacklevel=3,  # the caller of Town(...)
    )
    return None


class TensorReadout:
    """What adapters read from `Town.engine`, taken from a state and its observation."""

    def __init__(self, state: TownState, now: Observation) -> None:
        self.state, self.now = state, now
        self.k = state.num_slots
        self.meters = state.meters.tolist()
        position = state.position.tolist()
        self.x, self.y = [p[0] for p in position], [p[1] for p in position]
        self.alive = state.alive.tolist()
        self.life_steps = state.life_steps.tolist()
        self.clock = int(state.clock[0])
        self.events = (state.clock[:, None] < state.event_clock[..., 0])[0].tolist()

    def observe(self, out: np.ndarray) -> np.ndarray:
        out[: self.k] = self.now.obs.numpy()
        return out

    def mask(self) -> list[list[bool]]:
        return self.now.mask.tolist()

    def active_events(self) -> list[bool]:
        return self.events


def as_result(out: StepOutput) -> ScalarResult:
    """A tensor step's output in the scalar engine's lists."""
    return ScalarResult(
        out.reward.tolist(),
        out.terminated.tolist(),
        out.truncated.tolist(),
        out.invalid_action.tolist(),
        out.executed.tolist(),
        None if out.chat_partner is None else out.chat_partner.tolist(),
        None if out.chat_success is None else out.chat_success.tolist(),
        {name: value.tolist() for name, value in out.reward_terms.items()},
        {name: value.tolist() for name, value in out.economy.items()},
    )

"""The simulation core: pure functions over a `TownState` of tensors, and `Town`, which runs them.

level = compile_level("L1_full_observability")
state = initial_state(level, num_towns=64, agents_per_town=1, generator=torch.Generator())
state, result = step(level, state, actions)       # one tick, no randomness
obs, mask = observe(level, state), action_mask(level, state)
state = autoreset(level, state, result.terminated | result.truncated, generator)

town = Town(level, num_slots=64)                  # or all of the above, sequenced once
out = town.step(actions)
"""

from townlet_env.core.dynamics import StepResult, reward_of, step
from townlet_env.core.layout import Field, ObservationLayout
from townlet_env.core.level import CompiledLevel, compile_level
from townlet_env.core.memory import MemoryBudgetError
from townlet_env.core.observe import action_mask, affordance_at, hour_of_day, observe
from townlet_env.core.snapshot import StateMismatchError
from townlet_env.core.spawn import autoreset, initial_state, regenerate, respawn
from townlet_env.core.state import TownState
from townlet_env.core.town import Observation, StepOutput, Town, TownView

__all__ = [
    "CompiledLevel",
    "Field",
    "MemoryBudgetError",
    "Observation",
    "ObservationLayout",
    "StateMismatchError",
    "StepOutput",
    "StepResult",
    "Town",
    "TownState",
    "TownView",
    "action_mask",
    "affordance_at",
    "autoreset",
    "compile_level",
    "hour_of_day",
    "initial_state",
    "observe",
    "regenerate",
    "respawn",
    "reward_of",
    "step",
]

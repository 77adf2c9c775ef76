"""One policy protocol for every way of choosing actions: learned, scripted and random.

    state = policy.initial_state(n, device)
    action, state = policy.act(obs, mask, state)
    state = policy.reset(state, done)        # rows of ended slots start afresh

`state` is whatever the policy carries between steps (a recurrent network's memory, None
otherwise). It lives in townlet_env so that recording, the observer and townlet-train's learners,
evaluation and teacher all speak the same one without the env importing the trainer.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from townlet_env.core import Town
from townlet_env.policies.scripted import ScriptedPolicy


class Policy(Protocol):
    def initial_state(self, n: int, device: torch.device) -> Any: ...

    def act(self, obs: torch.Tensor, mask: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...

    def reset(self, state: Any, done: torch.Tensor) -> Any: ...


class Stateless:
    """The protocol's memory half for a policy that carries nothing between steps."""

    def initial_state(self, n: int, device: torch.device) -> Any:
        return None

    def reset(self, state: Any, done: torch.Tensor) -> Any:
        return state


class ScriptedAgent(Stateless):
    """The scripted baseline; it reads the town's true state, so it must wrap the env's own town."""

    def __init__(self, town: Town):
        self.scripted = ScriptedPolicy(town)

    def act(self, obs: torch.Tensor, mask: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self.scripted(obs, {"action_mask": mask}), state


class RandomPolicy(Stateless):
    """Uniform over the legal actions."""

    def __init__(self, rng: torch.Generator):
        self.rng = rng

    def act(self, obs: torch.Tensor, mask: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        noise = torch.rand(mask.shape, generator=self.rng, device=mask.device)
        return noise.masked_fill(~mask, -1).argmax(1), state

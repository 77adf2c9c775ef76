"""What the run's loop asks of a learner (DQN, PPO, DAgger), and what it gives each one.

    action, entropy = learner.act(obs, info, agent_steps, rng)   # through its carried model
    learner.store(transition)                                   # data/collector.py's dict
    stats = learner.learn(context)      # when due, some `update(batch, model) -> stats` calls

`explore(agent_steps)` is the per-slot epsilon of epsilon-greedy acting (0 where a learner does
not act so), `schedule(agent_steps)` the exploration figures a learner reports (epsilon,
DAgger's beta); `replay` is the buffer `checkpoint.include_replay` saves (None for PPO, whose
rollout every checkpoint holds); `debt` the fraction of an update owed (see replay_ratio).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from townlet_train.models import Model


class Diverged(ValueError):
    """A learner met NaN or inf where it acts or learns; the loop stops the run (`DivergedError`)."""


@dataclass
class LearnContext:
    agent_steps: int
    run_left: float  # fraction of total_steps still to run: a linear anneal's weight
    rng: torch.Generator  # the run's stream: every sample a learner draws comes from it
    rnd: Any  # exploration.RND or None: the novelty predictor, learned on what was learned from
    obs: torch.Tensor  # what every slot acts on next (PPO bootstraps its rollout from it)


class Learner(Protocol):
    updates: int
    debt: float
    replay: Any

    @property
    def online(self) -> Model: ...

    def act(
        self, obs: torch.Tensor, info: dict[str, Any], agent_steps: int, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def store(self, step: dict[str, torch.Tensor]) -> None: ...

    def learn(self, ctx: LearnContext) -> dict[str, float]: ...

    def explore(self, agent_steps: int) -> torch.Tensor: ...

    def schedule(self, agent_steps: int) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

"""DAgger with the map student (`network.kind: map`, `networks.MapStudent`): the student acts
on observations its map has filled, stores them with the teacher's labels and learns from them
like the feed-forward student; with `teacher_knows: student_map` the teacher reads the same map
(`map_memory.MapMemory.knowledge`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from townlet_train.config import DaggerSettings
from townlet_train.imitation import DaggerAgent, DaggerTrainer, clone_step
from townlet_train.networks import MapStudent
from townlet_train.sequences import restored, zero_ended


class MapDaggerAgent(DaggerAgent):
    """DAgger's student with a map: it stores the filled observations it acted on, so learning
    is the feed-forward student's."""

    def __init__(self, network: MapStudent, settings: DaggerSettings, num_envs: int, n_actions: int):
        super().__init__(network.policy, settings, network.inputs, n_actions)
        self.student = network
        self.online = network  # type: ignore[assignment]  # checkpoints hold the whole student
        device = next(network.parameters()).device
        self.state = network.initial_state(num_envs, device)
        self.inputs = torch.zeros(num_envs, network.inputs, device=device)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.inputs, self.state = self.student.memory.step(obs, self.state)
            return self.student.policy(self.inputs)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        assert self.labels is not None, "act() labels each state before it is stored"
        self.replay.add(self.inputs, step["mask"], self.labels)
        self.state = zero_ended(self.state, step["done"])  # a new life starts from nothing

    def update(self, batch_size: int, rng: torch.Generator) -> dict[str, float]:
        batch = self.replay.sample(batch_size, rng)
        stats = clone_step(self.student.policy, self.optimizer, batch, self.settings.grad_clip)
        self.updates += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "actor_state": list(self.state)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.state = restored(state["actor_state"])


class MapDaggerTrainer(DaggerTrainer):
    """DAgger's acting and labelling with the map student (`network.kind: map`)."""

    def _student(self, network: nn.Module) -> MapDaggerAgent:
        assert isinstance(network, MapStudent)
        level = self.env.level
        if level.layout.encoding != "partial":
            raise ValueError(
                f"network.kind 'map' maps a partial view (levels L2_partial_observability, "
                f"L3_temporal_mechanics); level '{level.name}' shows the whole town: use mlp"
            )
        return MapDaggerAgent(network, self.settings, self.cfg.env.num_envs, self.n_actions)

    def label(self) -> torch.Tensor:
        if self.settings.teacher_knows == "town":
            return super().label()
        agent: MapDaggerAgent = self.agent  # type: ignore[assignment]
        memory = agent.student.memory
        knowledge = memory.knowledge(self.obs, agent.state, self.env.level.aff_channel)
        return self.teacher(self.obs, self.info, knowledge)

"""One learned policy: a model plus a selector, in townlet_env's policy protocol
(`townlet_env.policies.Policy`, which the scripted and random policies also speak):

    state = policy.initial_state(n, device)
    action, state = policy.act(obs, mask, state)
    state = policy.reset(state, done)        # rows of ended slots start afresh

`state` is the model's memory state (`models.Memory`; an empty tuple without memory). The
selector turns the model's outputs into actions: `greedy` (evaluation, recording, the observer),
`Sample` (a policy network's masked softmax). The learners (algos/) act through `Carried`, the same model
step with the state held for them (they also need the outputs: Q-values, logits, the memory's
output), and choose with their own selectors: epsilon-greedy (exploration.py), PPO's sample
with its log-probability, DAgger's beta-mix with the teacher. `load_policy(path)` builds the
policy of any checkpoint (its config records the algorithm).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from townlet_env import TownletVectorEnv
from townlet_train.config import TrainConfig
from townlet_train.models import (
    Model,
    State,
    build_network,
    field_shapes,
    masked_argmax,
    masked_logits,
    reset_ended,
    restored,
)
from townlet_train.run.checkpoint import CheckpointError, load_checkpoint

Selector = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs [N, A], mask) -> actions


def masked_sample(logits: torch.Tensor, mask: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """One action per row from the masked softmax; an illegal action has probability 0."""
    probs = torch.softmax(masked_logits(logits, mask), dim=-1)
    return torch.multinomial(probs, 1, generator=rng).squeeze(1)


def greedy(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The best legal action: Q-values (DQN) or logits (PPO, BC, DAgger)."""
    return masked_argmax(out, mask)


class Sample:
    """A draw from the masked softmax of a policy network's logits."""

    def __init__(self, rng: torch.Generator | None = None):
        self.rng = rng

    def __call__(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_sample(out, mask, self.rng)


class ModelPolicy:
    """A model and a selector; a recurrent model's state is carried and zeroed for ended slots."""

    def __init__(self, model: Model, select: Selector = greedy):
        self.network, self.select = model, select

    @property
    def sampled(self) -> bool:
        return isinstance(self.select, Sample)

    def initial_state(self, n: int, device: torch.device) -> State:
        return self.network.initial_state(n, device)

    def act(self, obs: torch.Tensor, mask: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        with torch.no_grad():
            out, _, state = self.network.step(obs, state)
        return self.select(out, mask), state

    def reset(self, state: Any, done: torch.Tensor) -> Any:
        return reset_ended(state, done)


class Carried:
    """A model acting for a learner on N slots, its memory state held here: `step` advances it
    (keeping the state the step started from, which windows store), `end` zeroes the rows of
    ended slots. Feed-forward models carry an empty state."""

    def __init__(self, model: Model, n: int, device: torch.device):
        self.model = model
        self.state = model.initial_state(n, device)
        self.before = self.state  # the state the current step's action was chosen from

    def step(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs [N, A], memory output [N, H]) of one observation per slot; advances the state."""
        self.before = self.state
        with torch.no_grad():
            out, y, self.state = self.model.step(obs, self.state)
        return out, y

    def peek(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As `step`, without advancing: observations that follow the last one acted on."""
        with torch.no_grad():
            out, y, _ = self.model.step(obs, self.state)
        return out, y

    def end(self, done: torch.Tensor) -> None:
        self.state = reset_ended(self.state, done)  # a new life starts from nothing

    def state_dict(self) -> dict[str, Any]:
        return {"actor_state": list(self.state)} if self.state else {}

    def load_state_dict(self, state: dict) -> None:
        if self.state:
            self.state = restored(state["actor_state"])


def policy_for_network(network: nn.Module) -> ModelPolicy:
    """The greedy policy of a network (recording and the observer play it)."""
    assert isinstance(network, Model), f"not a townlet_train model: {type(network).__name__}"
    return ModelPolicy(network)


def checkpoint_config(path: Path, payload: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.model_validate(payload.get("config"))
    except ValidationError as exc:
        raise CheckpointError(
            f"{path}: its training config is not valid for this trainer ({exc.error_count()} problems, "
            f"first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']})"
        ) from None


def load_network(path: Path, device: torch.device | str) -> tuple[Model, TrainConfig]:
    """The network of any checkpoint (its config says which kind); every way the file can be
    unusable is a CheckpointError."""
    payload = load_checkpoint(path)
    cfg = checkpoint_config(path, payload)
    env = TownletVectorEnv(cfg.level, 1, agents_per_town=1)
    if env.level.content_hash != payload.get("level_hash"):
        raise CheckpointError(
            f"{path}: trained on a different version of level '{cfg.level}' (level hash differs)"
        )
    net = cfg.network
    network = build_network(
        net.kind,
        env.observation_layout,
        env.level.n_actions,
        net.hidden,
        net.field_embed,
        net.lstm_hidden,
        cfg.algorithm.kind,
        field_shapes(env.level),
        (env.level.width, env.level.height),
    )
    try:
        network.load_state_dict(payload["network"])
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: network weights do not fit its config ({first})") from None
    return network.to(device).eval(), cfg


def load_policy(
    path: Path, device: torch.device | str = "cpu", sample: bool = False, rng: torch.Generator | None = None
) -> tuple[ModelPolicy, TrainConfig]:
    """The policy of a checkpoint of any algorithm: greedy, or (a policy network) sampled."""
    network, cfg = load_network(path, device)
    if sample and cfg.algorithm.kind != "dqn":
        return ModelPolicy(network, Sample(rng)), cfg
    return ModelPolicy(network), cfg

"""The learned policies (DQN, recurrent DQN, PPO, BC/DAgger students) in townlet_env's policy
protocol (`townlet_env.policies.Policy`, which the scripted and random policies also speak):

    state = policy.initial_state(n, device)
    action, state = policy.act(obs, mask, state)
    state = policy.reset(state, done)        # rows of ended slots start afresh

`state` is whatever the policy carries between steps (the LSTM's (h, c) for a recurrent one,
None otherwise). Evaluation, capture and DAgger's student all act through this protocol, and
`load_policy(path)` builds the right one from any checkpoint (the checkpoint's config records
its algorithm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from townlet_env import TownletVectorEnv
from townlet_env.policies import Policy, Stateless
from townlet_train.checkpoint import CheckpointError, load_checkpoint
from townlet_train.config import TrainConfig
from townlet_train.networks import build_network, field_shapes, masked_argmax, masked_logits
from townlet_train.sequences import zero_ended


def masked_sample(logits: torch.Tensor, mask: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """One action per row from the masked softmax; an illegal action has probability 0."""
    probs = torch.softmax(masked_logits(logits, mask), dim=-1)
    return torch.multinomial(probs, 1, generator=rng).squeeze(1)


class GreedyPolicy(Stateless):
    """The best legal action of a feed-forward network: Q-values (DQN) or logits (PPO, BC, DAgger)."""

    def __init__(self, network: nn.Module):
        self.network = network

    def act(self, obs: torch.Tensor, mask: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        with torch.no_grad():
            return masked_argmax(self.network(obs), mask), state


class SampledPolicy(Stateless):
    """A draw from the masked softmax of a policy network's logits (PPO acting as it trains)."""

    def __init__(self, network: nn.Module, rng: torch.Generator | None = None):
        self.network, self.rng = network, rng

    def act(self, obs: torch.Tensor, mask: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        with torch.no_grad():
            return masked_sample(self.network(obs), mask, self.rng), state


class RecurrentGreedyPolicy:
    """A recurrent network (DQN's Q-values, or a recurrent student's logits): the best legal
    action, carrying the LSTM state; an ended slot's state is zeroed."""

    def __init__(self, network: nn.Module):
        self.network = network

    def initial_state(self, n: int, device: torch.device) -> Any:
        return self.network.initial_state(n, device)  # type: ignore[operator]

    def act(self, obs: torch.Tensor, mask: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        with torch.no_grad():
            out, state = self.network(obs[:, None], state)
        return self.choose(out[:, 0], mask), state

    def choose(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_argmax(out, mask)

    def reset(self, state: Any, done: torch.Tensor) -> Any:
        return zero_ended(state, done)


class RecurrentSampledPolicy(RecurrentGreedyPolicy):
    """A draw from the masked softmax of a recurrent policy network's logits."""

    def __init__(self, network: nn.Module, rng: torch.Generator | None = None):
        super().__init__(network)
        self.rng = rng

    def choose(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_sample(out, mask, self.rng)


def policy_for_network(network: nn.Module) -> Policy:
    if getattr(network, "recurrent", False):
        return RecurrentGreedyPolicy(network)
    return GreedyPolicy(network)


def checkpoint_config(path: Path, payload: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.model_validate(payload.get("config"))
    except ValidationError as exc:
        raise CheckpointError(
            f"{path}: its training config is not valid for this trainer ({exc.error_count()} problems, "
            f"first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']})"
        ) from None


def load_network(path: Path, device: torch.device | str) -> tuple[nn.Module, TrainConfig]:
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
) -> tuple[Policy, TrainConfig]:
    """The policy of a checkpoint of any algorithm: greedy, or (a policy network) sampled."""
    network, cfg = load_network(path, device)
    if sample and cfg.algorithm.kind != "dqn":
        if getattr(network, "recurrent", False):
            return RecurrentSampledPolicy(network, rng), cfg
        return SampledPolicy(network, rng), cfg
    return policy_for_network(network), cfg

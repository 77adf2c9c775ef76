"""The learners: DQN (dqn.py, with dqn_windows.py for a recurrent memory), PPO (ppo.py) and
imitation (imitation.py: BC and the shared cross-entropy update; dagger.py: DAgger, whose
teacher is a labelling hook). Each acts through its carried model, stores what the collector
gives it in its own buffer (data/) and learns with `update(batch, model) -> stats`; the run's
one loop (run/loop.py) drives them all through `base.Learner`."""

from __future__ import annotations

from typing import Any

import torch

from townlet_train.algos.base import Learner
from townlet_train.config import TrainConfig
from townlet_train.models import PolicyModel, policy_network


def make_learner(cfg: TrainConfig, env: Any, device: torch.device) -> Learner:
    """The learner of a config's `algorithm.kind`, with its model built for the env's level."""
    kind = cfg.algorithm.kind
    if kind == "bc":
        raise ValueError("algorithm.kind 'bc' trains from a dataset: run `townlet-train bc --dataset DIR`")
    model = policy_network(cfg.network, env, env.level.n_actions, kind).to(device)
    if kind == "ppo":
        from townlet_train.algos.ppo import PPO

        assert isinstance(model, PolicyModel)
        return PPO(cfg, model, env, device)
    if kind == "dagger":
        from townlet_train.algos.dagger import Dagger

        return Dagger(cfg, model, env, device)
    from townlet_train.algos.dqn import DQN

    return DQN(cfg, model, env, device)

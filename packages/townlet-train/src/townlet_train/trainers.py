"""The trainer of a config's algorithm: `algorithm.kind` dqn (the default), dagger or ppo."""

from __future__ import annotations

from pathlib import Path

from townlet_train.config import TrainConfig
from townlet_train.imitation import DaggerTrainer
from townlet_train.loop import Trainer
from townlet_train.ppo import PPOTrainer


def make_trainer(cfg: TrainConfig, run_dir: Path) -> Trainer:
    if cfg.algorithm.kind == "dagger":
        return DaggerTrainer(cfg, run_dir)
    if cfg.algorithm.kind == "ppo":
        return PPOTrainer(cfg, run_dir)
    if cfg.algorithm.kind == "bc":
        raise ValueError("algorithm.kind 'bc' trains from a dataset: run `townlet-train bc --dataset DIR`")
    return Trainer(cfg, run_dir)

"""The trainer of a config: one run loop (run/loop.py) around the learner of its
`algorithm.kind` (dqn, the default, dagger or ppo; algos/)."""

from __future__ import annotations

from pathlib import Path

from townlet_train.config import TrainConfig
from townlet_train.run.loop import Trainer


def make_trainer(cfg: TrainConfig, run_dir: Path) -> Trainer:
    return Trainer(cfg, run_dir)

"""Shared setup for the trainer's tests (helpers live in helpers.py).

Torch is held to one thread: on two shared cores, OpenMP spin-waiting makes the tiny tensor ops
of these tests a hundred times slower with more.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One short training run through `townlet-train train`, shared by the metrics and CLI tests.

    L1 (all 14 affordances) with 45-tick episodes, RND on, a curriculum that moves, scalars logged
    at every update and a checkpoint every 8 episodes, so that every table and scalar gets rows.
    """
    from townlet_train import cli

    from .helpers import config_file, short_level

    base = tmp_path_factory.mktemp("cli_run")
    level = short_level(base, max_steps=45, base="L1_full_observability")
    config = config_file(
        base / "train.yaml",
        metrics__tensorboard=True,
        metrics__log_every_updates=1,
        exploration__rnd__enabled=True,
        checkpoint__every_episodes=8,
        # harsh stages, so that episodes end by starving as well as at max_steps, and move
        curriculum__stages=[3.0, 4.5],
        curriculum__window=1,
        curriculum__min_episodes=1,
        curriculum__advance_survival=0.95,
        curriculum__retreat_survival=0.85,
        curriculum__advance_entropy=100.0,
    )
    run_dir = base / "run"
    argv = [
        "train",
        "--config",
        str(config),
        "--level",
        str(level),
        "--total-steps",
        "1536",
        "--num-envs",
        "16",
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return {
        "dir": run_dir,
        "level": level,
        "code": code,
        "stdout": out.getvalue(),
        "config": config,
        "total_steps": 1536,
        "num_envs": 16,
        "max_steps": 45,
    }

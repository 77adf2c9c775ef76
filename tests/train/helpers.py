"""Helpers for the trainer's tests: tiny configs and access to the trainer's parts.

Every test here is small (tiny networks, 16 slots, a few thousand agent-steps): the suite runs
on two shared CPU cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from townlet_train.config import CONFIG_DIR, TrainConfig, load_config

# A small feed-forward run on L0_minimal; every test overrides what it is about.
TINY: dict[str, Any] = {
    "level": "L0_minimal",
    "seed": 0,
    "device": "cpu",
    "total_steps": 2048,
    "env__num_envs": 16,
    "env__agents_per_town": 1,
    "network__kind": "dueling",
    "network__hidden": [32],
    "network__field_embed": 8,
    "algorithm__batch_size": 32,
    "algorithm__learning_starts": 256,
    "algorithm__replay_ratio": 0.5,
    "algorithm__n_step": 3,
    "algorithm__target": {"kind": "hard", "every": 20},
    "algorithm__replay__kind": "uniform",
    "algorithm__replay__capacity": 2048,
    "algorithm__epsilon__decay_steps": 2000,
    "exploration__rnd__enabled": False,
    "curriculum__kind": "adversarial",
    "curriculum__window": 2,
    "curriculum__min_episodes": 2,
    "checkpoint__every_episodes": 1000,
    # saves only where a test asks for them: a wall-clock save would land anywhere
    "checkpoint__every_steps": 10**9,
    "checkpoint__every_seconds": 86_400,
    "checkpoint__keep": 100,
    "metrics__progress": False,
    "metrics__tensorboard": False,
}


# L0_minimal's default config is DAgger; most trainer tests are about the DQN machinery
DQN_BASE = CONFIG_DIR / "recipes" / "L0_minimal_dqn.yaml"


def tiny_config(**overrides: Any) -> TrainConfig:
    return load_config(DQN_BASE, **{**TINY, **overrides})


def network_of(trainer: Any) -> torch.nn.Module:
    """The online Q-network, wherever the trainer keeps it."""
    agent = getattr(trainer, "agent", None) or getattr(trainer, "learner", None)
    return agent.online


def replay_of(trainer: Any) -> Any:
    agent = getattr(trainer, "agent", None)
    return agent.replay if agent is not None else trainer.replay


def network_shapes(trainer: Any) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in network_of(trainer).state_dict().items()}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def short_level(directory: Path, max_steps: int = 120, base: str = "L0_minimal") -> Path:
    """A copy of a built-in level pack with fewer max steps (episodes end sooner)."""
    import shutil

    import yaml

    from townlet_env.config.loader import BUILTIN_DIR

    pack = directory / f"{base}_short"
    if not pack.exists():
        shutil.copytree(BUILTIN_DIR / base, pack)
        world = yaml.safe_load((pack / "world.yaml").read_text())
        world["max_steps"] = max_steps
        (pack / "world.yaml").write_text(yaml.safe_dump(world, sort_keys=False))
    return pack


def nested(settings: dict[str, Any]) -> dict[str, Any]:
    """{'env__num_envs': 8} -> {'env': {'num_envs': 8}}."""
    data: dict[str, Any] = {}
    for key, value in settings.items():
        node = data
        *parents, leaf = key.split("__")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return data


def config_file(path: Path, **overrides: Any) -> Path:
    """TINY plus overrides, written as a nested YAML training config (for the CLI)."""
    return write_yaml(path, nested({**TINY, **overrides}))


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix("step_")) for p in (run_dir / "checkpoints").glob("step_*.pt"))


def train_process(*argv: str) -> Any:
    """`townlet-train` in a child process (unbuffered, one torch thread, as in this process)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "townlet_train.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoint(process: Any, run_dir: Path, newer_than: int = -1, limit_s: float = 120.0) -> int:
    """Poll until the child has written a checkpoint past `newer_than`; its step."""
    import time

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        steps = checkpoint_steps(run_dir) if (run_dir / "checkpoints").is_dir() else []
        if steps and steps[-1] > newer_than:
            return steps[-1]
        if process.poll() is not None:
            raise AssertionError(f"the trainer exited ({process.returncode}): {process.stderr.read()}")
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"no checkpoint in {run_dir} after {limit_s} s")


def one_error(argv: list[str], capsys: Any) -> str:
    """Run `townlet-train ARGV`; it must exit 2 with exactly one `error:` line and no traceback."""
    from townlet_train import cli

    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]

"""Memory requests checked before anything is allocated.

A replay capacity or a number of slots that cannot fit used to fail deep inside torch (a 4.8 TB
allocation, a MemoryError) with a traceback, or push the machine into swap. These estimates
count what grows with `replay.capacity` and `env.num_envs`: the replay tensors exactly, and per
slot the env's and the trainer's buffers, calibrated against the peak memory of short runs (L0:
8 KB a slot; L1, feed-forward: 28 KB; L2, LSTM: 290 KB). DAgger's label ring and PPO's rollout
are counted in place of the replay. A run is refused when the total exceeds what the device has
available now; one that passes can still run out, later, and that is then reported as one line
too.
"""

from __future__ import annotations

import torch

from townlet_env.core import CompiledLevel
from townlet_env.core.memory import available_memory, format_bytes
from townlet_train.config import TrainConfig

FLOAT, LONG, BOOL = 4, 8, 1
BASE_BYTES = 512 << 20  # the interpreter, torch, the networks and the optimizer
SLOT_OVERHEAD = 8 << 10  # the small per-slot tensors of the env state, meters and counters
# Observation-sized buffers per slot besides the n-step ring: the env's two reused pairs, the
# trainer's next/final observations, and the temporaries of a step.
OBS_BUFFERS_PER_SLOT = 12


class InsufficientMemory(ValueError):
    """The run's replay buffer and slots cannot fit in the device's available memory."""


def _n_step(cfg: TrainConfig) -> int:
    return cfg.dqn.n_step if cfg.algorithm.kind == "dqn" else 1


def buffer(cfg: TrainConfig, obs_dim: int, n_actions: int) -> tuple[int, str, int, str]:
    """(bytes, the setting that sizes them, its value, what one unit of it is) of what the
    algorithm stores: DQN's replay, DAgger's ring of labelled states, or PPO's rollout of every
    slot; BC stores nothing here."""
    algorithm, obs = cfg.algorithm, obs_dim * FLOAT
    if algorithm.kind == "dagger":
        per_label = obs + n_actions * BOOL + LONG
        return algorithm.capacity * per_label, "algorithm.capacity", algorithm.capacity, "labelled state"
    if algorithm.kind == "ppo":
        samples = algorithm.rollout_steps * cfg.env.num_envs
        per_sample = obs + n_actions * BOOL + LONG + 2 * BOOL + 6 * FLOAT  # with advantages, returns
        steps = algorithm.rollout_steps
        return samples * per_sample, "algorithm.rollout_steps", steps, "rollout step of all slots"
    if algorithm.kind == "bc":
        return 0, "algorithm.batch_size", algorithm.batch_size, "sample"
    capacity = cfg.dqn.replay.capacity
    return replay_bytes(cfg, obs_dim, n_actions), "algorithm.replay.capacity", capacity, "transition"


def replay_bytes(cfg: TrainConfig, obs_dim: int, n_actions: int) -> int:
    rep, obs = cfg.dqn.replay, obs_dim * FLOAT
    if cfg.network.kind == "lstm":
        length, burn_in = cfg.window()
        window = burn_in + length + _n_step(cfg)
        step = obs + LONG + FLOAT + 2 * BOOL + n_actions * BOOL
        per_window = window * step + 2 * cfg.network.lstm_hidden * FLOAT + obs + n_actions * BOOL
        return max(1, rep.capacity // length) * per_window
    total = rep.capacity * (2 * obs + LONG + 2 * FLOAT + n_actions * BOOL)
    if rep.kind == "prioritized":  # the sum tree: float64 nodes over the next power of two
        total += 2 * (1 << max(1, (rep.capacity - 1).bit_length())) * 8
    return total


def slot_bytes(cfg: TrainConfig, obs_dim: int, n_actions: int) -> int:
    obs = obs_dim * FLOAT
    total = SLOT_OVERHEAD + obs * (OBS_BUFFERS_PER_SLOT + _n_step(cfg))
    if cfg.network.kind == "lstm":  # the window ring per slot, and the window copied out of it
        (length, burn_in), hidden = cfg.window(), cfg.network.lstm_hidden
        window = burn_in + length + _n_step(cfg)
        step = 2 * obs + 2 * hidden * FLOAT + 2 * n_actions * BOOL + LONG + FLOAT + 2 * BOOL
        total += 2 * window * step
    return total


def check_memory(cfg: TrainConfig, level: CompiledLevel, device: torch.device) -> None:
    """Refuse a run that cannot fit, naming the setting to lower and the sizes involved."""
    obs_dim, n_actions = level.layout.size, level.n_actions
    replay, setting, count, unit = buffer(cfg, obs_dim, n_actions)
    per_transition = replay / count
    copies = 2 if cfg.checkpoint.include_replay else 1  # resuming holds the loaded copy beside it
    per_slot = slot_bytes(cfg, obs_dim, n_actions)
    slots = cfg.env.num_envs * per_slot
    learning = getattr(cfg.algorithm, "batch_size", 1024) * obs_dim * FLOAT * 8
    need = BASE_BYTES + copies * replay + slots + learning
    memory = available_memory(device)
    if memory is None or need <= memory[0]:
        return
    where = "this machine" if device.type == "cpu" else f"device {device}"
    lower = setting if copies * replay >= slots else "env.num_envs"
    twice = " x 2 for include_replay" if copies == 2 else ""
    size = format_bytes
    raise InsufficientMemory(
        f"{setting} {count:,} needs {size(copies * replay)} "
        f"({size(per_transition)} per {unit}{twice}) and env.num_envs {cfg.env.num_envs:,} needs "
        f"{size(slots)} ({size(per_slot)} per slot), about {size(need)} in all; {where} has "
        f"{size(memory[0])} available (of {size(memory[1])}): lower {lower}"
    )

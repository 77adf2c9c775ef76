"""What a `Town` hands out: the observation of a state, a tick's output, a copy of a few towns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Observation:
    """What every slot sees now, and what it may do."""

    obs: torch.Tensor  # [N, obs_dim] float32
    mask: torch.Tensor  # [N, n_actions] bool, legal actions
    affordance: torch.Tensor  # [N] long, affordance underfoot (-1: none)


@dataclass(frozen=True)
class StepOutput(Observation):
    """One tick. `obs`, `mask` and `affordance` describe the state after any autoreset; the
    `final_*` fields describe the state the tick ended in, before slots were replaced."""

    reward: torch.Tensor  # [N] float32
    terminated: torch.Tensor  # [N] bool: died this tick
    truncated: torch.Tensor  # [N] bool: alive when the town reached max_steps
    done: torch.Tensor  # [N] bool: terminated | truncated
    invalid_action: torch.Tensor  # [N] bool: the action was masked and ran as WAIT
    executed: torch.Tensor  # [N] long: the action that ran
    final_obs: torch.Tensor  # [N, obs_dim]: rows where `done` hold the last observation
    final_mask: torch.Tensor  # [N, n_actions]: the mask of the state the tick ended in
    final_episode_step: torch.Tensor  # [N] long: ticks lived when the tick ended
    # social levels only: the partner's slot in its town (-1: no CHAT), success, reward terms
    chat_partner: torch.Tensor | None = None
    chat_success: torch.Tensor | None = None
    reward_terms: dict[str, torch.Tensor] = field(default_factory=dict)
    # economy levels only (docs/economy.md): exit_reason, wage, arrived_on_time, arrived_late,
    # absent, fired, each [N]
    economy: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class TownView:
    """A read-only copy of a few towns, small enough to hand to an observer or a recorder.

    Every tensor is indexed by the viewed towns first (`towns[i]` is the town of row i), so
    writing into it never touches the simulation.
    """

    towns: torch.Tensor  # [V] town indices
    clock: torch.Tensor  # [V] ticks since the town was (re)generated
    hour: torch.Tensor  # [V] hour of day (0 without a day cycle)
    affordance_position: torch.Tensor  # [V, A, 2] (x, y)
    position: torch.Tensor  # [V, K, 2] (x, y) of every agent slot
    meters: torch.Tensor  # [V, K, M]
    alive: torch.Tensor  # [V, K]
    progress: torch.Tensor  # [V, K] ticks done of the current multi-tick use
    life_steps: torch.Tensor  # [V, K]
    affordance: torch.Tensor  # [V, K] affordance underfoot (-1: none)
    # social levels: each agent's ties toward every agent of its town [V, K, K], its queue
    # place (the tick it joined, -1: not queued) and position (queued agents served before it,
    # -1: not queued) [V, K]; None elsewhere
    trust: torch.Tensor | None = None
    familiarity: torch.Tensor | None = None
    rivalry: torch.Tensor | None = None
    queue_key: torch.Tensor | None = None
    queue_position: torch.Tensor | None = None
    # economy levels: employer, shift status (0 not arrived, 1 on time, 2 late), employed,
    # absences in the window, firings and whether it missed its last shift [V, K]; the catalogue
    # events active in each town [V, E] (named by `Town.event_names`), the ticks each has left
    # (0: not active) and its value
    employer: torch.Tensor | None = None
    shift_status: torch.Tensor | None = None
    employed: torch.Tensor | None = None
    absences: torch.Tensor | None = None
    firings: torch.Tensor | None = None
    absent_last: torch.Tensor | None = None
    events: torch.Tensor | None = None
    event_left: torch.Tensor | None = None
    event_value: torch.Tensor | None = None

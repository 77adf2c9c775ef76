"""PettingZoo front ends: one town of `num_agents` agents, as a `ParallelEnv` or an AEC env.

    env = townlet_env.parallel_env(level="L1_full_observability", num_agents=4)
    observations, infos = env.reset(seed=0)
    while env.agents:
        actions = {a: env.action_space(a).sample(observations[a]["action_mask"]) for a in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)

A thin view of a `Town` (`env.town`) built without autoreset and stepped by the scalar engine
(`core.scalar`, equal to the tensor core bit for bit): the town is never regenerated and an
agent that dies is never replaced. It leaves `agents` after the step that reports
`terminations[agent] = True` and does not come back; the episode ends when every agent has
left or at `max_cycles` (every agent still alive is then truncated).

Observations are `{"observation": Box float32, "action_mask": Box int8}` dicts, or, with
`mask_in_obs=False`, the plain Box with the mask in `infos[agent]["action_mask"]` (for adapters
that only take Box spaces: SuperSuit's `black_death_v3`, SB3's `MlpPolicy`).

`state()` is the global town state as a flat float32 vector in [-1, 1] (`state_space`); its
fields are listed by `state_layout`:

    episode_progress  1          town steps / level max_steps
    time              2          sin, cos of the hour (0, 0 without a day cycle)
    affordances       A x 2      x / (width - 1), y / (height - 1) of each affordance, pack order
    agents            N x (4+M)  per agent slot: alive, x, y (normalised), interaction progress,
                                 then the M meters; all zero once the agent is dead
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from townlet_env.core.level import CompiledLevel, compile_level
from townlet_env.core.observe import affordance_at, hour_of_day
from townlet_env.core.state import TownState
from townlet_env.core.town import Town, check_render_mode, default_agents_per_town
from townlet_env.envs.common import LevelNames, action_index, render_town, require_started

RENDER_MODES = ("human", "ansi", "rgb_array")


class TownletParallelEnv(LevelNames, ParallelEnv[str, Any, int]):
    """One Townlet town with `num_agents` agents, `agent_0 ... agent_{N-1}`.

    Args:
        level: a built-in level name or a pack directory.
        num_agents: agents in the town (they share it: capacity-1 affordances, other agents seen);
            default 4, or a social level's population (6 on L4_social).
        max_cycles: truncate after this many steps; default and upper bound: the level's max_steps.
        render_mode: None, "human" (prints the text picture), "ansi" or "rgb_array".
        mask_in_obs: True for dict observations with the action mask inside; False for a plain
            Box observation with the mask in `infos[agent]["action_mask"]`.

    `reset(options=...)` accepts and ignores options (PettingZoo's api tests pass some).
    `step()` needs an action for every agent in `agents`; actions for agents that have left are
    ignored, and a step once `agents` is empty returns empty dicts (SuperSuit's `black_death_v3`
    makes that one extra call when a town ends).
    """

    # Gymnasium and PettingZoo treat metadata as an instance attribute: it cannot be a ClassVar.
    metadata = {  # noqa: RUF012
        "name": "townlet_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": 4,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        level: str | Path = "L1_full_observability",
        num_agents: int | None = None,
        max_cycles: int | None = None,
        render_mode: str | None = None,
        mask_in_obs: bool = True,
    ) -> None:
        check_render_mode(render_mode, RENDER_MODES, optional=True)
        compiled = compile_level(level)
        if num_agents is None:  # 4 as before, or a social level's population
            num_agents = 4 if compiled.social is None else default_agents_per_town(compiled)
        if int(num_agents) < 1:
            raise ValueError(f"num_agents must be >= 1, got {num_agents}")
        self.town = Town(compiled, int(num_agents), int(num_agents), "cpu", autoreset=False, scalar=True)
        self.level: CompiledLevel = self.town.level
        if max_cycles is not None and int(max_cycles) < 1:
            raise ValueError(f"max_cycles must be >= 1, got {max_cycles}")
        self.max_cycles = self.level.max_steps if max_cycles is None else int(max_cycles)
        self.render_mode = render_mode
        self.mask_in_obs = mask_in_obs
        n = int(num_agents)
        self.possible_agents = [f"agent_{i}" for i in range(n)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}

        dim, n_actions = self.level.layout.size, self.level.n_actions
        self._observation_spaces: dict[str, gym.Space] = {}
        self._action_spaces: dict[str, gym.Space] = {}
        for agent in self.possible_agents:
            box = gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)
            mask = gym.spaces.Box(0, 1, (n_actions,), np.int8)
            self._observation_spaces[agent] = (
                gym.spaces.Dict({"observation": box, "action_mask": mask}) if mask_in_obs else box
            )
            self._action_spaces[agent] = gym.spaces.Discrete(n_actions)
        self.state_layout = _state_layout(self.level, n)
        size = sum(s for _, _, s in self.state_layout)
        self.state_space = gym.spaces.Box(-1.0, 1.0, (size,), np.float32)

        self._seeded = False  # set by reset(seed=...); unseeded copies draw fresh entropy

    # --- spaces and names ------------------------------------------------------------------

    def observation_space(self, agent: str) -> gym.Space:
        return self._observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> gym.Space:
        return self._action_spaces[self._check_agent(agent)]

    def _check_agent(self, agent: str) -> str:
        if agent not in self._index:
            raise KeyError(f"unknown agent {agent!r} (agents are agent_0 .. agent_{len(self._index) - 1})")
        return agent

    # --- the Parallel API ------------------------------------------------------------------

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._seeded = True
        self.town.reset_state(None if seed is None else int(seed))
        self.agents = self.possible_agents[:]
        obs, masks = self._observe()
        events = self._events()
        return (
            {a: self._agent_obs(obs, masks, a) for a in self.agents},
            {a: self._agent_info(masks, a, events) for a in self.agents},
        )

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        require_started(self.town, "step()")
        unknown = [a for a in actions if a not in self._index]
        if unknown:
            raise ValueError(
                f"actions for unknown agents {unknown} (agents: {', '.join(self.possible_agents)})"
            )
        if not self.agents:
            return {}, {}, {}, {}, {}
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(
                f"no action for live agents {missing}: step() needs one for every agent in env.agents"
            )

        executed = [self.level.wait_action] * len(self.possible_agents)
        n_actions = self.level.n_actions
        for agent in self.agents:
            action = actions[agent]
            if type(action) is not int or not 0 <= action < n_actions:
                action = action_index(action, n_actions)
            executed[self._index[agent]] = action
        out = self.town.step_scalar(executed)

        obs, masks = self._observe()
        engine = self.town.engine
        died, alive, reward = out.terminated, engine.alive, out.reward
        out_of_time = engine.clock >= min(self.max_cycles, self.level.max_steps)
        observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        events, reasons = self._events(), out.economy.get("exit_reason")
        for agent in self.agents:
            i = self._index[agent]
            observations[agent] = self._agent_obs(obs, masks, agent)
            rewards[agent] = reward[i]
            terminations[agent] = died[i]
            truncations[agent] = alive[i] and out_of_time
            infos[agent] = self._agent_info(masks, agent, events, 0 if reasons is None else reasons[i])
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global town state (see the module docstring and `state_layout`)."""
        require_started(self.town, "state()")
        return _state_vector(self.level, self.town.state)

    def render(self) -> str | np.ndarray | None:
        return render_town(self.town, self.render_mode)

    def close(self) -> None:
        self.town.close()

    # --- helpers ---------------------------------------------------------------------------

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        """Every slot's observation and int8 mask, from the scalar engine."""
        engine = self.town.engine
        obs = engine.observe(np.empty((len(self.possible_agents), self.level.layout.size), dtype=np.float32))
        return obs, np.array(engine.mask(), dtype=np.int8)

    def _agent_obs(self, obs: np.ndarray, masks: np.ndarray, agent: str) -> Any:
        # rows of arrays made for this step alone: no agent's row is another's, nor reused later
        i = self._index[agent]
        if self.mask_in_obs:
            return {"observation": obs[i], "action_mask": masks[i]}
        return obs[i]

    def _agent_info(
        self, masks: np.ndarray, agent: str, events: np.ndarray | None = None, exit_reason: int = 0
    ) -> dict[str, Any]:
        info: dict[str, Any] = {} if self.mask_in_obs else {"action_mask": masks[self._index[agent]]}
        if events is not None:  # an economy level: the town's events, why the agent left (0: it did not)
            info["events"] = events.copy()
            info["exit_reason"] = exit_reason
        return info

    def _events(self) -> np.ndarray | None:
        """On an economy level, the events on in the town ([E] bool, named by `event_names`)."""
        if self.level.economy is None:
            return None
        return np.array(self.town.engine.active_events(), dtype=bool)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # SuperSuit's concat_vec_envs_v1 copies the env by pickling it: an unseeded copy gets
        # fresh entropy, or every copy would draw the same towns. reset(seed=s) stays exact.
        self.__dict__.update(state)
        if not self._seeded:
            self.town.seed(None)


def _state_layout(level: CompiledLevel, num_agents: int) -> list[tuple[str, int, int]]:
    sizes = [
        ("episode_progress", 1),
        ("time", 2),
        ("affordances", level.n_affordances * 2),
        ("agents", num_agents * (4 + level.n_meters)),
    ]
    layout, offset = [], 0
    for name, size in sizes:
        layout.append((name, offset, size))
        offset += size
    return layout


def _state_vector(level: CompiledLevel, state: TownState) -> np.ndarray:
    scale = level.position_scale
    town = torch.zeros(3)
    town[0] = state.clock[0].float() / level.max_steps
    if level.day_cycle:
        town[1:] = level.hour_features[hour_of_day(state)[0]]
    affordances = (state.affordance_position[0].float() / scale).flatten()
    aff = affordance_at(level, state)
    ticks = level.aff_ticks[aff.clamp(min=0)].float()
    progress = torch.where(aff >= 0, state.progress.float() / ticks, 0.0)
    agents = torch.cat(
        [
            torch.ones(state.num_slots, 1),
            state.position.float() / scale,
            progress[:, None],
            state.meters,
        ],
        dim=1,
    )
    agents = agents * state.alive[:, None]
    return torch.cat([town, affordances, agents.flatten()]).numpy()


def parallel_env(
    level: str | Path = "L1_full_observability",
    num_agents: int | None = None,
    max_cycles: int | None = None,
    render_mode: str | None = None,
    mask_in_obs: bool = True,
) -> TownletParallelEnv:
    """A PettingZoo `ParallelEnv` of one town (see `TownletParallelEnv`)."""
    return TownletParallelEnv(
        level=level,
        num_agents=num_agents,
        max_cycles=max_cycles,
        render_mode=render_mode,
        mask_in_obs=mask_in_obs,
    )


def env(
    level: str | Path = "L1_full_observability",
    num_agents: int | None = None,
    max_cycles: int | None = None,
    render_mode: str | None = None,
    mask_in_obs: bool = True,
) -> Any:
    """The AEC version of `parallel_env` (PettingZoo's `parallel_to_aec`, order enforced)."""
    return parallel_to_aec(
        parallel_env(
            level,
            num_agents=num_agents,
            max_cycles=max_cycles,
            render_mode=render_mode,
            mask_in_obs=mask_in_obs,
        )
    )


__all__ = ["TownletParallelEnv", "env", "parallel_env"]

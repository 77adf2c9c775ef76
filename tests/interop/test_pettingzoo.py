"""The PettingZoo API: PettingZoo's own conformance tests, plus what they do not check.

PettingZoo's test functions report most problems as warnings, so warnings are errors here. Two
advisory warnings are expected for dict observations with the action mask inside, the format
PettingZoo's own classic environments use: its tests exempt those environments by name
("Observation space ... probably should be Box or Discrete", "Observation is not a NumPy
array"). They are ignored for `mask_in_obs=True` only; the Box variant passes with none.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import pettingzoo
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    render_test,
    seed_test,
    state_test,
)

import townlet_env
from townlet_env import TownletParallelEnv

pytestmark = [pytest.mark.filterwarnings("error")]

LEVELS = townlet_env.builtin_levels()
DICT_OBS_ADVICE = (
    "Observation space for each agent probably should be",
    "Observation is not a NumPy array",
)


@contextmanager
def pettingzoo_checks(mask_in_obs: bool) -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if mask_in_obs:
            for message in DICT_OBS_ADVICE:
                warnings.filterwarnings("ignore", message=message)
        yield


# --- PettingZoo's conformance tests --------------------------------------------------------------


@pytest.mark.parametrize("mask_in_obs", [True, False], ids=["dict_obs", "box_obs"])
@pytest.mark.parametrize("level", LEVELS)
def test_parallel_api_test(level: str, mask_in_obs: bool, capsys: pytest.CaptureFixture[str]) -> None:
    with pettingzoo_checks(mask_in_obs):
        parallel_api_test(townlet_env.parallel_env(level=level, num_agents=3, mask_in_obs=mask_in_obs))
    assert "Passed Parallel API test" in capsys.readouterr().out


@pytest.mark.parametrize("mask_in_obs", [True, False], ids=["dict_obs", "box_obs"])
@pytest.mark.parametrize("level", LEVELS)
def test_aec_api_test(level: str, mask_in_obs: bool, capsys: pytest.CaptureFixture[str]) -> None:
    with pettingzoo_checks(mask_in_obs):
        api_test(townlet_env.env(level=level, num_agents=3, mask_in_obs=mask_in_obs), num_cycles=1000)
    assert "Passed API test" in capsys.readouterr().out


@pytest.mark.parametrize(
    "module", [townlet_env, townlet_env.envs.pettingzoo_env], ids=["townlet_env", "pettingzoo_env"]
)
def test_max_cycles_test(module: Any) -> None:
    max_cycles_test(module)


def test_render_test(capsys: pytest.CaptureFixture[str]) -> None:
    render_test(lambda render_mode=None: townlet_env.env(level="L0_minimal", render_mode=render_mode))
    assert "legend: B=Bed" in capsys.readouterr().out  # "human" prints the text picture


@pytest.mark.parametrize("level", ["L0_minimal", "L1_full_observability", "L3_temporal_mechanics"])
def test_state_test(level: str) -> None:
    state_test(townlet_env.env(level=level), townlet_env.parallel_env(level=level))


def test_pettingzoo_seed_tests() -> None:
    parallel_seed_test(lambda: townlet_env.parallel_env(level="L1_full_observability"))
    seed_test(lambda: townlet_env.env(level="L0_minimal"))


# --- our own checks ------------------------------------------------------------------------------


def _random_episode(env: TownletParallelEnv, seed: int) -> list[Any]:
    """A whole episode under a seeded random policy that respects the masks."""
    rng = np.random.default_rng(seed)
    obs, infos = env.reset(seed=seed)
    trace: list[Any] = [obs, infos, env.state()]
    while env.agents:
        actions = {a: int(rng.choice(np.flatnonzero(obs[a]["action_mask"]))) for a in env.agents}
        out = env.step(actions)
        obs = out[0]
        trace.extend([*out, env.state(), list(env.agents)])
    return trace


@pytest.mark.parametrize("level", ["L0_minimal", "L0_5_dual_resource", "L3_temporal_mechanics"])
def test_a_seed_fixes_every_step_of_an_episode(level: str) -> None:
    # PettingZoo's parallel_seed_test compares one step; this compares whole episodes, deaths included.
    first = _random_episode(townlet_env.parallel_env(level=level, num_agents=3, max_cycles=300), seed=5)
    again = _random_episode(townlet_env.parallel_env(level=level, num_agents=3, max_cycles=300), seed=5)
    other = _random_episode(townlet_env.parallel_env(level=level, num_agents=3, max_cycles=300), seed=6)
    assert len(first) > 20
    assert data_equivalence(first, again)
    assert not data_equivalence(first[:1], other[:1])


def test_the_dead_leave_and_never_return() -> None:
    env = townlet_env.parallel_env(level="L0_minimal", num_agents=2)
    names = env.action_names
    wait = names.index("WAIT")
    obs, _ = env.reset(seed=0)
    left: dict[str, int] = {}
    t = 0
    while env.agents:
        t += 1
        actions = {}
        for agent in env.agents:
            mask = obs[agent]["action_mask"]
            # agent_0 walks whenever it can (moves cost energy) and dies first; agent_1 waits
            moves = [i for i in np.flatnonzero(mask) if names[i] in ("UP", "DOWN", "LEFT", "RIGHT")]
            actions[agent] = int(moves[0]) if agent == "agent_0" and moves else wait
        before = list(env.agents)
        obs, rewards, terms, truncs, infos = env.step(actions)
        assert set(obs) == set(rewards) == set(terms) == set(truncs) == set(infos) == set(before)
        for agent in before:
            assert agent not in left
            if terms[agent]:
                left[agent] = t
                assert not truncs[agent] and rewards[agent] == 0.0
                np.testing.assert_array_equal(
                    obs[agent]["action_mask"], np.eye(len(names), dtype=np.int8)[wait]
                )
        assert env.agents == [a for a in before if not (terms[a] or truncs[a])]
        if "agent_0" in left:
            slot = dict((n, (o, s)) for n, o, s in env.state_layout)["agents"]
            per_agent = slot[1] // 2
            assert not env.state()[slot[0] : slot[0] + per_agent].any()  # a dead slot is all zeros
    assert left["agent_0"] < left["agent_1"] < env.max_cycles  # both died, one after the other
    assert env.step({}) == ({}, {}, {}, {}, {})  # one more step once everyone has left is harmless
    with pytest.raises(ValueError, match="unknown agents"):
        env.step({"agent_9": wait})


def test_max_cycles_truncates_the_living_and_is_capped_by_the_level(short_pack: Path) -> None:
    env = townlet_env.parallel_env(level="L1_full_observability", num_agents=2, max_cycles=3)
    env.reset(seed=0)
    wait = env.action_names.index("WAIT")
    for t in range(3):
        _, _, terms, truncs, _ = env.step(dict.fromkeys(env.agents, wait))
        assert not any(terms.values())
        assert all(truncs.values()) == (t == 2)
    assert env.agents == []
    capped = townlet_env.parallel_env(level=short_pack, num_agents=2, max_cycles=100)
    capped.reset(seed=0)
    steps = 0
    while capped.agents:
        capped.step(dict.fromkeys(capped.agents, wait))
        steps += 1
    assert steps == 5  # the pack's max_steps
    assert townlet_env.parallel_env(level=short_pack).max_cycles == 5
    with pytest.raises(ValueError, match="max_cycles"):
        townlet_env.parallel_env(max_cycles=0)


def test_spaces_and_observation_formats() -> None:
    env = townlet_env.parallel_env(level="L1_full_observability", num_agents=3)
    assert env.possible_agents == ["agent_0", "agent_1", "agent_2"]
    space = env.observation_space("agent_1")
    assert space is env.observation_space("agent_1") and env.action_space("agent_1") is env.action_space(
        "agent_1"
    )
    assert isinstance(space, gym.spaces.Dict)
    assert space["observation"].dtype == np.float32 and space["action_mask"].dtype == np.int8
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(env.possible_agents) and all(space.contains(obs[a]) for a in obs)
    assert infos == {a: {} for a in env.possible_agents}
    with pytest.raises(ValueError, match="no action for live agents"):
        env.step({"agent_0": 5})
    with pytest.raises(KeyError, match="unknown agent"):
        env.observation_space("player_0")

    box = townlet_env.parallel_env(level="L1_full_observability", num_agents=3, mask_in_obs=False)
    assert isinstance(box.observation_space("agent_0"), gym.spaces.Box)
    obs, infos = box.reset(seed=0)
    assert obs["agent_0"].shape == (479,) and obs["agent_0"].dtype == np.float32
    assert infos["agent_0"]["action_mask"].dtype == np.int8
    obs, _, _, _, infos = box.step(dict.fromkeys(box.agents, 5))
    assert set(infos["agent_2"]) == {"action_mask"}


def test_state_is_global_and_named() -> None:
    env = townlet_env.parallel_env(level="L3_temporal_mechanics", num_agents=2)
    env.reset(seed=0)
    layout = {name: (offset, size) for name, offset, size in env.state_layout}
    assert list(layout) == ["episode_progress", "time", "affordances", "agents"]
    assert layout["affordances"][1] == 14 * 2 and layout["agents"][1] == 2 * (4 + 8)
    assert sum(size for _, size in layout.values()) == env.state_space.shape[0]
    state = env.state()
    assert env.state_space.contains(state)
    offset = layout["agents"][0]
    assert state[offset] == 1.0  # agent_0 alive
    np.testing.assert_allclose(state[offset + 4 : offset + 12], env.town.state.meters[0].numpy())
    env.step(dict.fromkeys(env.agents, 5))
    assert env.state()[layout["episode_progress"][0]] == pytest.approx(1 / 500)
    assert env.state()[layout["time"][0] + 1] == pytest.approx(np.cos(2 * np.pi / 24), abs=1e-6)


def test_pettingzoo_registry() -> None:
    par = pettingzoo.make("parallel", "townlet/Townlet-v0", level="L0_minimal", num_agents=2)
    assert isinstance(par, TownletParallelEnv) and par.possible_agents == ["agent_0", "agent_1"]
    aec = pettingzoo.make("aec", "townlet/Townlet-v0", level="L0_minimal", max_cycles=7)
    assert isinstance(aec, pettingzoo.AECEnv) and aec.unwrapped.max_cycles == 7


def test_pickled_copies_differ_unless_seeded() -> None:
    # SuperSuit's concat_vec_envs_v1 copies a town by pickling it; copies must not share towns.
    env = townlet_env.parallel_env(level="L1_full_observability", num_agents=2)

    def first_state(copy: TownletParallelEnv, seed: int | None) -> np.ndarray:
        copy.reset(seed=seed)
        return copy.state()

    copies = [cloudpickle.loads(cloudpickle.dumps(env)) for _ in range(2)]
    assert not np.array_equal(first_state(copies[0], None), first_state(copies[1], None))
    assert np.array_equal(first_state(copies[0], 3), first_state(copies[1], 3))
    env.reset(seed=4)  # a seeded env pickles exactly
    twin = cloudpickle.loads(cloudpickle.dumps(env))
    actions = dict.fromkeys(env.agents, 5)
    assert data_equivalence(env.step(actions), twin.step(actions))


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="render_mode"):
        townlet_env.parallel_env(render_mode="video")
    with pytest.raises(ValueError, match="num_agents"):
        townlet_env.parallel_env(num_agents=0)
    with pytest.raises(RuntimeError, match="reset"):
        townlet_env.parallel_env().step({})


@pytest.mark.parametrize("level", ["L4_social", "L5_town"])
def test_the_social_town_is_a_whole_town_and_passes_conformance(
    level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """L4_social and L5_town without num_agents: the pack's population of six, every agent in
    one town (on L5 an eviction ends an agent like a death, and events run: seeded alike)."""
    env = townlet_env.parallel_env(level=level)
    assert env.max_num_agents == 6 and env.town.agents_per_town == 6
    with pettingzoo_checks(True):
        parallel_api_test(env)
        api_test(townlet_env.env(level=level), num_cycles=500)
    parallel_seed_test(lambda: townlet_env.parallel_env(level=level))
    out = capsys.readouterr().out
    assert "Passed Parallel API test" in out and "Passed API test" in out

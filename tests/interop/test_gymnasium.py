"""The Gymnasium API: `gym.make("Townlet-v0")`, `gym.make_vec(...)` and numpy conversion.

Warnings are errors in this module: Gymnasium reports API problems (from `check_env` and the
`PassiveEnvChecker` that `gym.make` adds) as warnings, so a warning here is a failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import townlet_env
from townlet_env import TorchToNumpy, TownletEnv, TownletVectorEnv
from townlet_env.core.render import rgb_layout

pytestmark = [pytest.mark.filterwarnings("error")]

LEVELS = townlet_env.builtin_levels()


def test_import_registers_the_id() -> None:
    assert "Townlet-v0" in gym.registry
    spec = gym.spec("Townlet-v0")
    assert spec.entry_point == "townlet_env.envs.gym_env:TownletEnv"
    assert spec.vector_entry_point == "townlet_env.envs.vector_env:TownletVectorEnv"
    # the env truncates itself at the level's max_steps: no TimeLimit wrapper is registered
    assert spec.max_episode_steps is None


def test_make_with_module_prefix_needs_no_import() -> None:
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'townlet_env' not in sys.modules\n"
        "env = gym.make('townlet_env:Townlet-v0', level='L0_minimal')\n"
        "obs, info = env.reset(seed=0)\n"
        "print(type(env.unwrapped).__name__, obs.shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["TownletEnv", "(12,)"]


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
@pytest.mark.parametrize("level", LEVELS)
def test_check_env_passes_on_every_level(level: str, render_mode: str | None) -> None:
    env = gym.make("Townlet-v0", level=level, render_mode=render_mode)
    assert isinstance(env.unwrapped, TownletEnv)
    check_env(env.unwrapped)


@pytest.mark.parametrize("level", LEVELS)
def test_types_through_gym_make_for_a_whole_episode(level: str) -> None:
    env = gym.make("Townlet-v0", level=level)  # with Gymnasium's PassiveEnvChecker and OrderEnforcing
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32
    assert isinstance(env.action_space, gym.spaces.Discrete)
    obs, info = env.reset(seed=3)
    env.action_space.seed(3)
    steps = 0
    while True:
        assert isinstance(obs, np.ndarray) and obs.dtype == np.float32 and space.contains(obs)
        mask = info["action_mask"]
        assert mask.dtype == np.int8 and mask.shape == (env.action_space.n,)
        np.testing.assert_array_equal(env.unwrapped.action_masks(), mask.astype(bool))
        assert env.unwrapped.action_masks().dtype == np.bool_
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample(mask))
        steps += 1
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert info["invalid_action"] is False  # sampled from the mask
        if terminated or truncated:
            break
    assert info["episode_step"] == steps <= env.unwrapped.max_steps
    assert truncated == (steps == env.unwrapped.max_steps)


def test_level_keyword_takes_a_pack_directory_and_truncates_at_its_max_steps(short_pack: Path) -> None:
    env = gym.make("Townlet-v0", level=short_pack)
    assert env.unwrapped.max_steps == 5
    env.reset(seed=0)
    wait = env.unwrapped.action_names.index("WAIT")
    flags = [env.step(wait)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(gym.error.ResetNeeded):
        env.step(wait)
    env.reset()
    assert env.step(wait)[2:4] == (False, False)


def test_default_level_is_l1() -> None:
    env = gym.make("Townlet-v0")
    assert env.unwrapped.level.name == "L1_full_observability"


def test_a_seed_fixes_the_whole_episode() -> None:
    def rollout(seed: int) -> list[tuple]:
        env = gym.make("Townlet-v0", level="L1_full_observability")
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs.tobytes()]
        for _ in range(60):
            legal = np.flatnonzero(info["action_mask"])
            obs, reward, terminated, truncated, info = env.step(int(rng.choice(legal)))
            out.append((obs.tobytes(), reward, terminated, truncated))
            if terminated or truncated:
                break
        return out

    assert rollout(7) == rollout(7)
    assert rollout(7)[0] != rollout(8)[0]


def test_masked_actions_run_as_wait_and_bad_actions_raise() -> None:
    env = gym.make("Townlet-v0", level="L0_minimal")
    _, info = env.reset(seed=0)
    illegal = np.flatnonzero(info["action_mask"] == 0)
    assert illegal.size  # a 3x3 grid: some move is a wall, or INTERACT is off the Bed
    _, _, _, _, info = env.step(int(illegal[0]))
    assert info["invalid_action"] is True
    for bad in (-1, env.action_space.n, 1.5, [0, 1]):
        with pytest.raises(ValueError, match="action"):
            env.unwrapped.step(bad)
    env.unwrapped.step(np.int64(5))
    env.unwrapped.step(np.array([5]))


def test_render_modes() -> None:
    text = gym.make("Townlet-v0", level="L0_minimal", render_mode="ansi")
    text.reset(seed=0)
    assert isinstance(text.render(), str) and "energy" in text.render()
    image = gym.make("Townlet-v0", level="L0_minimal", render_mode="rgb_array")
    image.reset(seed=0)
    frame = image.render()
    layout = rgb_layout(image.unwrapped.town.level, 1)
    assert frame.dtype == np.uint8 and frame.shape == (layout.height, layout.width, 3)
    assert layout.height > 48 and layout.width > 48  # the 3x3 grid, a legend and the meter strip
    with pytest.raises(ValueError, match="render_mode"):
        TownletEnv("L0_minimal", render_mode="human")
    with pytest.raises(ValueError, match="options"):
        TownletEnv("L0_minimal").reset(options={"difficulty": 2})


# --- the vector env ------------------------------------------------------------------------------


def test_make_vec_returns_the_torch_vector_env() -> None:
    envs = gym.make_vec(
        "Townlet-v0",
        num_envs=6,
        vectorization_mode="vector_entry_point",
        level="L0_minimal",
        agents_per_town=2,
        device="cpu",
    )
    assert isinstance(envs, TownletVectorEnv)
    assert (envs.num_envs, envs.agents_per_town, envs.num_towns) == (6, 2, 3)
    obs, _ = envs.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (6, 12)
    _, reward, terminated, _, _ = envs.step(torch.full((6,), 5))
    assert reward.dtype == torch.float32 and terminated.dtype == torch.bool
    assert envs.spec is not None and envs.spec.id == "Townlet-v0"
    # the vector entry point is also make_vec's default mode for this id
    assert isinstance(gym.make_vec("Townlet-v0", num_envs=2, level="L0_minimal"), TownletVectorEnv)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_make_vec_on_cuda() -> None:
    envs = gym.make_vec("Townlet-v0", num_envs=4, level="L0_minimal", device="cuda")
    obs, _ = envs.reset(seed=0)
    assert obs.device.type == "cuda"


def test_sync_mode_vectorizes_the_numpy_env() -> None:
    envs = gym.make_vec("Townlet-v0", num_envs=3, vectorization_mode="sync", level="L0_minimal")
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    obs, info = envs.reset(seed=0)
    assert isinstance(obs, np.ndarray) and obs.shape == (3, 12)
    assert info["action_mask"].shape == (3, 6)
    envs.step(np.full(3, 5))


def test_torch_to_numpy_matches_the_torch_env() -> None:
    torch_envs = gym.make_vec("Townlet-v0", num_envs=4, level="L0_minimal")
    numpy_envs = TorchToNumpy(gym.make_vec("Townlet-v0", num_envs=4, level="L0_minimal"))
    t_obs, _ = torch_envs.reset(seed=1)
    n_obs, n_info = numpy_envs.reset(seed=1)
    assert isinstance(n_obs, np.ndarray) and isinstance(n_info["action_mask"], np.ndarray)
    np.testing.assert_array_equal(n_obs, t_obs.numpy())
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(150):  # L0 agents die of exhaustion after about 100 steps: autoreset happens
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in n_info["action_mask"]])
        t_out = torch_envs.step(torch.as_tensor(actions))
        n_out = numpy_envs.step(actions)
        for t_value, n_value in zip(t_out[:4], n_out[:4], strict=True):
            assert isinstance(n_value, np.ndarray)
            np.testing.assert_array_equal(n_value, t_value.numpy())
        n_info = n_out[4]
        assert all(not isinstance(v, torch.Tensor) for v in n_info.values())
        np.testing.assert_array_equal(n_info["final_obs"], t_out[4]["final_obs"].numpy())
        ended += int(n_info["_final_obs"].sum())
    assert ended > 0
    assert numpy_envs.single_observation_space == torch_envs.single_observation_space


def test_gymnasium_array_conversion_also_works() -> None:
    pytest.importorskip("array_api_compat")
    from gymnasium.wrappers.vector import ArrayConversion

    envs = ArrayConversion(
        gym.make_vec("Townlet-v0", num_envs=4, level="L0_minimal"), env_xp=torch, target_xp=np
    )
    obs, info = envs.reset(seed=0)
    assert isinstance(obs, np.ndarray) and isinstance(info["action_mask"], np.ndarray)
    obs, reward, terminated, _, info = envs.step(np.full(4, 5))
    assert isinstance(reward, np.ndarray) and terminated.dtype == np.bool_

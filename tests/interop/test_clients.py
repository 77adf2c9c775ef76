"""Other people's clients on the default `gym.make_vec` path: TorchRL and Gymnasium's vector
wrappers. Each of these broke on the adapters before `Town`: the tests run the real client."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.vector import DictInfoToList, NormalizeReward, RecordEpisodeStatistics

import townlet_env  # noqa: F401  (registers Townlet-v0)
from townlet_env import TorchToNumpy, TownletVectorEnv


def test_torchrl_gym_wrapper_rolls_out_the_vector_env(short_pack: object) -> None:
    torchrl_envs = pytest.importorskip("torchrl.envs")
    base = gym.make_vec("Townlet-v0", num_envs=4, level=short_pack)
    env = torchrl_envs.GymWrapper(base)  # reads base.autoreset_mode
    # TorchRL writes into the info tensors it is given: they must not be the simulation's own
    rollout = env.rollout(40, break_when_any_done=False)
    assert rollout.batch_size == torch.Size([4, 40])
    assert bool(rollout["next", "done"].any()), "the short pack ends episodes inside the rollout"
    state = base.unwrapped.state
    assert bool(((state.meters >= 0) & (state.meters <= 1)).all())
    assert bool((state.position >= 0).all())


@pytest.mark.parametrize("copy", [True, False])
def test_writing_into_info_never_changes_the_simulation(copy: bool) -> None:
    env = TownletVectorEnv("L1_full_observability", num_envs=4, copy=copy)
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(torch.zeros(4, dtype=torch.long))
    before = {k: v.clone() for k, v in env.state.tensors().items()}
    for key in ("meters", "position", "interaction_progress", "episode_step", "final_episode_step"):
        info[key].fill_(7)
    info["action_mask"].fill_(False)
    changed = [k for k, v in env.state.tensors().items() if not torch.equal(v, before[k])]
    if copy:  # the default: everything handed out is the caller's
        assert changed == []
        obs, *_ = env.step(torch.zeros(4, dtype=torch.long))  # and the kept mask was not touched
        assert torch.isfinite(obs).all()
    else:  # the documented zero-copy opt-in hands out the state's own tensors
        assert "meters" in changed and "position" in changed


def test_torch_to_numpy_arrays_do_not_share_memory_with_the_state() -> None:
    envs = TorchToNumpy(gym.make_vec("Townlet-v0", num_envs=3))
    _, info = envs.reset(seed=0)
    info["meters"][:] = np.nan
    info["position"][:] = -5
    state = envs.unwrapped.state
    assert bool(torch.isfinite(state.meters).all()) and bool((state.position >= 0).all())


def test_record_episode_statistics_works_after_torch_to_numpy(short_pack: object) -> None:
    envs = RecordEpisodeStatistics(TorchToNumpy(gym.make_vec("Townlet-v0", num_envs=4, level=short_pack)))
    _, info = envs.reset(seed=0)
    for _ in range(12):
        masks = info["action_mask"]
        actions = np.array([np.flatnonzero(m)[0] for m in masks])
        _, _, _, _, info = envs.step(actions)
    assert envs.episode_count >= 4  # the short pack truncates after 5 steps
    assert all(length == 5 for length in envs.length_queue)


@pytest.mark.parametrize("wrapper", [RecordEpisodeStatistics, NormalizeReward, DictInfoToList])
def test_numpy_wrappers_on_the_torch_env_say_what_to_do(wrapper: type) -> None:
    envs = wrapper(gym.make_vec("Townlet-v0", num_envs=2))
    with pytest.raises(TypeError, match=rf"{wrapper.__name__}\(TorchToNumpy\("):
        envs.reset(seed=0)


def test_vector_env_exposes_autoreset_mode_as_an_attribute() -> None:
    env = gym.make_vec("Townlet-v0", num_envs=2)
    assert env.autoreset_mode == gym.vector.AutoresetMode.SAME_STEP == env.metadata["autoreset_mode"]

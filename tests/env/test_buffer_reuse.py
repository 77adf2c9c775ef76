"""`copy=False`: the vector env writes observations into reused buffers. It must return exactly
what the default (fresh tensors) returns, and keep each step's tensors intact until the step
after next."""

from __future__ import annotations

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_env.core import observe

CASES = [
    ("L0_minimal", 1),
    ("L0_5_dual_resource", 1),
    ("L1_full_observability", 1),
    ("L1_full_observability", 3),
    ("L2_partial_observability", 1),
    ("L2_partial_observability", 2),
    ("L3_temporal_mechanics", 2),
]


def random_legal(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)


@pytest.mark.parametrize(("level", "k"), CASES)
def test_reused_buffers_return_what_fresh_tensors_return(level: str, k: int) -> None:
    fresh, reused = (TownletVectorEnv(level, 6 * k, agents_per_town=k, copy=c) for c in (True, False))
    for env in (fresh, reused):
        env.set_difficulty(torch.linspace(1.0, 20.0, env.num_envs))  # many deaths and rebirths
    obs_f, info_f = fresh.reset(seed=3)
    obs_r, info_r = reused.reset(seed=3)
    assert torch.equal(obs_f, obs_r)
    gen = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(150):
        actions = random_legal(info_f["action_mask"], gen)
        obs_f, rew_f, term_f, trunc_f, info_f = fresh.step(actions)
        obs_r, rew_r, term_r, trunc_r, info_r = reused.step(actions)
        assert torch.equal(obs_f, obs_r)
        assert torch.equal(rew_f, rew_r) and torch.equal(term_f, term_r) and torch.equal(trunc_f, trunc_r)
        assert torch.equal(info_f["action_mask"], info_r["action_mask"])
        done = info_f["_final_obs"]
        assert torch.equal(done, info_r["_final_obs"])
        assert torch.equal(info_f["final_obs"][done], info_r["final_obs"][done])
        ended += int(done.sum())
    assert ended > 20, "the comparison must cover autoresets"


def test_a_step_keeps_the_previous_steps_tensors_intact() -> None:
    env = TownletVectorEnv("L2_partial_observability", 8, copy=False)
    env.set_difficulty(30.0)  # agents die within a few dozen steps
    obs, info = env.reset(seed=0)
    gen = torch.Generator().manual_seed(1)
    saw_final = False
    for _ in range(80):
        kept_obs = obs.clone()
        obs_next, _, _, _, info_next = env.step(random_legal(info["action_mask"], gen))
        assert torch.equal(obs, kept_obs), "obs_t changed when step t+1 returned"
        if bool(info_next["_final_obs"].any()):
            kept_final = info_next["final_obs"].clone()
            obs_after, _, _, _, info_after = env.step(random_legal(info_next["action_mask"], gen))
            assert torch.equal(info_next["final_obs"], kept_final), "final_obs changed one step later"
            saw_final = True
            obs_next, info_next = obs_after, info_after
        obs, info = obs_next, info_next
    assert saw_final


def test_copy_false_really_reuses_two_buffers() -> None:
    env = TownletVectorEnv("L1_full_observability", 4, copy=False)
    waits = torch.full((4,), env.action_names.index("WAIT"))
    first, _ = env.reset(seed=0)
    second = env.step(waits)[0]
    third = env.step(waits)[0]
    assert second.data_ptr() != first.data_ptr()
    assert third.data_ptr() == first.data_ptr()
    assert TownletVectorEnv("L1_full_observability", 4).copy is True  # the default hands out fresh tensors


@pytest.mark.parametrize(
    "level", ["L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics"]
)
def test_observe_into_a_buffer_of_an_earlier_observation_matches_a_fresh_one(level: str) -> None:
    env = TownletVectorEnv(level, 4, agents_per_town=2)
    env.reset(seed=0)
    earlier = env.state
    gen = torch.Generator().manual_seed(2)
    _, info = env.reset(seed=1)
    for _ in range(10):
        _, _, _, _, info = env.step(random_legal(info["action_mask"], gen))
    buffer = observe(env.level, earlier)
    assert observe(env.level, env.state, out=buffer) is buffer
    assert torch.equal(buffer, observe(env.level, env.state))


def test_observe_rejects_a_buffer_of_the_wrong_shape() -> None:
    env = TownletVectorEnv("L1_full_observability", 4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"out must be a float32 tensor of shape \(4, 479\)"):
        observe(env.level, env.state, out=torch.zeros(4, 464))


@pytest.mark.parametrize(("level", "k"), [("L1_full_observability", 1), ("L4_social", 6)])
def test_with_copy_a_client_scribbling_on_what_it_got_changes_nothing(level: str, k: int) -> None:
    """The default hands out tensors of the caller's own: writing into every one of them (obs,
    reward, flags, every info entry) leaves the simulation exactly as a twin left alone."""
    clean, scribbled = (TownletVectorEnv(level, 2 * k, agents_per_town=k) for _ in range(2))
    gen = torch.Generator().manual_seed(0)
    _, info = clean.reset(seed=4)
    scribbled.reset(seed=4)
    for _ in range(60):
        actions = random_legal(info["action_mask"], gen)
        want = clean.step(actions)
        got = scribbled.step(actions)
        assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])
        for name, value in want[4].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, got[4][name]), name
        for tensor in _tensors(got):
            tensor.fill_(True if tensor.dtype == torch.bool else 7)
        info = want[4]


def _tensors(tree: object) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, tuple | list) else []
    return [t for item in items for t in _tensors(item)]

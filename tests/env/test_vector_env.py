"""The public contract of `TownletVectorEnv`: spaces, shapes, SAME_STEP autoreset, action
checking and masking, difficulty, and the invariants every built-in level must keep."""

from __future__ import annotations

import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from townlet_env import TownletVectorEnv, builtin_levels
from townlet_env.core import action_mask

LEVELS = [
    "L0_minimal",
    "L0_5_dual_resource",
    "L1_full_observability",
    "L2_partial_observability",
    "L3_temporal_mechanics",
]
FAMILY = ["L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics"]
UP, DOWN, LEFT, RIGHT, INTERACT, WAIT = range(6)


def fields(env: TownletVectorEnv) -> dict[str, slice]:
    return {name: slice(off, off + size) for name, off, size in env.observation_layout}


def meter(env: TownletVectorEnv, name: str) -> int:
    return env.meter_names.index(name)


def random_legal(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)


def waits(env: TownletVectorEnv) -> torch.Tensor:
    return torch.full((env.num_envs,), env.action_names.index("WAIT"), dtype=torch.long)


def test_builtin_levels_are_the_five_of_the_design() -> None:
    # The parametrised tests below only cover what builtin_levels() lists.
    assert set(LEVELS) <= set(builtin_levels())


def test_is_a_gymnasium_vector_env_with_same_step_autoreset() -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=4)
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.num_envs == 4
    dim = env.single_observation_space.shape[0]
    assert env.single_observation_space.dtype == np.float32
    assert env.observation_space.shape == (4, dim)
    assert env.single_action_space == gym.spaces.Discrete(len(env.action_names))
    assert env.action_space.shape == (4,)


def test_names_match_the_level_design() -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=1)
    assert env.action_names == ["UP", "DOWN", "LEFT", "RIGHT", "INTERACT", "WAIT", "REST", "MEDITATE"]
    assert env.meter_names == [
        "energy", "hygiene", "satiation", "money", "mood", "social", "health", "fitness"
    ]  # fmt: skip
    assert len(env.affordance_names) == 14 and "Bed" in env.affordance_names


@pytest.mark.parametrize("level", LEVELS)
def test_layout_is_contiguous_and_sums_to_obs_dim(level: str) -> None:
    env = TownletVectorEnv(level=level, num_envs=1)
    layout = env.observation_layout
    assert layout[0][1] == 0
    for (_, off, size), (_, nxt, _) in itertools.pairwise(layout):
        assert size > 0 and nxt == off + size
    _, off, size = layout[-1]
    assert off + size == env.single_observation_space.shape[0]
    assert len({n for n, _, _ in layout}) == len(layout)  # names are unique keys
    assert {"meters", "time", "episode_progress", "position"} <= {n for n, _, _ in layout}


def test_l1_l2_l3_share_obs_dim_and_layout() -> None:
    envs = [TownletVectorEnv(level=lv, num_envs=1) for lv in FAMILY]
    assert len({e.single_observation_space.shape for e in envs}) == 1
    assert envs[0].observation_layout == envs[1].observation_layout == envs[2].observation_layout
    assert envs[0].action_names == envs[1].action_names == envs[2].action_names


@pytest.mark.parametrize("level", LEVELS)
def test_reset_and_step_shapes_dtypes_and_bounds(level: str) -> None:
    env = TownletVectorEnv(level=level, num_envs=8, agents_per_town=2)
    n, n_act, n_m = 8, len(env.action_names), len(env.meter_names)
    obs, info = env.reset(seed=3)
    gen = torch.Generator().manual_seed(3)

    def check_obs(o: torch.Tensor) -> None:
        assert o.shape == env.observation_space.shape and o.dtype == torch.float32
        assert bool(torch.isfinite(o).all())
        assert env.observation_space.contains(o.numpy()), (o.min(), o.max())

    def check_info(inf: dict) -> None:
        expect = {
            "action_mask": ((n, n_act), torch.bool),
            "meters": ((n, n_m), torch.float32),
            "position": ((n, 2), torch.long),
            "time_of_day": ((n,), torch.long),
            "affordance_at": ((n,), torch.long),
            "interaction_progress": ((n,), torch.long),
            "episode_step": ((n,), torch.long),
        }
        for key, (shape, dtype) in expect.items():
            assert inf[key].shape == shape and inf[key].dtype == dtype, key
        assert bool(((inf["affordance_at"] >= -1) & (inf["affordance_at"] < len(env.affordance_names))).all())
        assert bool(((inf["meters"] >= 0) & (inf["meters"] <= 1)).all())

    check_obs(obs)
    check_info(info)
    for _ in range(60):
        obs, reward, term, trunc, info = env.step(random_legal(info["action_mask"], gen))
        check_obs(obs)
        check_obs(info["final_obs"])
        check_info(info)
        assert reward.shape == (n,) and reward.dtype == torch.float32
        assert term.shape == trunc.shape == (n,) and term.dtype == trunc.dtype == torch.bool
        assert info["invalid_action"].dtype == torch.bool and info["_final_obs"].dtype == torch.bool
        assert torch.equal(info["_final_obs"], term | trunc)
        assert info["final_episode_step"].shape == (n,)
        # Actions drawn from the mask are never flagged: the mask and the step agree.
        assert not bool(info["invalid_action"].any())


def test_fields_a_level_does_not_use_are_zero() -> None:
    # L1-L3 reserve both views; a network moving between them must see zeros in the unused one.
    gen = torch.Generator().manual_seed(0)
    for level in FAMILY:
        env = TownletVectorEnv(level=level, num_envs=6, agents_per_town=3)
        obs, info = env.reset(seed=1)
        for _ in range(5):
            obs, *_, info = env.step(random_legal(info["action_mask"], gen))
        f = fields(env)
        if level == "L1_full_observability":
            assert not bool(obs[:, f["window"]].any())
            assert bool(obs[:, f["affordances"]].any()) and bool(obs[:, f["agents"]].any())
        else:
            assert not bool(obs[:, f["affordances"]].any()) and not bool(obs[:, f["agents"]].any())
            assert bool(obs[:, f["window"]].any())
        if level != "L3_temporal_mechanics":
            assert not bool(obs[:, f["time"]].any())
            assert not bool(obs[:, f["interaction_progress"]].any())


@pytest.mark.parametrize("level", LEVELS)
def test_underfoot_is_the_one_hot_of_the_affordance_under_the_agent(level: str) -> None:
    env = TownletVectorEnv(level=level, num_envs=2)
    env.reset(seed=0)
    a = len(env.affordance_names) - 1  # the last affordance, on slot 0; slot 1 on an empty cell
    empty = next(
        (x, y)
        for y in range(env.level.height)
        for x in range(env.level.width)
        if int(env.state.cells[1, y + env.level.pad, x + env.level.pad]) == -1
    )
    position = torch.stack([env.state.affordance_position[0, a].long(), torch.tensor(empty)])
    env.town.set_state(env.state.replace(position=position))
    obs, *_ = env.step(waits(env))
    under = obs[:, fields(env)["underfoot"]]
    channel = env.level.layout.channels.index(env.affordance_names[a])
    assert under[0].tolist() == [1.0 if c == channel else 0.0 for c in range(under.shape[1])]
    assert not bool(under[1].any())


def test_seeded_reset_is_reproducible_and_seeds_differ() -> None:
    a = TownletVectorEnv(level="L1_full_observability", num_envs=16)
    b = TownletVectorEnv(level="L1_full_observability", num_envs=16)
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    assert torch.equal(obs_a, obs_b)
    obs_c, _ = b.reset(seed=8)
    assert not torch.equal(obs_a, obs_c)
    # reset() without a seed continues the generator: a new layout, not a replay.
    obs_d, _ = a.reset()
    assert not torch.equal(obs_a, obs_d)


def test_large_batch_from_the_readme() -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=4096, agents_per_town=1, device="cpu")
    obs, info = env.reset(seed=0)
    assert obs.shape == (4096, env.single_observation_space.shape[0]) and obs.device.type == "cpu"
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        obs, reward, _, _, info = env.step(random_legal(info["action_mask"], gen))
    assert obs.shape[0] == reward.shape[0] == 4096
    assert int(info["episode_step"].min()) == 3


def test_actions_as_tensor_numpy_or_list_give_the_same_step() -> None:
    results = []
    for kind in ("tensor", "int32 tensor", "numpy", "list"):
        env = TownletVectorEnv(level="L1_full_observability", num_envs=4)
        env.reset(seed=2)
        acts = [0, 3, 5, 6]
        given = {
            "tensor": torch.tensor(acts),
            "int32 tensor": torch.tensor(acts, dtype=torch.int32),
            "numpy": np.array(acts),
            "list": acts,
        }[kind]
        results.append(env.step(given)[0])
    for r in results[1:]:
        assert torch.equal(results[0], r)


@pytest.mark.parametrize(
    "actions",
    [
        pytest.param([0, 1, -1, 0], id="negative"),
        pytest.param([0, 1, 8, 0], id="too-large"),
        pytest.param([0.0, 1.0, 2.0, 3.0], id="float"),
        pytest.param(torch.tensor([0.0, 1.0, 2.0, 3.0]), id="float-tensor"),
        pytest.param(np.array([0, 1, 2], dtype=np.int64), id="short"),
        pytest.param(torch.zeros(4, 1, dtype=torch.long), id="column"),
        pytest.param(torch.tensor([True, False, True, False]), id="bool"),
        pytest.param(["UP", "UP", "UP", "UP"], id="strings"),
        pytest.param(5, id="scalar"),
    ],
)
def test_bad_actions_raise_value_error(actions: object) -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=4)
    env.reset(seed=0)
    before = env.state_dict()
    with pytest.raises(ValueError, match="action"):
        env.step(actions)
    # a rejected step must not have advanced anything
    assert torch.equal(env.state.clock, before["state"]["clock"])
    assert torch.equal(env.state.meters, before["state"]["meters"])


def test_out_of_range_message_names_the_slot_and_the_range() -> None:
    env = TownletVectorEnv(level="L0_minimal", num_envs=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action 6 in slot 2 .*0\.\.5"):
        env.step([0, 0, 6])


def test_step_before_reset_raises() -> None:
    env = TownletVectorEnv(level="L0_minimal", num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step([5, 5])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"num_envs": 6, "agents_per_town": 4}, ValueError),
        ({"num_envs": 0}, ValueError),
        ({"num_envs": 4, "agents_per_town": 0}, ValueError),
        ({"num_envs": 4.0}, TypeError),
        ({"num_envs": 4, "render_town": 4}, ValueError),
        ({"num_envs": 4, "render_mode": "human"}, ValueError),
        # L0_minimal is 3x3 with one Bed: 8 cells for agents, so a town of 9 cannot start
        ({"num_envs": 9, "agents_per_town": 9, "level": "L0_minimal"}, ValueError),
    ],
)
def test_bad_construction_raises(kwargs: dict, error: type) -> None:
    kwargs = {"level": "L1_full_observability", **kwargs}
    with pytest.raises(error):
        TownletVectorEnv(**kwargs)


def test_reset_options_are_rejected_without_touching_the_rng() -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=2)
    env.reset(seed=1)
    rng = env.town.generator.get_state()
    with pytest.raises(ValueError, match="options"):
        env.reset(seed=0, options={"difficulty": 2})
    assert torch.equal(env.town.generator.get_state(), rng)


# --- masking: a masked action runs as WAIT and is flagged ------------------------------------


def _l0_at(positions: list[tuple[int, int]], energy: float = 1.0) -> TownletVectorEnv:
    env = TownletVectorEnv(level="L0_minimal", num_envs=len(positions))
    env.reset(seed=0)
    meters = env.state.meters.clone()
    meters[:, meter(env, "energy")] = energy
    env.town.set_state(env.state.replace(position=torch.tensor(positions), meters=meters))
    return env


def test_move_into_the_grid_edge_is_masked_runs_as_wait_and_costs_no_move_energy() -> None:
    env = _l0_at([(0, 0)] * 4)
    mask = action_mask(env.level, env.state)
    assert not bool(mask[:, UP].any()) and not bool(mask[:, LEFT].any())
    assert bool(mask[:, RIGHT].all()) and bool(mask[:, DOWN].all())
    _, _, _, _, info = env.step([UP, LEFT, RIGHT, WAIT])
    e = meter(env, "energy")
    assert info["position"].tolist() == [[0, 0], [0, 0], [1, 0], [0, 0]]
    assert info["invalid_action"].tolist() == [True, True, False, False]
    # base drain 0.01 for everyone; only the legal move pays the 0.005 move cost
    torch.testing.assert_close(info["meters"][:, e], torch.tensor([0.99, 0.99, 0.985, 0.99]))


@pytest.mark.parametrize("key", ["action_mask", "final_action_mask"])
def test_editing_a_returned_mask_does_not_change_the_next_step(key: str) -> None:
    # The env keeps the mask of the current state for its next step; the masks it hands out
    # (action_mask, and final_action_mask, which is the same state when nothing ended) are copies.
    env = _l0_at([(0, 0)] * 4)
    _, _, _, _, info = env.step([WAIT] * 4)
    info[key][:] = True  # a caller "unmasks" everything in place
    _, _, _, _, info = env.step([UP, LEFT, RIGHT, WAIT])
    assert info["invalid_action"].tolist() == [True, True, False, False]
    assert info["position"].tolist() == [[0, 0], [0, 0], [1, 0], [0, 0]]


def test_interact_off_an_affordance_does_nothing_on_it_applies_the_bed() -> None:
    env = TownletVectorEnv(level="L0_minimal", num_envs=2)
    env.reset(seed=0)
    bed = env.state.affordance_position[:, 0]  # [towns, 2]
    off = torch.stack([(bed[0, 0] + 1) % 3, bed[0, 1]])  # a cell beside the Bed in town 0
    meters = env.state.meters.clone()
    meters[:, meter(env, "energy")] = 0.5
    env.town.set_state(env.state.replace(position=torch.stack([off, bed[1]]), meters=meters))
    _, reward, _, _, info = env.step([INTERACT, INTERACT])
    e, m = meter(env, "energy"), meter(env, "money")
    assert info["invalid_action"].tolist() == [True, False]
    # off: only the base drain, no INTERACT cost, no money spent
    # on: -0.005 INTERACT + 5 x 0.075 + 0.125 = +0.5 energy, 5 x 0.01 money, then the drain
    torch.testing.assert_close(info["meters"][:, e], torch.tensor([0.49, 0.985]))
    torch.testing.assert_close(info["meters"][:, m], torch.tensor([0.25, 0.20]))
    torch.testing.assert_close(reward, info["meters"][:, e])  # L0 reward is energy


def test_dead_agent_mask_allows_only_wait() -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=4, agents_per_town=2)
    env.reset(seed=0)
    env.town.set_state(env.state.replace(alive=torch.tensor([True, False, True, True])))
    mask = action_mask(env.level, env.state)
    assert mask[1].tolist() == [a == "WAIT" for a in env.action_names]


# --- SAME_STEP autoreset ----------------------------------------------------------------------


def test_same_step_autoreset_returns_next_life_and_keeps_the_last_obs() -> None:
    env = TownletVectorEnv(level="L0_minimal", num_envs=4)
    env.reset(seed=0)
    f = fields(env)
    meters = env.state.meters.clone()
    meters[0, 0] = 0.015  # two ticks of 0.01 drain: alive after one, dead after two
    env.town.set_state(env.state.replace(meters=meters))

    obs, reward, term, trunc, info = env.step(waits(env))
    assert not bool(term.any()) and not bool(info["_final_obs"].any())
    layout_before = env.state.affordance_position.clone()

    obs, reward, term, trunc, info = env.step(waits(env))
    assert term.tolist() == [True, False, False, False] and not bool(trunc.any())
    assert info["_final_obs"].tolist() == [True, False, False, False]
    final = info["final_obs"]
    # the ended life: energy 0, two ticks elapsed, reward 0 because it died
    assert float(final[0, f["meters"]][0]) == 0.0
    assert float(final[0, f["episode_progress"]][0]) == pytest.approx(2 / 1000)
    assert float(reward[0]) == 0.0
    assert int(info["final_episode_step"][0]) == 2
    # the returned obs is the first of the next life: fresh meters, clock 0, step 0
    assert obs[0, f["meters"]].tolist() == pytest.approx([1.0, 0.25])
    assert float(obs[0, f["episode_progress"]][0]) == 0.0
    assert int(info["episode_step"][0]) == 0
    assert info["meters"][0].tolist() == pytest.approx([1.0, 0.25])
    # info describes the new life too (position matches the returned obs)
    scale = torch.tensor([2.0, 2.0])
    torch.testing.assert_close(obs[0, f["position"]], info["position"][0].float() / scale)
    # slots that did not end: final_obs is their obs, their life and town go on
    assert torch.equal(final[1:], obs[1:])
    assert info["episode_step"][1:].tolist() == [2, 2, 2]
    assert torch.equal(env.state.affordance_position[1:], layout_before[1:])
    torch.testing.assert_close(reward[1:], obs[1:, f["meters"]][:, 0])


def test_reward_describes_the_same_tick_as_the_observation() -> None:
    # L1 reward is energy x health of the post-step state, the state the returned obs shows.
    env = TownletVectorEnv(level="L1_full_observability", num_envs=64)
    _, info = env.reset(seed=4)
    env.set_difficulty(6.0)  # deaths within the run, so the final_obs path is covered
    f = fields(env)
    e, h = meter(env, "energy"), meter(env, "health")
    gen = torch.Generator().manual_seed(4)
    deaths = 0
    for _ in range(80):
        _, reward, term, _, info = env.step(random_legal(info["action_mask"], gen))
        m = info["final_obs"][:, f["meters"]]
        expected = torch.where(term, 0.0, m[:, e] * m[:, h])
        torch.testing.assert_close(reward, expected)
        deaths += int(term.sum())
    assert deaths > 0


def test_truncation_at_max_steps_regenerates_the_town() -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=3)
    env.reset(seed=0)
    f = fields(env)
    clock = env.state.clock.clone()
    clock[1] = 499  # max_steps is 500: the next tick ends town 1
    env.town.set_state(env.state.replace(clock=clock, life_steps=clock.clone()))
    layout = env.state.affordance_position.clone()
    obs, _, term, trunc, info = env.step(waits(env))
    assert trunc.tolist() == [False, True, False] and not bool(term.any())
    assert float(info["final_obs"][1, f["episode_progress"]][0]) == pytest.approx(1.0)
    assert int(info["final_episode_step"][1]) == 500
    assert float(obs[1, f["episode_progress"]][0]) == 0.0
    assert int(info["episode_step"][1]) == 0
    assert not torch.equal(env.state.affordance_position[1], layout[1])
    assert torch.equal(env.state.affordance_position[[0, 2]], layout[[0, 2]])


# --- time of day (L3) ---------------------------------------------------------------------------


def test_time_of_day_in_info_obs_and_mask_agree() -> None:
    env = TownletVectorEnv(level="L3_temporal_mechanics", num_envs=1)
    obs, info = env.reset(seed=0)
    f = fields(env)
    job = env.affordance_names.index("Job")  # open 8-18
    env.town.set_state(env.state.replace(position=env.state.affordance_position[:, job].long()))
    assert int(info["time_of_day"][0]) == 0
    assert not bool(action_mask(env.level, env.state)[0, INTERACT])  # closed at midnight
    for t in range(1, 10):
        obs, _, _, _, info = env.step(waits(env))
        hour = int(info["time_of_day"][0])
        assert hour == t
        angle = 2 * math.pi * hour / 24
        assert obs[0, f["time"]].tolist() == pytest.approx([math.sin(angle), math.cos(angle)], abs=1e-6)
        # the mask the agent acts on next uses the hour it sees, not the hour after
        assert bool(info["action_mask"][0, INTERACT]) == (8 <= hour < 18), hour


# --- difficulty -----------------------------------------------------------------------------------


def test_difficulty_scales_the_base_drain_per_slot() -> None:
    # L0 energy drains 0.01/tick and nothing else touches it while waiting.
    env = TownletVectorEnv(level="L0_minimal", num_envs=4)
    env.reset(seed=0)
    env.set_difficulty(torch.tensor([0.0, 1.0, 2.0, 0.5]))
    for _ in range(10):
        _, _, _, _, info = env.step(waits(env))
    energy = info["meters"][:, meter(env, "energy")]
    torch.testing.assert_close(energy, torch.tensor([1.0, 0.9, 0.8, 0.95]))
    drop = 1.0 - energy
    assert float(drop[2]) == pytest.approx(2 * float(drop[1]), rel=1e-4)


def test_difficulty_float_applies_to_every_slot_and_survives_reset() -> None:
    env = TownletVectorEnv(level="L0_minimal", num_envs=3)
    env.set_difficulty(2.0)  # before the first reset: the reset must pick it up
    env.reset(seed=0)
    _, _, _, _, info = env.step(waits(env))
    torch.testing.assert_close(info["meters"][:, 0], torch.full((3,), 0.98))
    env.set_difficulty(0.0)
    env.reset(seed=1)
    _, _, _, _, info = env.step(waits(env))
    torch.testing.assert_close(info["meters"][:, 0], torch.ones(3))


def test_difficulty_zero_leaves_only_modulation_and_action_costs() -> None:
    env = TownletVectorEnv(level="L1_full_observability", num_envs=2)
    env.reset(seed=0)
    env.set_difficulty(0.0)
    initial = env.state.meters.clone()
    for _ in range(20):
        _, _, _, _, info = env.step(waits(env))
    h = meter(env, "health")
    others = [i for i in range(len(env.meter_names)) if i != h]
    torch.testing.assert_close(info["meters"][:, others], initial[:, others])
    # fitness stays 1, so the fitness->health modulation costs 0.001 x 0.5 per tick
    torch.testing.assert_close(info["meters"][:, h], torch.full((2,), 1.0 - 20 * 0.0005))
    # move costs are not multiplied by the difficulty
    env.town.set_state(env.state.replace(position=torch.tensor([[3, 3], [3, 3]])))
    before = env.state.meters[:, 0].clone()
    _, _, _, _, info = env.step([RIGHT, WAIT])
    torch.testing.assert_close(info["meters"][:, 0] - before, torch.tensor([-0.005, 0.0]))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (torch.ones(5), "shape|tensor"),
        (torch.ones(4, 1), "shape|tensor"),
        (-0.5, ">= 0"),
        (torch.tensor([1.0, -1.0, 1.0, 1.0]), ">= 0"),
        (float("nan"), "finite"),
        (torch.tensor([1.0, float("nan"), 1.0, 1.0]), "finite"),
    ],
)
def test_bad_difficulty_is_rejected_and_changes_nothing(value: object, match: str) -> None:
    env = TownletVectorEnv(level="L0_minimal", num_envs=4)
    env.reset(seed=0)
    env.set_difficulty(0.5)
    with pytest.raises(ValueError, match=match):
        env.set_difficulty(value)
    torch.testing.assert_close(env.state.difficulty, torch.full((4,), 0.5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("copy", [True, False])
def test_runs_on_cuda_with_tensors_on_the_device(copy: bool) -> None:
    env = TownletVectorEnv(
        level="L3_temporal_mechanics", num_envs=64, agents_per_town=2, device="cuda", copy=copy
    )
    obs, info = env.reset(seed=0)
    gen = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(5):
        obs, reward, term, trunc, info = env.step(random_legal(info["action_mask"], gen))
    for t in (obs, reward, term, trunc, *[v for v in info.values() if isinstance(v, torch.Tensor)]):
        assert t.device.type == "cuda"
    # actions given on the CPU or as a list are moved to the device
    env.step([5] * 64)
    cpu = TownletVectorEnv(level="L3_temporal_mechanics", num_envs=64, agents_per_town=2)
    assert cpu.reset(seed=0)[0].shape == obs.shape

"""`Town`: the one object that owns a running batch of towns. The adapters are views of it, so
what they return must be what it returns; its views are copies; states are checked for form
and for values before they are installed; batches are sized against memory before allocating."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_env import MemoryBudgetError, StateMismatchError, Town, TownletVectorEnv
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import memory

L1 = "L1_full_observability"


def random_legal(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)


@pytest.mark.parametrize("level", ["L0_minimal", L1, "L3_temporal_mechanics"])
def test_the_vector_env_returns_exactly_what_its_town_returns(level: str) -> None:
    town = Town(level, 12, agents_per_town=3)
    env = TownletVectorEnv(level, 12, agents_per_town=3)
    town.set_difficulty(4.0)
    env.set_difficulty(4.0)
    first = town.reset(seed=3)
    obs, info = env.reset(seed=3)
    assert torch.equal(first.obs, obs) and torch.equal(first.mask, info["action_mask"])
    gen = torch.Generator().manual_seed(0)
    ends = 0
    for _ in range(150):
        actions = random_legal(first.mask, gen)
        first = town.step(actions)
        obs, reward, terminated, truncated, info = env.step(actions)
        ends += int(first.done.sum())
        assert torch.equal(first.obs, obs) and torch.equal(first.reward, reward)
        assert torch.equal(first.terminated, terminated) and torch.equal(first.truncated, truncated)
        assert torch.equal(first.final_obs[first.done], info["final_obs"][info["_final_obs"]])
    assert ends > 0, "difficulty 4 should end lives inside the window"


def test_without_autoreset_the_dead_stay_dead() -> None:
    town = Town("L0_minimal", 2, autoreset=False)
    town.set_difficulty(50.0)
    town.reset(seed=0)
    died = torch.zeros(2, dtype=torch.bool)
    for _ in range(40):
        out = town.step(torch.full((2,), town.level.wait_action))
        died |= out.terminated
        assert not bool((died & town.state.alive).any())
    assert bool(died.all())


def test_a_view_is_a_copy_of_the_watched_towns() -> None:
    town = Town(L1, 8, agents_per_town=2)
    town.reset(seed=1)
    view = town.view([3, 1])
    state = town.state
    assert view.towns.tolist() == [3, 1]
    assert torch.equal(view.position[0], state.position[6:8])
    assert torch.equal(view.meters[1], state.meters[2:4])
    assert torch.equal(view.affordance_position[0], state.affordance_position[3])
    assert torch.equal(view.clock, state.clock[[3, 1]])
    before = {k: v.clone() for k, v in state.tensors().items()}
    for tensor in (view.position, view.meters, view.affordance_position, view.clock, view.alive):
        tensor.zero_()
    assert all(torch.equal(v, before[k]) for k, v in town.state.tensors().items())


@pytest.mark.parametrize("towns", [[4], [-1], [0.5], [True]])
def test_a_view_of_towns_that_do_not_exist_is_refused(towns: list[Any]) -> None:
    town = Town(L1, 4)
    town.reset(seed=0)
    with pytest.raises(ValueError, match="town"):
        town.view(towns)


def test_render_through_the_town_and_its_checks() -> None:
    town = Town(L1, 2)
    with pytest.raises(RuntimeError, match="reset"):
        town.render("ansi")
    town.reset(seed=0)
    assert "legend" in str(town.render("ansi", 1))
    with pytest.raises(ValueError, match="render_mode 'human'"):
        town.render("human")
    with pytest.raises(ValueError, match=r"town 2 is not in \[0, 2\)"):
        town.render("ansi", 2)


# --- values checked on load and on set_state -------------------------------------------------


def _corrupt(state: Any, name: str, value: Any) -> Any:
    edited = getattr(state, name).clone()
    edited[0] = value
    return state.replace(**{name: edited})


CORRUPTIONS = [
    ("meters", float("nan"), "meters.*finite"),
    ("meters", 5.0, r"meters.*\[0, 1\]"),
    ("meters", -0.5, r"meters.*\[0, 1\]"),
    ("clock", -3, "clock"),
    ("clock", 10_000, "clock"),
    ("position", torch.tensor([40, 2]), "off the"),
    ("position", torch.tensor([-1, 0]), "off the"),
    ("difficulty", float("inf"), "difficulty"),
    ("life_steps", -1, "life_steps"),
    ("progress", 99, "progress"),
]


@pytest.mark.parametrize(("name", "value", "match"), CORRUPTIONS)
def test_a_loaded_state_with_impossible_values_is_refused(
    tmp_path: Path, name: str, value: Any, match: str
) -> None:
    town = Town("L3_temporal_mechanics", 4, agents_per_town=2)
    town.reset(seed=0)
    saved = town.state_dict()
    saved["state"] = _corrupt(town.state, name, value).tensors()
    torch.save(saved, tmp_path / "s.pt")
    before = {k: v.clone() for k, v in town.state.tensors().items()}
    with pytest.raises(StateMismatchError, match=match):
        town.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert all(torch.equal(v, before[k]) for k, v in town.state.tensors().items())
    fresh = Town("L3_temporal_mechanics", 4, agents_per_town=2)  # never reset
    with pytest.raises(StateMismatchError, match=match):
        fresh.load_state_dict(saved)
    assert not fresh.started


@pytest.mark.parametrize(("name", "value", "match"), CORRUPTIONS)
def test_set_state_checks_values_like_a_load(name: str, value: Any, match: str) -> None:
    town = Town("L3_temporal_mechanics", 4, agents_per_town=2)
    town.reset(seed=0)
    with pytest.raises(StateMismatchError, match=match):
        town.set_state(_corrupt(town.state, name, value))


def test_a_wall_position_and_an_edited_grid_are_refused(tmp_path: Path) -> None:
    pack = tmp_path / "walled"
    shutil.copytree(BUILTIN_DIR / "L1_full_observability", pack)
    with (pack / "world.yaml").open("a") as world:
        world.write("walls: [[0, 0]]\n")
    town = Town(pack, 2)
    town.reset(seed=0)
    with pytest.raises(StateMismatchError, match="wall"):
        town.set_state(town.state.replace(position=torch.tensor([[0, 0], [1, 1]])))
    cells = town.state.cells.clone()
    cells[0][cells[0] == -1] = 0  # a second Bed-coded cell that the layout does not place
    with pytest.raises(StateMismatchError, match="cells"):
        town.set_state(town.state.replace(cells=cells))
    moved = town.state.affordance_position.clone()
    moved[1, 0] = moved[1, 1]  # two affordances on one cell
    with pytest.raises(StateMismatchError, match="cells"):
        town.set_state(town.state.replace(affordance_position=moved))
    moved[1, 0] = torch.tensor([0, 0])  # an affordance on the wall
    with pytest.raises(StateMismatchError, match="wall"):
        town.set_state(town.state.replace(affordance_position=moved))


def test_a_nan_state_cannot_make_agents_immortal(tmp_path: Path) -> None:
    """Finding 7 of issue 12: NaN meters used to load, after which agents never died."""
    env = TownletVectorEnv("L0_minimal", 2)
    env.reset(seed=0)
    saved = env.state_dict()
    saved["state"]["meters"] = torch.full_like(saved["state"]["meters"], float("nan"))
    with pytest.raises(StateMismatchError, match="finite"):
        TownletVectorEnv("L0_minimal", 2).load_state_dict(saved)


# --- memory and size ------------------------------------------------------------------------------


def test_a_batch_that_cannot_fit_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda device: (1_000_000_000, 2_000_000_000))
    with pytest.raises(MemoryBudgetError, match=r"num_envs=10000000 .*needs about .* GB.*1\.0 GB available"):
        TownletVectorEnv(L1, num_envs=10_000_000)
    TownletVectorEnv(L1, num_envs=64)  # a small one still fits


def test_the_estimate_counts_the_state_and_the_observation_buffers() -> None:
    env = TownletVectorEnv(L1, num_envs=256)
    env.reset(seed=0)
    state_bytes = sum(t.numel() * t.element_size() for t in env.state.tensors().values())
    obs_bytes = 256 * env.level.layout.size * 4
    estimate = memory.batch_bytes(env.level, 256, 1, buffers=1)
    assert state_bytes + obs_bytes <= estimate <= 2 * (state_bytes + obs_bytes)


def test_a_million_slots_construct_without_per_slot_bound_arrays() -> None:
    """Finding 10 of issue 12: the batched Gymnasium spaces were dense num_envs x obs_dim arrays."""
    tracemalloc.start()
    env = TownletVectorEnv(L1, num_envs=1 << 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50_000_000, f"constructing allocated {peak / 1e6:.0f} MB of Python/numpy memory"
    assert env.single_observation_space.shape == (env.level.layout.size,)
    small = TownletVectorEnv(L1, num_envs=3)  # the batched spaces still exist, built on first use
    assert small.observation_space.shape == (3, small.level.layout.size)
    assert small.action_space.shape == (3,)

"""Saving and restoring the whole simulation: a new env loaded from a saved state must go on
exactly as the original would (RNG included), and a state that does not fit must be refused
with one clear `StateMismatchError`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_env import StateMismatchError, TownletVectorEnv
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import action_mask

L0, L1, L2, L3 = "L0_minimal", "L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics"


def save_load(state: dict[str, Any], path: Path) -> dict[str, Any]:
    torch.save(state, path)
    return torch.load(path, weights_only=True)


def rollout(env: TownletVectorEnv, steps: int, seed: int) -> list[tuple[torch.Tensor, ...]]:
    """Steps with actions from a fixed generator and the env's own masks; returns everything the
    env hands back that must be reproducible."""
    gen = torch.Generator().manual_seed(seed)
    mask = action_mask(env.level, env.state)
    out = []
    for _ in range(steps):
        # random over all actions, masked ones included, so invalid-action handling is replayed
        actions = torch.randint(0, len(env.action_names), (env.num_envs,), generator=gen)
        actions = torch.where(torch.rand(env.num_envs, generator=gen) < 0.7,
                              torch.multinomial(mask.float(), 1, generator=gen)[:, 0], actions)  # fmt: skip
        obs, rew, term, trunc, info = env.step(actions)
        mask = info["action_mask"]
        out.append((obs, rew, term, trunc, info["final_obs"], info["invalid_action"], info["position"]))
    return out


@pytest.mark.parametrize(
    ("level", "k", "difficulty"),
    # L2 differs from L1 only in what is observed, a pure function of the state: not repeated
    [(L0, 1, 3.0), (L1, 3, 6.0), (L3, 2, 6.0)],
)
def test_a_new_env_restored_from_disk_continues_exactly(
    tmp_path: Path, level: str, k: int, difficulty: float
) -> None:
    env = TownletVectorEnv(level=level, num_envs=8 * k, agents_per_town=k)
    env.reset(seed=11)
    # per-slot difficulty, high enough that agents die and respawn inside the window
    env.set_difficulty(torch.linspace(difficulty / 2, difficulty, 8 * k))
    rollout(env, 20, seed=1)
    saved = save_load(env.state_dict(), tmp_path / "state.pt")

    expected = rollout(env, 200, seed=2)
    restored = TownletVectorEnv(level=level, num_envs=8 * k, agents_per_town=k)  # never reset
    restored.load_state_dict(saved)
    got = rollout(restored, 200, seed=2)

    ends = sum(int((e[2] | e[3]).sum()) for e in expected)
    assert ends > 0, "the window should include autoresets, or the RNG is not exercised"
    for t, (a, b) in enumerate(zip(expected, got, strict=True)):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y), f"diverged at step {t}"


def test_loading_replaces_a_running_env_entirely(tmp_path: Path) -> None:
    source = TownletVectorEnv(level=L1, num_envs=4)
    source.reset(seed=1)
    source.set_difficulty(0.25)
    saved = save_load(source.state_dict(), tmp_path / "s.pt")
    target = TownletVectorEnv(level=L1, num_envs=4)
    target.reset(seed=2)  # another layout and RNG stream, default difficulty
    target.load_state_dict(saved)
    for name, tensor in source.state.tensors().items():
        assert torch.equal(target.state.tensors()[name], tensor), name
    torch.testing.assert_close(target.state.difficulty, torch.full((4,), 0.25))
    # difficulty survives a later reset as it does in the source env
    target.reset(seed=3)
    torch.testing.assert_close(target.state.difficulty, torch.full((4,), 0.25))


def test_state_dict_is_a_snapshot_not_a_view() -> None:
    env = TownletVectorEnv(level=L1, num_envs=4)
    env.reset(seed=0)
    saved = env.state_dict()
    meters = saved["state"]["meters"].clone()
    rng = saved["generator"].clone()
    for _ in range(5):
        env.step([0, 1, 2, 3])
    env.reset()  # draws from the generator
    assert torch.equal(saved["state"]["meters"], meters)
    assert torch.equal(saved["generator"], rng)
    # and loading does not tie the env to the dict either
    env.load_state_dict(saved)
    env.step([5, 5, 5, 5])
    assert torch.equal(saved["state"]["meters"], meters)


def test_state_dict_holds_only_plain_types() -> None:
    env = TownletVectorEnv(level=L3, num_envs=4, agents_per_town=2)
    env.reset(seed=0)
    saved = env.state_dict()
    assert saved["level"] == L3 and saved["num_envs"] == 4 and saved["agents_per_town"] == 2

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return isinstance(value, (torch.Tensor, str, int, float))

    assert plain(saved)


def test_state_dict_before_reset_raises() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        TownletVectorEnv(level=L0, num_envs=2).state_dict()


# --- refusals -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def l1_state() -> dict[str, Any]:
    env = TownletVectorEnv(level=L1, num_envs=4, agents_per_town=2)
    env.reset(seed=0)
    return env.state_dict()


def test_a_state_from_another_level_names_both_levels(l1_state: dict[str, Any]) -> None:
    env = TownletVectorEnv(level=L2, num_envs=4, agents_per_town=2)
    with pytest.raises(StateMismatchError, match=f"(?s){L1}.*{L2}"):
        env.load_state_dict(l1_state)


def test_a_level_with_the_same_name_but_other_rules_is_refused(
    tmp_path: Path, l1_state: dict[str, Any]
) -> None:
    pack = tmp_path / L1
    shutil.copytree(BUILTIN_DIR / L1, pack)
    meters = (pack / "meters.yaml").read_text().replace("drain: 0.005", "drain: 0.006", 1)
    (pack / "meters.yaml").write_text(meters)
    env = TownletVectorEnv(level=pack, num_envs=4, agents_per_town=2)
    with pytest.raises(StateMismatchError, match="hash"):
        env.load_state_dict(l1_state)


def _edited(saved: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = {**saved, "state": dict(saved["state"])}
    for key, value in changes.items():
        if key.startswith("state."):
            out["state"][key[6:]] = value
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("env_kwargs", "changes", "match"),
    [
        ({"num_envs": 6, "agents_per_town": 2}, {}, "num_envs=4.*6"),
        ({"num_envs": 4, "agents_per_town": 4}, {}, "agents_per_town=2.*4"),
        ({}, {"format": 99}, "format 99"),
        ({}, {"state.meters": torch.zeros(4, 7)}, "meters"),
        ({}, {"state.position": torch.zeros(4, 2, dtype=torch.int32)}, "position"),
        ({}, {"state.clock": [0, 0]}, "clock"),
        ({}, {"difficulty": torch.ones(5)}, "difficulty"),
        ({}, {"difficulty": torch.tensor([1.0, -1.0, 1.0, 1.0])}, "difficulty"),
        ({}, {"state.difficulty": torch.full((4,), float("nan"))}, "difficulty"),
        ({}, {"generator": torch.zeros(16, dtype=torch.uint8)}, "generator"),
        ({}, {"state": torch.zeros(3)}, "state"),
    ],
)
@pytest.mark.parametrize("reset_first", [False, True], ids=["fresh", "reset"])
def test_states_that_do_not_fit_are_refused(
    l1_state: dict[str, Any], env_kwargs: dict, changes: dict, match: str, reset_first: bool
) -> None:
    env = TownletVectorEnv(level=L1, **{"num_envs": 4, "agents_per_town": 2, **env_kwargs})
    if reset_first:
        env.reset(seed=5)
        before = {k: v.clone() for k, v in env.state.tensors().items()}
    with pytest.raises(StateMismatchError, match=match):
        env.load_state_dict(_edited(l1_state, changes))
    if reset_first:  # a refused load leaves the env as it was
        for name, tensor in env.state.tensors().items():
            assert torch.equal(tensor, before[name]), name


@pytest.mark.parametrize("key", ["format", "level_hash", "generator", "state", "num_envs"])
def test_missing_keys_are_named(l1_state: dict[str, Any], key: str) -> None:
    env = TownletVectorEnv(level=L1, num_envs=4, agents_per_town=2)
    broken = {k: v for k, v in l1_state.items() if k != key}
    with pytest.raises(StateMismatchError, match=f"lacks.*{key}"):
        env.load_state_dict(broken)


def test_a_missing_state_tensor_is_refused(l1_state: dict[str, Any]) -> None:
    env = TownletVectorEnv(level=L1, num_envs=4, agents_per_town=2)
    broken = {**l1_state, "state": {k: v for k, v in l1_state["state"].items() if k != "cells"}}
    with pytest.raises(StateMismatchError, match="cells"):
        env.load_state_dict(broken)


def test_not_a_dict_is_refused() -> None:
    env = TownletVectorEnv(level=L1, num_envs=4)
    with pytest.raises(StateMismatchError, match="dict"):
        env.load_state_dict([1, 2, 3])  # type: ignore[arg-type]

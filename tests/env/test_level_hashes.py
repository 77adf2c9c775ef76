"""The content hashes of the built-in levels L0-L3, pinned.

A saved env state or checkpoint names its level by this hash, so a change to the config models
that alters the hash of an existing pack (a new optional file or field that leaks into the
hashed payload, say) would orphan every saved run. New features must leave these alone.
"""

from __future__ import annotations

import pytest

from townlet_env import load_level

PINNED = {
    "L0_minimal": "d30fbd4fced5ef63b1e620076e0de12b4e3d57d3e3329bad6dc85aea8b1dbe5c",
    "L0_5_dual_resource": "6f1453ca94961d4ed0ba986a5bd8ba84ae05e8a9c87f07dbbd7165988f661417",
    "L1_full_observability": "868c3e915c3862033ecc5f65acb09249f4e1875c3a40b028e73d59e50c355455",
    "L2_partial_observability": "cc1fbd857bd0b890649e919f4b8cb1c2239c77b7ffad3bb4943b513980f0b01c",
    "L3_temporal_mechanics": "07c4679b0f713e9b84b29c7106dd7d1eff6d9f37d5db7b19b3330fd564664fcc",
}


@pytest.mark.parametrize("level", list(PINNED))
def test_builtin_level_hash_is_unchanged(level: str) -> None:
    assert load_level(level).content_hash() == PINNED[level]


def trajectory_digest(level: str) -> str:
    """SHA-256 of 30 ticks of three towns of two agents: observations, masks, rewards, flags."""
    import hashlib

    import torch

    from townlet_env import TownletVectorEnv

    env = TownletVectorEnv(level, num_envs=6, agents_per_town=2)
    obs, info = env.reset(seed=7)
    rng = torch.Generator().manual_seed(3)
    digest = hashlib.sha256(obs.numpy().tobytes())
    for _ in range(30):
        actions = torch.multinomial(info["action_mask"].float(), 1, generator=rng).squeeze(1)
        obs, reward, terminated, truncated, info = env.step(actions)
        for t in (obs, reward, terminated, truncated, info["action_mask"], info["meters"]):
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()


TRAJECTORIES = {
    "L0_minimal": "8f0228d9f432626071c139811b2fc07f8a03ce9ee304307687b9449979f99989",
    "L0_5_dual_resource": "0af60ec5f4102361b9e1aec876385e0af873530f118e00e3a6e5dd8c1d4266e5",
    "L1_full_observability": "f04144efbe240f02008a281f4360a9c092aab63be3b1900aa807d6715d107cf3",
    "L2_partial_observability": "88a8b0cb02d53d043e2dd385b1df99706c2485bdad2e99bbc731eb33c2cae2e4",
    "L3_temporal_mechanics": "63605d6a28734ebfaf4ed9c4802f7f268f5ae94748db9a91cf8ea36bddb9afee",
}


@pytest.mark.parametrize("level", list(PINNED))
def test_builtin_level_plays_as_before(level: str) -> None:
    """Same seed, same actions: the same observations, rewards and flags as before L4 existed."""
    assert trajectory_digest(level) == TRAJECTORIES[level]


def test_social_level_plays_as_before_the_economy() -> None:
    """L4_social: the same trajectory as before economy.yaml existed (the economy's code paths
    and draws stay off on a level without it)."""
    assert (
        trajectory_digest("L4_social") == "76f54b9fb870aa8fedcfd318b542af984f7f84539d0dfcf545396f286ee59f76"
    )

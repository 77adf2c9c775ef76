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

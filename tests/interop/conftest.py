"""Fixtures for the Gymnasium, PettingZoo and SB3 interoperability tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from townlet_env.config.loader import BUILTIN_DIR


@pytest.fixture
def short_pack(tmp_path: Path) -> Path:
    """L0_minimal as a pack directory with max_steps 5, so that episodes truncate quickly."""
    pack = tmp_path / "L0_short"
    shutil.copytree(BUILTIN_DIR / "L0_minimal", pack)
    world = pack / "world.yaml"
    world.write_text(world.read_text().replace("max_steps: 1000", "max_steps: 5"))
    assert "max_steps: 5" in world.read_text()
    return pack

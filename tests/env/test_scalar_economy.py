"""The scalar engine on the economy (L5_town) beyond the lockstep of tests/env/test_scalar_engine.py:
the economy options L5 leaves off, and what gym.make and PettingZoo report of it."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import yaml
from tests.env.test_scalar_engine import lockstep, same_bits

from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core.town import Town


def test_scalar_engine_equals_the_core_on_the_economy_options_l5_leaves_off(tmp_path: Path) -> None:
    """Base prices, a population cap below the town's slots, a respawn delay, the nightly reset
    and quick evictions (the differential test's economy variant)."""
    pack = tmp_path / "economy"
    shutil.copytree(BUILTIN_DIR / "L5_town", pack)
    data = yaml.safe_load((pack / "economy.yaml").read_text())
    data["prices"] = {"Bed": 1.5, "FastFood": 0.5, "Shower": 2.0}
    data["lifecycle"] = {
        "population_cap": 4,
        "respawn_delay": 2,
        "evict_broke_ticks": 3,
        "evict_firings": 1,
        "nightly_reset": {"meters": {"energy": [0.5, 1.0], "satiation": [0.4, 0.9]}},
    }
    (pack / "economy.yaml").write_text(yaml.safe_dump(data))
    tally: Counter = Counter()
    for seed in range(4):
        tally += lockstep(str(pack), 6, seed, ticks=80, crowded=True, frail=seed == 1)
    for seed in range(2):
        tally += lockstep(str(pack), 6, 100 + seed, ticks=100, crowded=False)
    for what in ("wages", "evicted_broke", "evicted_fired", "deaths", "uses", "nights"):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"


def test_gym_and_pettingzoo_report_the_economy_as_the_tensor_path_does() -> None:
    """On L5_town, `gym.make`'s info carries the town's events and the agent's exit reason, and
    PettingZoo's infos each agent's: the values a tensor town stepped alongside gives."""
    import gymnasium as gym

    import townlet_env

    env = gym.make("Townlet-v0", level="L5_town")
    obs, info = env.reset(seed=7)
    town = env.unwrapped.town  # type: ignore[attr-defined]
    tensor = Town("L5_town", 1, 1, autoreset=False)
    tensor.set_state(town.state)
    tensor.generator.set_state(town.generator.get_state())
    assert info["exit_reason"] == 0 and info["events"].dtype == bool
    rng, seen = random.Random(1), Counter()
    for _ in range(400):
        action = rng.choice([a for a, ok in enumerate(info["action_mask"].tolist()) if ok])
        obs, reward, terminated, truncated, info = env.step(action)
        want = tensor.step(torch.tensor([action]))
        events = tensor.economy_info()["events"][0]
        assert info["events"].tolist() == events.tolist()
        assert info["exit_reason"] == int(want.economy["exit_reason"][0])
        assert same_bits(obs, want.obs[0]) and np.float32(reward) == want.reward[0].numpy()
        seen["events"] += int(events.sum())
        if terminated or truncated:
            break
    assert seen["events"] > 0, dict(seen)

    par = townlet_env.parallel_env(level="L5_town")
    observations, infos = par.reset(seed=3)
    tensor = Town("L5_town", 6, 6, autoreset=False)
    tensor.set_state(par.town.state)
    tensor.generator.set_state(par.town.generator.get_state())
    for _ in range(200):
        if not par.agents:
            break
        actions = {a: int(par.action_space(a).sample(observations[a]["action_mask"])) for a in par.agents}
        observations, _, _, _, infos = par.step(actions)
        full = [actions.get(f"agent_{i}", tensor.level.wait_action) for i in range(6)]
        want = tensor.step(torch.tensor(full))
        for agent, agent_info in infos.items():
            i = int(agent.split("_")[1])
            assert agent_info["exit_reason"] == int(want.economy["exit_reason"][i]), agent
            assert agent_info["events"].tolist() == tensor.economy_info()["events"][i].tolist()

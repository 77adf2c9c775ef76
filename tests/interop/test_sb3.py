"""Stable-Baselines3, sb3-contrib and SuperSuit train on Townlet (short CPU runs).

Every path of docs/api.md is trained here for a few thousand steps, long enough that agents
die and towns reset, with warnings as errors: SB3, SuperSuit and Gymnasium report API misuse as
warnings. The adapter behaviour that docs/api.md describes (how truncation reaches SB3, how
SuperSuit treats dead agents) is pinned by tests too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")
ss = pytest.importorskip("supersuit")

from pettingzoo.utils.wrappers import BaseParallelWrapper  # noqa: E402
from sb3_contrib import MaskablePPO  # noqa: E402
from sb3_contrib.common.maskable.utils import get_action_masks  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor  # noqa: E402

import townlet_env  # noqa: E402
from townlet_env import TownletEnv, TownletVectorEnv  # noqa: E402
from townlet_env.interop import SB3VecEnv, SuperSuitSB3Fix  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("error")]

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}


class Recorder(BaseParallelWrapper):
    """Sits under SuperSuit and counts what reaches the town: resets, deaths, masked actions."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.resets = 0
        self.deaths = 0
        self.truncations = 0
        self.illegal = 0
        self.steps = 0  # steps of the current town
        self.ended_at = 0  # the step on which the last town's agents all left
        self.masks: dict[str, np.ndarray] = {}

    def reset(self, seed: int | None = None, options: dict | None = None) -> Any:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.resets += 1
        self.steps = 0
        self.masks = {a: infos[a]["action_mask"] for a in infos}
        return obs, infos

    def step(self, actions: dict) -> Any:
        self.illegal += sum(int(self.masks[a][int(act)] == 0) for a, act in actions.items())
        had_agents = bool(self.env.agents)
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        self.steps += 1
        if had_agents and not self.env.agents:
            self.ended_at = self.steps
        self.deaths += sum(terms.values())
        self.truncations += sum(truncs.values())
        self.masks = {a: infos[a]["action_mask"] for a in infos}
        return obs, rewards, terms, truncs, infos


def supersuit_town(num_towns: int, max_cycles: int = 150, num_agents: int = 2) -> tuple[Any, list[Recorder]]:
    """The SuperSuit chain of docs/api.md, with a Recorder under black_death."""
    env = townlet_env.parallel_env(
        level="L0_minimal", num_agents=num_agents, max_cycles=max_cycles, mask_in_obs=False
    )
    env = ss.black_death_v3(Recorder(env))
    env = ss.pettingzoo_env_to_vec_env_v1(env)
    venv = ss.concat_vec_envs_v1(env, num_towns, num_cpus=0, base_class="stable_baselines3")
    recorders = [markov.par_env.env for markov in venv.venv.vec_envs]
    return venv, recorders


class InvalidActions(BaseCallback):
    """Counts the masked actions that a policy chose, from the gym env's info."""

    def __init__(self) -> None:
        super().__init__()
        self.invalid = 0
        self.steps = 0

    def _on_step(self) -> bool:
        self.invalid += sum(int(info.get("invalid_action", False)) for info in self.locals["infos"])
        self.steps += len(self.locals["infos"])
        return True


# --- PettingZoo town through SuperSuit -----------------------------------------------------------


def test_ppo_through_supersuit_as_shipped() -> None:
    # The chain exactly as SuperSuit documents it, without our fixes: trains, no warnings.
    venv, recorders = supersuit_town(num_towns=2)
    model = PPO("MlpPolicy", venv, **SMALL)
    model.learn(total_timesteps=1_600)
    assert sum(r.deaths for r in recorders) >= 2  # agents died ...
    assert all(r.resets >= 3 for r in recorders)  # ... and towns ended and were reset


def test_what_supersuit_lacks_under_sb3_2() -> None:
    # The gaps that SuperSuitSB3Fix fills (SuperSuit 3.11, SB3 2.9, Gymnasium 1.x). If SuperSuit
    # fills them itself one day, this test says so and docs/api.md can be simplified.
    venv, _ = supersuit_town(num_towns=1)
    with pytest.raises(AttributeError, match="seed"):
        PPO("MlpPolicy", venv, seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        VecMonitor(venv)
    with pytest.raises(AttributeError, match="has_attr"):
        MaskablePPO("MlpPolicy", venv, **SMALL).learn(total_timesteps=64)


def test_maskable_ppo_through_supersuit_with_the_fix() -> None:
    venv, recorders = supersuit_town(num_towns=2)
    venv = VecMonitor(SuperSuitSB3Fix(venv))  # VecMonitor would warn on SuperSuit's env alone
    model = MaskablePPO("MlpPolicy", venv, seed=0, **SMALL)  # seed= fails on SuperSuit's env alone
    model.learn(total_timesteps=1_600)
    assert sum(r.deaths for r in recorders) >= 2 and all(r.resets >= 3 for r in recorders)
    assert sum(r.illegal for r in recorders) == 0  # the masks reached the policy
    assert len(model.ep_info_buffer) >= 8
    lengths = [info["l"] for info in model.ep_info_buffer]
    assert max(lengths) <= 151  # a town's length, plus SuperSuit's extra black-death step


def test_supersuit_fix_seeds_reproducibly() -> None:
    def first_obs(seed: int) -> np.ndarray:
        venv = SuperSuitSB3Fix(supersuit_town(num_towns=2)[0])
        venv.seed(seed)
        return venv.reset()

    a, b, c = first_obs(0), first_obs(0), first_obs(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[:2], a[2:])  # town copies get seed and seed + 1


def test_how_supersuit_reports_death_and_the_end_of_a_town() -> None:
    # Pins the SuperSuit behaviour that docs/api.md describes (SuperSuit 3.11):
    # * a dead agent's slot gets zero observations and zero reward until its town ends;
    # * SB3 sees done for every slot of a town at once, with no TimeLimit.truncated, so SB3
    #   treats the end of a town as a termination;
    # * black_death_v3 combines terminations AND truncations, so the end arrives one step late
    #   (an extra all-zero step); with the upstream fix (OR) it arrives on the last real step.
    venv, recorders = supersuit_town(num_towns=1, max_cycles=150, num_agents=2)
    obs = venv.reset()
    wait = 5
    saw_dead_slot = False
    t = 0
    while t < 200:
        t += 1
        venv.step_async(np.full(2, wait))
        obs, rewards, dones, infos = venv.step_wait()
        if dones.any():
            break
        dead = ~obs.any(axis=1)
        if dead.any():
            saw_dead_slot = True
            assert (rewards[dead] == 0).all()
    assert dones.all()
    ended_at = recorders[0].ended_at  # both WAIT and die of exhaustion after about 100 ticks
    assert 95 <= ended_at < 150 and t in (ended_at, ended_at + 1)
    assert all("TimeLimit.truncated" not in info for info in infos)
    assert recorders[0].deaths == 2 and recorders[0].resets == 2
    if t == ended_at + 1:  # the extra step: terminal observations are black
        assert all(not info["terminal_observation"].any() for info in infos)
    assert not saw_dead_slot or t == ended_at + 1


# --- gym.make: one agent per env -----------------------------------------------------------------


@pytest.mark.parametrize("level", townlet_env.builtin_levels())
def test_sb3_check_env(level: str) -> None:
    sb3_check_env(TownletEnv(level))


def test_ppo_on_gym_make_with_sb3_vectorization() -> None:
    venv = make_vec_env("Townlet-v0", n_envs=4, seed=0, env_kwargs={"level": "L0_minimal"})
    counter = InvalidActions()
    model = PPO("MlpPolicy", venv, seed=0, **SMALL)
    model.learn(total_timesteps=2_000, callback=counter)
    assert len(model.ep_info_buffer) >= 4  # episodes ended and the envs were reset
    assert counter.invalid > 0  # plain PPO knows nothing of masks


def test_maskable_ppo_on_gym_make_uses_the_masks() -> None:
    venv = make_vec_env("Townlet-v0", n_envs=4, seed=0, env_kwargs={"level": "L0_minimal"})
    counter = InvalidActions()
    model = MaskablePPO("MlpPolicy", venv, seed=0, **SMALL)
    model.learn(total_timesteps=2_000, callback=counter)
    assert len(model.ep_info_buffer) >= 4
    assert counter.steps >= 2_000 and counter.invalid == 0
    np.testing.assert_array_equal(get_action_masks(venv)[0], venv.envs[0].unwrapped.action_masks())


def test_truncation_reaches_sb3_as_truncation(short_pack: Path) -> None:
    def run(venv: Any) -> list[dict]:
        venv.reset()
        for _ in range(5):
            venv.step_async(np.full(venv.num_envs, 5))
            _, _, dones, infos = venv.step_wait()
        assert dones.all()
        return infos

    for infos in (
        run(DummyVecEnv([lambda: gym.make("Townlet-v0", level=short_pack)] * 2)),
        run(SB3VecEnv(TownletVectorEnv(short_pack, num_envs=2))),
    ):
        assert all(info["TimeLimit.truncated"] for info in infos)
        assert all(info["terminal_observation"].shape == (12,) for info in infos)
        progress = TownletEnv(short_pack).level.layout["episode_progress"].offset
        assert all(info["terminal_observation"][progress] == 1.0 for info in infos)


# --- the torch vector env seen by SB3 ------------------------------------------------------------


def test_maskable_ppo_on_the_torch_vector_env() -> None:
    venv = VecMonitor(SB3VecEnv(TownletVectorEnv("L0_minimal", num_envs=8, agents_per_town=2)))
    model = MaskablePPO("MlpPolicy", venv, seed=0, n_steps=64, batch_size=128, n_epochs=2)
    model.learn(total_timesteps=4_096)
    assert len(model.ep_info_buffer) >= 8  # agents died and were replaced
    with pytest.raises(TypeError):
        SB3VecEnv(townlet_env.TorchToNumpy(TownletVectorEnv("L0_minimal", num_envs=2)))


def test_benchmark_script_runs(tmp_path: Path) -> None:
    from benchmarks import sb3_l0_minimal as module

    out = tmp_path / "result.json"
    results = module.main(["--timesteps", "1024", "--envs", "4", "--eval-episodes", "4", "--out", str(out)])
    assert out.is_file()
    assert set(results["policies"]) == {"trained", "random_masked", "random", "scripted"}
    assert all(p["mean_episode_length"] > 0 for p in results["policies"].values())
    assert results["policies"]["scripted"]["mean_episode_length"] > 340


def test_docs_record_the_benchmark_figures() -> None:
    import json

    results = json.loads((ROOT / "benchmarks" / "results" / "sb3_l0_minimal.json").read_text())
    page = (ROOT / "docs" / "api.md").read_text()
    for name, stats in results["policies"].items():
        figure = f"{stats['mean_episode_length']:.1f}"
        assert figure in page, f"docs/api.md does not show the {name} figure {figure} of the results file"
    trained = results["policies"]["trained"]["mean_episode_length"]
    assert trained > 1.5 * results["policies"]["random_masked"]["mean_episode_length"]

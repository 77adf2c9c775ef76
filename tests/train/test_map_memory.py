"""The map student (`network.kind: map`): its memory checked against the Town's true state on
random play, cleared at each new life, and the student trained by DAgger, resumed exactly and
played by eval through the policy protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_env.policies.scripted import Knowledge, ScriptedPolicy
from townlet_train import cli
from townlet_train.algos.dagger import Dagger
from townlet_train.config import load_config
from townlet_train.models import MapStudent, field_shapes, policy_network
from townlet_train.models.map import EXPLORE
from townlet_train.policy import ModelPolicy, greedy, load_policy
from townlet_train.trainers import make_trainer

from .helpers import short_level, tiny_config
from .test_resume import resumed_beside_whole

MAP = {"network__kind": "map", "network__hidden": [32], "network__field_embed": 8}
DAGGER = {"kind": "dagger", "beta_steps": 2048, "learning_starts": 256, "batch_size": 64, "capacity": 2048}


def student(env: TownletVectorEnv) -> MapStudent:
    cfg = tiny_config(algorithm=DAGGER, **MAP)
    network = policy_network(cfg.network, env, env.level.n_actions, "dagger")
    assert isinstance(network, MapStudent)
    return network


@pytest.mark.parametrize("level", ["L2_partial_observability", "L3_temporal_mechanics"])
def test_the_map_holds_what_the_window_showed_this_life(level: str, tmp_path: Path) -> None:
    """Independently of the memory's code: an affordance is known once the 5x5 window around
    the agent covered it in this life, and its filled offset is then the full view's; the
    explored fraction counts the cells any window of this life covered."""
    env = TownletVectorEnv(str(short_level(tmp_path, max_steps=60, base=level)), 16)
    obs, info = env.reset(seed=3)
    network = student(env)
    state = network.initial_state(16, torch.device("cpu"))
    layout = {name: (offset, size) for name, offset, size in env.observation_layout}
    w, h = env.level.width, env.level.height
    scale = torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=torch.float32)
    covered = torch.zeros(16, h, w, dtype=torch.bool)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    rng = torch.Generator().manual_seed(0)
    known_some = ended = 0
    for _ in range(150):
        town = env.town.state
        pos = town.position  # [N, 2] (x, y)
        near_x = (xs[None] - pos[:, 0, None, None]).abs() <= 2
        covered |= near_x & ((ys[None] - pos[:, 1, None, None]).abs() <= 2)
        targets = town.affordance_position[town.town].long()  # [N, A, 2]
        visible = covered[torch.arange(16)[:, None], targets[..., 1], targets[..., 0]]  # [N, A]
        inputs, state = network.memory.step(obs, state)
        offset, size = layout["affordances"]
        field = inputs[:, offset : offset + size].view(16, 3, -1)
        channel = env.level.aff_channel
        assert torch.equal(field[:, 2, channel], visible.float())
        truth = (targets - pos[:, None, :]).float() / scale
        torch.testing.assert_close(field[:, 0:2, channel].transpose(1, 2), truth * visible[..., None])
        explore = inputs[:, -EXPLORE:]
        torch.testing.assert_close(explore[:, 0], 1.0 - covered.flatten(1).float().mean(dim=1))
        known_some += int(visible.any(dim=1).sum())
        mask = info["action_mask"]
        actions = torch.rand(mask.shape, generator=rng).masked_fill(~mask, -1).argmax(1)
        obs, _, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        ended += int(done.sum())
        state = ModelPolicy(network).reset(state, done)
        covered[done] = False
    assert known_some > 0 and ended > 0  # both branches of the comparison were exercised


def test_a_map_student_trains_resumes_exactly_and_plays_in_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    level = short_level(tmp_path, max_steps=40, base="L2_partial_observability")
    cfg = tiny_config(
        level=str(level),
        algorithm=DAGGER,
        total_steps=1536,
        checkpoint__include_replay=True,
        checkpoint__every_steps=512,
        **MAP,
    )
    a, b = resumed_beside_whole(cfg, tmp_path, 1024, 1536)
    assert a["updates"] == b["updates"] > 10
    for key, value in a["network"].items():
        assert torch.equal(b["network"][key], value), key
    for x, y in zip(a["actor_state"], b["actor_state"], strict=True):
        assert torch.equal(x, y) and x.abs().sum() > 0
    path = tmp_path / "a" / "checkpoints" / "step_000000001536.pt"
    greedy_policy, loaded = load_policy(path)
    assert greedy_policy.select is greedy and loaded.network.kind == "map"
    sampled, _ = load_policy(path, sample=True, rng=torch.Generator().manual_seed(0))
    assert sampled.sampled
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(path), "--episodes", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3


def test_the_dagger_agent_learns_from_the_filled_observations_it_acted_on(tmp_path: Path) -> None:
    cfg = tiny_config(level="L2_partial_observability", algorithm=DAGGER, total_steps=64, **MAP)
    trainer = make_trainer(cfg, tmp_path / "run")
    agent = trainer.agent
    assert isinstance(agent, Dagger) and not agent.windows and isinstance(agent.online, MapStudent)
    trainer.run()
    stored = agent.replay.obs[: len(agent.replay)]
    assert stored.shape[1] == trainer.obs_dim + EXPLORE
    offset = next(o for n, o, _ in trainer.env.observation_layout if n == "affordances")
    assert stored[:, offset : offset + 42].abs().sum() > 0  # the partial view leaves it at zero


@pytest.mark.parametrize("kind", ["ppo", "dqn"])
def test_a_map_network_is_refused_outside_dagger(kind: str) -> None:
    with pytest.raises(ValueError, match=r"network\.kind 'map' is a DAgger student"):
        load_config(None, level="L2_partial_observability", algorithm={"kind": kind}, network__kind="map")


def test_a_map_network_needs_a_partial_view(tmp_path: Path) -> None:
    env = TownletVectorEnv("L0_minimal", 2)
    assert "window" not in field_shapes(env.level)
    with pytest.raises(ValueError, match="needs an observation field 'window'"):
        student(env)
    cfg = tiny_config(level="L1_full_observability", algorithm=DAGGER, **MAP)
    with pytest.raises(ValueError, match="level 'L1_full_observability' shows the whole town"):
        make_trainer(cfg, tmp_path / "run")


def _random_states(level: str, steps: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """(env, obs, info) at each of `steps` steps of random play on 64 slots."""
    env = TownletVectorEnv(level, 64)
    obs, info = env.reset(seed=seed)
    rng = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield env, obs, info
        mask = info["action_mask"]
        obs, _, _, _, info = env.step(torch.rand(mask.shape, generator=rng).masked_fill(~mask, -1).argmax(1))


def test_a_teacher_that_knows_the_whole_map_is_the_plain_teacher() -> None:
    for env, obs, info in _random_states("L3_temporal_mechanics", 60):
        teacher = ScriptedPolicy(env.town)
        everything = Knowledge(
            known=torch.ones(64, env.level.n_affordances, dtype=torch.bool),
            frontier=torch.zeros(64, 2, dtype=torch.long),
            unexplored=torch.zeros(64, dtype=torch.bool),
        )
        assert torch.equal(teacher(obs, info, everything), teacher(obs, info))


def test_a_teacher_that_knows_nothing_walks_to_the_frontier() -> None:
    moved = 0
    for env, obs, info in _random_states("L2_partial_observability", 40, seed=1):
        state, level = env.town.state, env.level
        frontier = torch.tensor([[0, 0]]).expand(64, 2)
        nothing = Knowledge(
            known=torch.zeros(64, level.n_affordances, dtype=torch.bool),
            frontier=frontier,
            unexplored=torch.ones(64, dtype=torch.bool),
        )
        action = ScriptedPolicy(env.town)(obs, info, nothing)
        assert not (action == level.interact_action).any()
        away = (state.position - frontier).abs().sum(dim=1) > 0
        delta = level.move_delta[action]
        before = (state.position - frontier).abs().sum(dim=1)
        closer = (state.position + delta - frontier).abs().sum(dim=1) < before
        assert closer[away].all()
        moved += int(away.sum())
    assert moved > 0


def test_teacher_knows_student_map_explores_where_the_plain_teacher_rests(tmp_path: Path) -> None:
    algorithm = {**DAGGER, "teacher_knows": "student_map"}
    cfg = tiny_config(level="L2_partial_observability", algorithm=algorithm, **MAP)
    trainer = make_trainer(cfg, tmp_path / "run")
    plain = ScriptedPolicy(trainer.env.town)(trainer.obs, trainer.info)
    trainer.act()
    labels = trainer.agent.labels
    rest = trainer.env.level.action_names.index("REST")
    assert (plain == rest).all()  # a new life's meters are full: nothing is urgent
    assert (labels < 4).all()  # so the informed teacher walks to what the window has not shown
    with pytest.raises(ValueError, match=r"teacher_knows 'student_map' needs network\.kind 'map'"):
        load_config(None, level="L2_partial_observability", algorithm=algorithm, network__kind="lstm")

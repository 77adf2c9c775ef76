"""Recurrent DAgger: the student's LSTM state is zeroed where an episode ends, learning replays
exactly what the actor computed, a run resumes bit for bit, and its checkpoints play in eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_train import cli
from townlet_train.algos.dagger import Dagger, affordance_positions, window_logits
from townlet_train.evaluate import evaluate
from townlet_train.models import RecurrentActorCritic, build_network, is_init_of
from townlet_train.policy import ModelPolicy, Sample, greedy, load_policy
from townlet_train.run.loop import Trainer
from townlet_train.trainers import make_trainer

from .helpers import short_level, tiny_config
from .test_resume import resumed_beside_whole

DAGGER = {"kind": "dagger", "beta_steps": 4096, "learning_starts": 256, "batch_size": 64, "capacity": 2048}
LSTM = {"network__kind": "lstm", "network__lstm_hidden": 16}


def recurrent_config(tmp_path: Path, max_steps: int = 12, **overrides: Any) -> Any:
    level = short_level(tmp_path, max_steps=max_steps, base="L2_partial_observability")
    algorithm = {
        **DAGGER,
        "sequence_length": 8,
        "burn_in": 4,
        "recall_weight": 1.0,
        **overrides.pop("algorithm", {}),
    }
    return tiny_config(level=str(level), algorithm=algorithm, **LSTM, **overrides)


def played(trainer: Trainer, steps: int) -> dict[str, torch.Tensor]:
    """Collect `steps` env steps without learning; the observations, the step ends and the logits
    the acting student computed, each [N, T, ...]."""
    agent: Dagger = trainer.agent  # type: ignore[assignment]
    seen: dict[str, list[torch.Tensor]] = {"obs": [], "logits": [], "done": []}
    acting = agent.logits

    def recording(obs: torch.Tensor) -> torch.Tensor:
        seen["obs"].append(obs.clone())
        seen["logits"].append(acting(obs))
        return seen["logits"][-1]

    agent.logits = recording  # type: ignore[method-assign]
    store = agent.store

    def storing(step: dict[str, torch.Tensor]) -> None:
        seen["done"].append(step["done"].clone())
        store(step)

    agent.store = storing  # type: ignore[method-assign]
    from townlet_train.run.metrics import Metrics

    metrics = Metrics(trainer.run_dir, list(trainer.env.meter_names), False)
    for _ in range(steps):
        trainer.collect(metrics)
    metrics.abandon()
    return {k: torch.stack(v, dim=1) for k, v in seen.items()}


def test_the_student_state_is_zeroed_where_an_episode_ends(tmp_path: Path) -> None:
    """12-tick episodes over 40 steps: replaying the acting network from a zero state with a reset
    at each new life gives exactly the actor's logits; without the resets it does not."""
    cfg = recurrent_config(tmp_path, algorithm={"learning_starts": 10**6})
    trainer = make_trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.agent, Dagger) and trainer.agent.windows
    seen = played(trainer, 40)
    assert int(seen["done"].sum()) >= 3 * cfg.env.num_envs  # every slot lived several lives
    net: RecurrentActorCritic = trainer.agent.online  # type: ignore[assignment]
    zeros = torch.zeros(cfg.env.num_envs, net.hidden_size)
    with torch.no_grad():
        features = net.features(seen["obs"])
        for reset, same in ((is_init_of(seen["done"]), True), (torch.zeros_like(seen["done"]), False)):
            memory, _ = net.lstm.unroll(features, (zeros, zeros), reset)
            replayed = net.head(features, memory)
            assert torch.allclose(replayed, seen["logits"], atol=1e-5) == same


def test_learning_replays_the_windows_as_the_actor_saw_them(tmp_path: Path) -> None:
    """With the network fixed, a stored window replayed from its stored state through the burn-in
    gives the actor's own logits at every learned step, across episode boundaries."""
    cfg = recurrent_config(tmp_path, algorithm={"learning_starts": 10**6})
    trainer = make_trainer(cfg, tmp_path / "run")
    seen = played(trainer, 36)
    agent: Dagger = trainer.agent  # type: ignore[assignment]
    n, seq, burn_in = cfg.env.num_envs, 8, 4
    assert len(agent.replay) == 4 * n  # windows end at steps 12, 20, 28, 36
    with torch.no_grad():
        for k in range(4):
            rows = torch.arange(k * n, (k + 1) * n)
            window = {key: value[rows] for key, value in agent.replay.store.items()}
            start = k * seq  # window k covers steps start .. start + 12
            assert torch.equal(window["obs"], seen["obs"][:, start : start + burn_in + seq])
            logits, _ = window_logits(agent.online, window, burn_in)  # type: ignore[arg-type]
            acted = seen["logits"][:, start + burn_in : start + burn_in + seq]
            torch.testing.assert_close(logits, acted, atol=1e-5, rtol=1e-5)


def test_recurrent_dagger_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = recurrent_config(
        tmp_path,
        max_steps=40,
        total_steps=1536,
        checkpoint__include_replay=True,
        checkpoint__every_steps=512,
    )
    final = resumed_beside_whole(cfg, tmp_path, 1024, 1536)
    assert final[0]["updates"] == final[1]["updates"] > 10
    assert final[0]["counters"] == final[1]["counters"]
    for part in ("network", "collector"):
        flat = [dict(_leaves(f[part])) for f in final]
        assert flat[0].keys() == flat[1].keys()
        for key, value in flat[0].items():
            assert (
                torch.equal(flat[1][key], value) if isinstance(value, torch.Tensor) else flat[1][key] == value
            ), key
    for x, y in zip(final[0]["actor_state"], final[1]["actor_state"], strict=True):
        assert torch.equal(x, y) and x.abs().sum() > 0


def _leaves(tree: Any, prefix: str = "") -> Any:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix, tree


def test_recurrent_policies_never_pick_an_illegal_action() -> None:
    """L3 masks INTERACT off most cells and outside opening hours; a student whose logits favour
    the illegal actions still only picks legal ones, greedy or sampled."""
    env = TownletVectorEnv("L3_temporal_mechanics", 32)
    obs, info = env.reset(seed=3)
    torch.manual_seed(0)
    net = build_network("lstm", env.observation_layout, env.level.n_actions, [16], 4, 8, "dagger")
    with torch.no_grad():
        net.logits.bias.copy_(torch.tensor([0, 0, 0, 0, 50.0, 0, 0, 0]))  # INTERACT above all
    gen = torch.Generator().manual_seed(0)
    policies = [ModelPolicy(net), ModelPolicy(net, Sample(gen))]
    states = [p.initial_state(32, env.device) for p in policies]
    illegal_interact = 0
    for _ in range(60):
        mask = info["action_mask"]
        illegal_interact += int((~mask[:, 4]).sum())
        actions = []
        for i, policy in enumerate(policies):
            action, states[i] = policy.act(obs, mask, states[i])
            assert mask[torch.arange(32), action].all()
            actions.append(action)
        assert bool((actions[0] == 4).eq(mask[:, 4]).all())  # greedy takes INTERACT wherever legal
        obs, _, terminated, truncated, info = env.step(actions[1])
        states = [p.reset(s, terminated | truncated) for p, s in zip(policies, states, strict=True)]
    assert illegal_interact > 0


def test_a_recurrent_dagger_checkpoint_plays_in_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = recurrent_config(tmp_path, max_steps=30, total_steps=512)
    path = Path(make_trainer(cfg, tmp_path / "run").run()["checkpoint"])
    policy, loaded = load_policy(path)
    assert policy.select is greedy and loaded.network.kind == "lstm"
    assert load_policy(path, sample=True)[0].sampled
    env = TownletVectorEnv(str(cfg.level), 3)
    obs, info = env.reset(seed=0)
    state = policy.initial_state(3, env.device)
    _, state = policy.act(obs, info["action_mask"], state)
    state = policy.reset(state, torch.tensor([True, False, False]))
    assert state[0][0, 0].abs().sum() == 0 and state[0][0, 1].abs().sum() > 0
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(path), "--episodes", "4", "--json", "--seed", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = evaluate(str(cfg.level), "learned", 4, agent=load_policy(path)[0], seed=1)
    assert printed["mean_survival"] == expected["mean_survival"] and printed["episodes"] == 4


def test_lstm_is_refused_for_bc_but_not_for_dagger() -> None:
    from townlet_env.config import ConfigError
    from townlet_train.config import load_config

    assert load_config(None, algorithm={"kind": "dagger"}, network__kind="lstm").network.kind == "lstm"
    with pytest.raises(ConfigError, match="recurrent"):
        load_config(None, algorithm={"kind": "bc"}, network__kind="lstm")


def test_the_recall_target_is_where_the_town_put_each_affordance(tmp_path: Path) -> None:
    cfg = recurrent_config(tmp_path, total_steps=512)
    trainer = make_trainer(cfg, tmp_path / "run")
    agent: Dagger = trainer.agent  # type: ignore[assignment]
    before = agent.recall.weight.detach().clone()
    assert "recall_loss" in trainer.run()
    state, level = trainer.env.town.state, trainer.env.level
    where = affordance_positions(trainer.env.town).view(-1, level.n_affordances, 2)
    assert torch.equal(where * (level.width - 1), state.affordance_position[state.town].float())
    stored = agent.replay.store["where"][: len(agent.replay)]
    assert stored.min() >= 0 and stored.max() <= 1 and stored.std() > 0.1
    assert not torch.equal(agent.recall.weight, before) and "recall" in agent.state_dict()

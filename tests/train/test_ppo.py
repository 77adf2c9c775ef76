"""PPO: GAE and the clipped objective against hand computations, truncation bootstrapping,
exact resume, and starting from a cloned student."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from townlet_train.algos.ppo import PPO as PPOLearner
from townlet_train.algos.ppo_math import clipped_policy_loss, gae, value_loss
from townlet_train.config import EnvSettings, NetworkSettings, PPOSettings, TrainConfig
from townlet_train.models import ActorCritic
from townlet_train.run.checkpoint import load_checkpoint
from townlet_train.trainers import make_trainer

from .helpers import short_level, tiny_config
from .test_resume import resumed_beside_whole

PPO = {"kind": "ppo", "rollout_steps": 16, "minibatch_size": 128, "epochs": 2}


def test_gae_matches_a_hand_computation() -> None:
    gamma, lam = 0.9, 0.8
    rewards = [[1.0, 0.0], [0.5, 2.0], [0.0, 1.0]]
    values = [[0.2, 0.4], [0.3, 0.1], [0.6, 0.5]]
    dones = [[False, False], [True, False], [False, False]]
    next_value = [0.7, 0.9]
    expected = [[0.0, 0.0] for _ in range(3)]
    for slot in range(2):
        running = 0.0
        for t in (2, 1, 0):
            following = next_value[slot] if t == 2 else values[t + 1][slot]
            live = 0.0 if dones[t][slot] else 1.0
            delta = rewards[t][slot] + gamma * following * live - values[t][slot]
            running = delta + gamma * lam * live * running
            expected[t][slot] = running
    adv, ret = gae(
        torch.tensor(rewards), torch.tensor(values), torch.tensor(dones), torch.tensor(next_value), gamma, lam
    )
    assert adv.flatten().tolist() == pytest.approx([x for row in expected for x in row], abs=1e-6)
    # by hand, slot 0 at t=1: the episode ended, so only its own reward counts
    assert adv[1, 0].item() == pytest.approx(0.5 - 0.3, abs=1e-6)
    assert adv[2, 1].item() == pytest.approx(1.0 + 0.9 * 0.9 - 0.5, abs=1e-6)  # the last step bootstraps
    assert (ret - adv).flatten().tolist() == pytest.approx([x for row in values for x in row], abs=1e-6)


def test_clipped_loss_matches_a_hand_computation() -> None:
    clip = 0.2
    old = [math.log(0.5), math.log(0.5), math.log(0.2)]
    new = [math.log(0.7), math.log(0.55), math.log(0.1)]  # ratios 1.4, 1.1, 0.5
    adv = [1.0, -2.0, -1.0]
    expected = 0.0
    for o, n, a in zip(old, new, adv, strict=True):
        ratio = math.exp(n - o)
        expected += max(-a * ratio, -a * min(max(ratio, 1 - clip), 1 + clip)) / 3
    loss, clipped = clipped_policy_loss(torch.tensor(new), torch.tensor(old), torch.tensor(adv), clip)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # (-1.2 + 2.2 + 0.8) / 3: the first ratio is clipped, the third is not (its clip would help)
    assert loss.item() == pytest.approx((-1.2 + 2.2 + 0.8) / 3, abs=1e-6)
    assert clipped.item() == pytest.approx(2 / 3)
    v = value_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([2.0]), clip=0.5)
    assert v.item() == pytest.approx(0.5 * max(1.0, (0.5 - 2.0) ** 2))


def test_truncation_bootstraps_from_the_final_observation_and_termination_does_not() -> None:
    layout = [("a", 0, 3)]
    network = ActorCritic(layout, 4, [8], 4)
    settings = PPOSettings(kind="ppo", rollout_steps=2, gamma=0.9)
    cfg = TrainConfig(env=EnvSettings(num_envs=3), network=NetworkSettings(kind="mlp"), algorithm=settings)
    env = SimpleNamespace(level=SimpleNamespace(layout=SimpleNamespace(size=3), n_actions=4))
    agent = PPOLearner(cfg, network, env, torch.device("cpu"))
    final_obs = torch.randn(3, 3)
    with torch.no_grad():
        tail = network.value(final_obs)
    agent.pending = {
        "action": torch.zeros(3, dtype=torch.long),
        "logprob": torch.zeros(3),
        "value": torch.zeros(3),
    }
    agent.store(
        {
            "obs": torch.zeros(3, 3),
            "mask": torch.ones(3, 4, dtype=torch.bool),
            "reward": torch.ones(3),
            "terminated": torch.tensor([False, True, False]),
            "truncated": torch.tensor([True, False, False]),
            "done": torch.tensor([True, True, False]),
            "final_obs": final_obs,
        }
    )
    reward = agent.rollout.reward[0]
    assert reward[0].item() == pytest.approx(1.0 + 0.9 * tail[0].item())  # truncated: bootstrapped
    assert reward[1].item() == 1.0 and reward[2].item() == 1.0  # terminated, and still running
    assert agent.rollout.done[0].tolist() == [True, True, False]


def test_ppo_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = tiny_config(
        level=str(short_level(tmp_path, max_steps=40)),
        total_steps=1536,
        algorithm=PPO,
        checkpoint__every_steps=384,  # not a multiple of the 256-step rollout: saved mid-rollout
    )
    final = resumed_beside_whole(cfg, tmp_path, 768, 1536)
    assert final[0]["iterations"] == final[1]["iterations"] == 6
    for key, value in final[0]["network"].items():
        assert torch.equal(final[1]["network"][key], value), key


def test_ppo_starts_from_a_dagger_student(tmp_path: Path) -> None:
    dagger = {"kind": "dagger", "learning_starts": 64, "batch_size": 64}
    source = Path(
        make_trainer(tiny_config(total_steps=512, algorithm=dagger), tmp_path / "d").run()["checkpoint"]
    )
    ppo = {**PPO, "init_from": str(source), "critic_warmup": 2, "kl_start": 1.0, "kl_steps": 10_000}
    ppo["anneal_lr"] = False  # annealed, the one iteration at the run's end would have lr 0
    trainer = make_trainer(tiny_config(total_steps=256, algorithm=ppo), tmp_path / "p")
    assert isinstance(trainer.agent, PPOLearner) and trainer.agent.teacher is not None
    student = load_checkpoint(source)["network"]
    actor = {
        k: v.clone()
        for k, v in trainer.agent.online.state_dict().items()
        if k.startswith(("actor", "logits"))
    }
    assert all(torch.equal(student[k], v) for k, v in actor.items())
    critic = trainer.agent.online.values.weight.detach().clone()
    result = trainer.run()  # one iteration, inside the critic's warm-up: the actor must not move
    assert result["kl_weight"] > 0
    after = trainer.agent.online.state_dict()
    assert all(torch.equal(after[k], v) for k, v in actor.items())
    assert not torch.equal(after["values.weight"], critic)


def test_init_from_refuses_a_dqn_checkpoint(tmp_path: Path) -> None:
    from townlet_train.run.loop import Trainer

    dqn = Path(Trainer(tiny_config(total_steps=256), tmp_path / "q").run()["checkpoint"])
    with pytest.raises(ValueError, match="a dqn checkpoint has no policy network"):
        make_trainer(tiny_config(algorithm={**PPO, "init_from": str(dqn)}), tmp_path / "p")


def test_ppo_learns_the_rnd_bonus_it_is_paid_and_resumes_exactly(tmp_path: Path) -> None:
    """With exploration.rnd, the rollout's rewards carry the novelty bonus and each iteration
    trains RND's predictor on the rollout's states (it used to stay untrained under PPO)."""
    from townlet_train.trainers import make_trainer

    cfg = tiny_config(
        level=str(short_level(tmp_path, max_steps=40)),
        total_steps=1536,
        algorithm=PPO,
        exploration__rnd__enabled=True,
        exploration__rnd__lr=0.01,
        checkpoint__every_steps=384,
    )
    fresh = make_trainer(cfg, tmp_path / "fresh")
    assert fresh.rnd is not None
    before = {k: v.clone() for k, v in fresh.rnd.predictor.state_dict().items()}
    with torch.no_grad():
        error_before = float(fresh.rnd.error(fresh.obs).mean())
    a, b = resumed_beside_whole(cfg, tmp_path, 768, 1536)
    for key, value in a["rnd"]["modules"].items():
        assert torch.equal(b["rnd"]["modules"][key], value), key
    learned = {k.removeprefix("predictor."): v for k, v in a["rnd"]["modules"].items() if "predictor" in k}
    assert any(not torch.equal(learned[k], v) for k, v in before.items())
    fresh.rnd.load_state_dict(a["rnd"]["modules"])
    with torch.no_grad():
        assert float(fresh.rnd.error(fresh.obs).mean()) < error_before
    with pytest.raises(ValueError, match=r"exploration\.rnd adds a bonus"):
        tiny_config(algorithm={"kind": "dagger"}, exploration__rnd__enabled=True)

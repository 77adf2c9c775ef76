"""One policy protocol: every kind of checkpoint (and the scripted and random policies) is played
by `evaluate` through `Policy.act`, and masked sampling never picks an illegal action."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from townlet_env.policies import RandomPolicy, ScriptedAgent
from townlet_train.evaluate import evaluate, load_policy_network
from townlet_train.loop import Trainer
from townlet_train.policy import GreedyPolicy, load_policy, masked_sample

from .helpers import tiny_config


def trained_checkpoint(tmp_path: Path, **overrides: object) -> Path:
    trainer = Trainer(tiny_config(total_steps=512, **overrides), tmp_path / "run")
    return Path(trainer.run()["checkpoint"])


def test_dqn_checkpoint_plays_through_the_protocol_as_before(tmp_path: Path) -> None:
    path = trained_checkpoint(tmp_path)
    policy, cfg = load_policy(path)
    assert isinstance(policy, GreedyPolicy) and cfg.algorithm.kind == "dqn"
    by_protocol = evaluate("L0_minimal", "learned", 4, agent=policy, seed=3)
    by_network = evaluate("L0_minimal", "learned", 4, network=load_policy_network(path, "cpu")[0], seed=3)
    assert by_protocol == by_network


def test_recurrent_dqn_checkpoint_carries_and_resets_its_state(tmp_path: Path) -> None:
    path = trained_checkpoint(
        tmp_path, network__kind="lstm", replay__kind="sequence", replay__sequence_length=4, replay__burn_in=2
    )
    from townlet_env import TownletVectorEnv

    policy, _ = load_policy(path)
    obs, info = TownletVectorEnv("L0_minimal", 3).reset(seed=0)
    state = policy.initial_state(3, torch.device("cpu"))
    _, state = policy.act(obs, info["action_mask"], state)
    assert state[0].abs().sum() > 0
    state = policy.reset(state, torch.tensor([True, False, False]))
    assert state[0][0, 0].abs().sum() == 0 and state[0][0, 1].abs().sum() > 0
    assert evaluate("L0_minimal", "learned", 2, agent=policy, seed=1)["episodes"] == 2


@pytest.mark.parametrize("kind", ["scripted", "random"])
def test_scripted_and_random_are_policies(kind: str) -> None:
    result = evaluate("L0_minimal", kind, 4, seed=2)
    assert result["policy"] == kind and result["mean_survival"] > 0


def test_scripted_agent_matches_the_scripted_policy() -> None:
    from townlet_env import TownletVectorEnv
    from townlet_env.policies.scripted import ScriptedPolicy

    env = TownletVectorEnv("L1_full_observability", 8)
    obs, info = env.reset(seed=4)
    agent = ScriptedAgent(env.town)
    action, _ = agent.act(obs, info["action_mask"], agent.initial_state(8, env.device))
    assert torch.equal(action, ScriptedPolicy(env.town)(obs, info))


@pytest.mark.parametrize("seed", range(20))
def test_masked_sampling_never_picks_an_illegal_action(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n, a = 64, 1 + seed % 9
    mask = torch.rand(n, a, generator=gen) < 0.4
    mask[torch.arange(n), torch.randint(0, a, (n,), generator=gen)] = True  # at least one legal
    logits = torch.randn(n, a, generator=gen) * (1 + 10 * seed)  # illegal ones may be the largest
    for _ in range(5):
        action = masked_sample(logits, mask, gen)
        assert mask[torch.arange(n), action].all()
        random_action, _ = RandomPolicy(gen).act(torch.zeros(n, 1), mask, None)
        assert mask[torch.arange(n), random_action].all()


@pytest.mark.parametrize(
    "algorithm",
    [
        {"kind": "ppo", "rollout_steps": 8, "minibatch_size": 64, "epochs": 1},
        {"kind": "dagger", "learning_starts": 64, "batch_size": 64},
    ],
    ids=lambda a: a["kind"],
)
def test_policy_network_checkpoints_play_in_eval(
    algorithm: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from townlet_train import cli
    from townlet_train.policy import SampledPolicy
    from townlet_train.trainers import make_trainer

    path = Path(
        make_trainer(tiny_config(total_steps=256, algorithm=algorithm), tmp_path / "run").run()["checkpoint"]
    )
    greedy, cfg = load_policy(path)
    assert isinstance(greedy, GreedyPolicy) and cfg.algorithm.kind == algorithm["kind"]
    sampled, _ = load_policy(path, sample=True, rng=torch.Generator().manual_seed(0))
    assert isinstance(sampled, SampledPolicy)
    assert evaluate("L0_minimal", "learned", 3, agent=sampled, seed=1)["episodes"] == 3
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(path), "--episodes", "3", "--json", "--seed", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (
        printed["mean_survival"]
        == evaluate("L0_minimal", "learned", 3, agent=greedy, seed=1)["mean_survival"]
    )
    command = ["eval", "--checkpoint", str(path), "--episodes", "3", "--json", "--seed", "1", "--sample"]
    assert cli.main(command) == 0
    printed = json.loads(capsys.readouterr().out)
    again, _ = load_policy(path, sample=True, rng=torch.Generator().manual_seed(1))
    assert printed["sampled"] is True
    sampled_result = evaluate("L0_minimal", "learned", 3, agent=again, seed=1)
    assert printed["mean_survival"] == sampled_result["mean_survival"]

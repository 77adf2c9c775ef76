"""One policy protocol: every kind of checkpoint (and the scripted and random policies) is played
by `evaluate` through `Policy.act`, and masked sampling never picks an illegal action."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from townlet_env.policies import RandomPolicy, ScriptedAgent
from townlet_train.evaluate import evaluate, load_policy_network
from townlet_train.policy import greedy, load_policy, masked_sample
from townlet_train.run.loop import Trainer

from .helpers import tiny_config


def trained_checkpoint(tmp_path: Path, **overrides: object) -> Path:
    trainer = Trainer(tiny_config(total_steps=512, **overrides), tmp_path / "run")
    return Path(trainer.run()["checkpoint"])


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "old_checkpoints"


def test_dqn_checkpoint_plays_through_the_protocol_as_before() -> None:
    """A DQN checkpoint written by the trainer before the redesign (tests/fixtures/old_checkpoints)
    plays, through the protocol, the episodes that trainer's `eval` reported; and each action is
    the best legal one of the Q-values, even where an illegal action's Q-value is the largest."""
    import json

    from townlet_env import TownletVectorEnv

    path = FIXTURES / "dqn_dueling.pt"
    recorded = json.loads((FIXTURES / "expected.json").read_text())["results"]["dqn_dueling"]
    policy, cfg = load_policy(path)
    assert policy.select is greedy and cfg.algorithm.kind == "dqn"
    result = evaluate("L0_minimal", "learned", 2, agent=policy, seed=7, details=True)
    assert result == recorded
    network = load_policy_network(path, "cpu")[0]
    obs, info = TownletVectorEnv("L0_minimal", 64).reset(seed=5)
    with torch.no_grad():
        q = network(obs)
    mask = info["action_mask"].clone()
    mask[torch.arange(64), q.argmax(1)] = False  # the best action is now illegal everywhere
    action, _ = policy.act(obs, mask, ())
    assert mask[torch.arange(64), action].all()
    assert torch.equal(q.gather(1, action[:, None])[:, 0], q.masked_fill(~mask, -1e9).max(1).values)


def test_recurrent_dqn_checkpoint_carries_and_resets_its_state(tmp_path: Path) -> None:
    path = trained_checkpoint(tmp_path, network__kind="lstm", network__sequence_length=4, network__burn_in=2)
    from townlet_env import TownletVectorEnv

    policy, _ = load_policy(path)
    obs, info = TownletVectorEnv("L0_minimal", 3).reset(seed=0)
    state = policy.initial_state(3, torch.device("cpu"))
    _, state = policy.act(obs, info["action_mask"], state)
    assert state[0].abs().sum() > 0
    state = policy.reset(state, torch.tensor([True, False, False]))
    assert state[0][0, 0].abs().sum() == 0 and state[0][0, 1].abs().sum() > 0
    assert evaluate("L0_minimal", "learned", 2, agent=policy, seed=1)["episodes"] == 2


def test_scripted_and_random_are_policies() -> None:
    """Through `evaluate`: the scripted baseline keeps its agents alive far longer than random
    play, and random play takes only legal actions, every legal one about equally often."""
    scripted = evaluate("L1_full_observability", "scripted", 8, seed=2, details=True)
    random = evaluate("L1_full_observability", "random", 8, seed=2, details=True)
    assert scripted["policy"] == "scripted" and random["policy"] == "random"
    assert scripted["mean_survival"] > 3 * random["mean_survival"]
    assert sum(scripted["uses_per_episode"].values()) > 5  # it walks to the affordances and uses them
    gen = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, False, True, True, False]]).repeat(3000, 1)
    action, state = RandomPolicy(gen).act(torch.zeros(3000, 1), mask, None)
    counts = torch.bincount(action, minlength=5)
    assert state is None and counts[1] == counts[4] == 0
    assert all(abs(int(c) - 1000) < 120 for c in counts[[0, 2, 3]])


def test_scripted_agent_matches_the_scripted_policy() -> None:
    from townlet_env import TownletVectorEnv
    from townlet_env.policies.scripted import ScriptedPolicy

    """Given only the observation and the mask (what the protocol passes), the baseline acts as
    the scripted policy does with the env's whole info, step after step of play."""
    env = TownletVectorEnv("L1_full_observability", 8)
    obs, info = env.reset(seed=4)
    agent, scripted = ScriptedAgent(env.town), ScriptedPolicy(env.town)
    state = agent.initial_state(8, env.device)
    taken = set()
    for _ in range(120):
        action, state = agent.act(obs, info["action_mask"], state)
        assert torch.equal(action, scripted(obs, info))
        taken |= set(action.tolist())
        obs, _, terminated, truncated, info = env.step(action)
        state = agent.reset(state, terminated | truncated)
    assert env.level.interact_action in taken and len(taken) >= 4


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
    from townlet_train.trainers import make_trainer

    path = Path(
        make_trainer(tiny_config(total_steps=256, algorithm=algorithm), tmp_path / "run").run()["checkpoint"]
    )
    greedy_policy, cfg = load_policy(path)
    assert greedy_policy.select is greedy and cfg.algorithm.kind == algorithm["kind"]
    sampled, _ = load_policy(path, sample=True, rng=torch.Generator().manual_seed(0))
    assert sampled.sampled
    assert evaluate("L0_minimal", "learned", 3, agent=sampled, seed=1)["episodes"] == 3
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(path), "--episodes", "3", "--json", "--seed", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (
        printed["mean_survival"]
        == evaluate("L0_minimal", "learned", 3, agent=greedy_policy, seed=1)["mean_survival"]
    )
    command = ["eval", "--checkpoint", str(path), "--episodes", "3", "--json", "--seed", "1", "--sample"]
    assert cli.main(command) == 0
    printed = json.loads(capsys.readouterr().out)
    again, _ = load_policy(path, sample=True, rng=torch.Generator().manual_seed(1))
    assert printed["sampled"] is True
    sampled_result = evaluate("L0_minimal", "learned", 3, agent=again, seed=1)
    assert printed["mean_survival"] == sampled_result["mean_survival"]

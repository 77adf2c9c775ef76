"""Recurrent PPO: learning replays each slot's rollout exactly as the actor played it (state
zeroed at every new life), a run resumes bit for bit, and it starts from a recurrent DAgger
student."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_train.algos.ppo import PPO as PPOLearner
from townlet_train.models import masked_logits
from townlet_train.run.checkpoint import load_checkpoint
from townlet_train.run.metrics import Metrics
from townlet_train.trainers import make_trainer

from .helpers import short_level, tiny_config
from .test_resume import resumed_beside_whole

PPO = {"kind": "ppo", "rollout_steps": 16, "minibatch_size": 64, "epochs": 2}
LSTM = {"network__kind": "lstm", "network__lstm_hidden": 16}


def recurrent_config(tmp_path: Path, max_steps: int = 12, **overrides: Any) -> Any:
    level = short_level(tmp_path, max_steps=max_steps, base="L2_partial_observability")
    algorithm = {**PPO, **overrides.pop("algorithm", {})}
    return tiny_config(level=str(level), algorithm=algorithm, **{**LSTM, **overrides})


def test_learning_replays_the_rollout_as_the_actor_played_it(tmp_path: Path) -> None:
    """A 40-step rollout of 12-tick episodes: the learner's unroll from the stored start state gives
    the actor's log-probabilities and values at every step; without the resets it does not."""
    cfg = recurrent_config(tmp_path, algorithm={"rollout_steps": 40, "minibatch_size": 40 * 16})
    trainer = make_trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.agent, PPOLearner) and trainer.recurrent
    metrics = Metrics(trainer.run_dir, list(trainer.env.meter_names), False)
    for _ in range(8):  # a first stretch, so that the rollout starts from a state that is not zero
        trainer.collect(metrics)
    trainer.agent.rollout.t = 0
    for _ in range(40):
        trainer.collect(metrics)
    metrics.abandon()
    r = trainer.agent.rollout
    assert r.start[0].abs().sum() > 0 and int(r.done.sum()) >= 2 * cfg.env.num_envs
    data = {k: getattr(r, k) for k in ("obs", "mask", "action", "logprob", "value", "done")}
    for resets in (True, False):
        if not resets:
            data["done"] = torch.zeros_like(data["done"])
        learner = trainer.agent
        (batch,) = list(learner._minibatches({**data, "advantage": r.value, "return": r.value}, trainer.rng))
        with torch.no_grad():
            logits, value, _ = learner._outputs(batch, learner.online, 0.0)
        logprob = torch.log_softmax(masked_logits(logits, batch["mask"]), -1)
        logprob = logprob.gather(1, batch["action"][:, None]).squeeze(1)
        same = torch.allclose(logprob, batch["logprob"], atol=1e-5) and torch.allclose(
            value, batch["value"], atol=1e-5
        )
        assert same == resets


def test_recurrent_ppo_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = recurrent_config(
        tmp_path,
        max_steps=40,
        total_steps=1536,
        checkpoint__every_steps=384,  # not a multiple of the 256-step rollout: saved mid-rollout
    )
    final = resumed_beside_whole(cfg, tmp_path, 768, 1536)
    assert final[0]["iterations"] == final[1]["iterations"] == 6
    for key, value in final[0]["network"].items():
        assert torch.equal(final[1]["network"][key], value), key
    for x, y in zip(final[0]["actor_state"], final[1]["actor_state"], strict=True):
        assert torch.equal(x, y)


def test_recurrent_ppo_starts_from_a_recurrent_dagger_student(tmp_path: Path) -> None:
    dagger = {
        "kind": "dagger",
        "learning_starts": 64,
        "batch_size": 64,
        "capacity": 2048,
        "sequence_length": 8,
    }
    level = short_level(tmp_path, max_steps=12, base="L2_partial_observability")
    source_cfg = tiny_config(level=str(level), total_steps=512, algorithm=dagger, **LSTM)
    source = Path(make_trainer(source_cfg, tmp_path / "d").run()["checkpoint"])
    ppo = {"init_from": str(source), "critic_warmup": 2, "kl_start": 1.0, "anneal_lr": False}
    trainer = make_trainer(recurrent_config(tmp_path, total_steps=256, algorithm=ppo), tmp_path / "p")
    assert isinstance(trainer.agent, PPOLearner) and trainer.recurrent and trainer.agent.teacher is not None
    student = load_checkpoint(source)["network"]
    actor = {k: v.clone() for k, v in trainer.agent.online.state_dict().items() if not k.startswith("critic")}
    actor = {k: v for k, v in actor.items() if not k.startswith("values")}
    assert any(k.startswith("lstm.") for k in actor)
    assert all(torch.equal(student[k], v) for k, v in actor.items())
    critic = trainer.agent.online.values.weight.detach().clone()
    assert trainer.run()["kl_weight"] > 0  # one iteration, inside the critic's warm-up
    after = trainer.agent.online.state_dict()
    assert all(torch.equal(after[k], v) for k, v in actor.items())
    assert not torch.equal(after["values.weight"], critic)
    # a recurrent student does not start a feed-forward policy
    with pytest.raises(ValueError, match=r"network\.kind is 'lstm'"):
        make_trainer(recurrent_config(tmp_path, algorithm=ppo, network__kind="mlp"), tmp_path / "m")

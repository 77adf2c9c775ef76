"""RND: running normalisation, the annealed weight, and that the weighted bonus really reaches the
rewards stored in replay (an earlier implementation logged the weight but never applied it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from townlet_train.config import RndSettings
from townlet_train.exploration import RND, RunningStd
from townlet_train.run.loop import Trainer
from townlet_train.run.metrics import Metrics

from .helpers import replay_of, tiny_config


def test_running_std_matches_the_batch_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    stats = RunningStd(torch.device("cpu"))
    chunks = [torch.randn(n, generator=g) * 3 + 2 for n in (1, 7, 50, 200)]
    for chunk in chunks:
        stats.update(chunk)
    everything = torch.cat(chunks).double()
    assert float(stats.mean) == pytest.approx(float(everything.mean()), rel=1e-4)
    assert float(stats.std) == pytest.approx(float(everything.std(unbiased=False)), rel=1e-3)


def test_rnd_weight_anneals_linearly() -> None:
    rnd = RND(6, RndSettings(enabled=True, weight_start=0.5, weight_end=0.1, anneal_steps=100))
    assert rnd.weight(0) == pytest.approx(0.5)
    assert rnd.weight(50) == pytest.approx(0.3)
    assert rnd.weight(100) == pytest.approx(0.1)
    assert rnd.weight(10_000) == pytest.approx(0.1)


def test_rnd_bonus_is_normalised_and_novelty_falls_with_training() -> None:
    torch.manual_seed(0)
    rnd = RND(6, RndSettings(enabled=True, lr=1e-2))
    g = torch.Generator().manual_seed(1)
    seen = torch.rand(64, 6, generator=g)
    for _ in range(3):
        bonus = rnd.intrinsic(seen)
    raw = rnd.error(seen).detach()
    assert torch.allclose(bonus, raw / rnd.reward_std.std, rtol=1e-5)
    assert bool((bonus >= 0).all())
    error = lambda obs: float(rnd.error(obs).detach().mean())  # noqa: E731
    before = error(seen)
    for _ in range(200):
        rnd.learn(seen)
    after = error(seen)
    assert after < 0.2 * before
    novel = torch.rand(64, 6, generator=g) * 5 + 3
    assert error(novel) > after  # unseen observations stay novel
    # the target network never learns
    assert all(not p.requires_grad for p in rnd.target.parameters())


def collect_rewards(tmp_path: Path, name: str, steps: int, **rnd: object) -> tuple[torch.Tensor, Trainer]:
    cfg = tiny_config(
        algorithm__n_step=1,
        algorithm__learning_starts=10**9,
        algorithm__replay__capacity=4096,
        exploration__rnd__enabled=True,
        **{f"exploration__rnd__{k}": v for k, v in rnd.items()},
    )
    trainer = Trainer(cfg, tmp_path / name)
    metrics = Metrics(tmp_path / name, trainer.env.meter_names, tensorboard=False)
    try:
        for _ in range(steps):
            trainer.collect(metrics)
    finally:
        metrics.close()
    replay = replay_of(trainer)
    return replay.reward[: len(replay)].clone().view(steps, -1), trainer


def test_rnd_weight_is_applied_to_stored_rewards(tmp_path: Path) -> None:
    steps = 40
    off, t_off = collect_rewards(tmp_path, "w0", steps, weight_start=0.0, weight_end=0.0)
    full, t_full = collect_rewards(tmp_path, "w1", steps, weight_start=1.0, weight_end=1.0)
    annealed, _ = collect_rewards(
        tmp_path, "anneal", steps, weight_start=1.0, weight_end=0.0, anneal_steps=steps * 16
    )
    # the same trajectories (the weight changes only what is stored), so weight 0 stores the
    # extrinsic reward and weight 1 adds a strictly positive bonus
    assert torch.equal(t_off.env.state.meters, t_full.env.state.meters)
    bonus = full - off
    assert bool((bonus > 0).all())
    assert float(t_off.episodes.running["intrinsic"].abs().sum()) == 0.0
    assert float(t_full.episodes.running["intrinsic"].sum()) > 0.0
    # annealed: the bonus of step k is weight(k) times the full bonus
    weight = 1.0 - torch.arange(steps, dtype=torch.float32)[:, None] * 16 / (steps * 16)
    assert torch.allclose(annealed - off, weight * bonus, atol=1e-5)

"""Masked epsilon-greedy, masked bootstrap targets, double vs plain DQN, Huber vs MSE, and the
two target-network schedules (hard copy every M updates, Polyak averaging)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from townlet_train.algos.dqn import DQN
from townlet_train.config import DQNSettings, EpsilonSettings, HardTarget, PolyakTarget, TrainConfig
from townlet_train.data.replay import Batch
from townlet_train.exploration import EpsilonGreedy
from townlet_train.models import masked_argmax
from townlet_train.run.loop import Trainer

from .helpers import tiny_config

N_ACTIONS = 4


class TableQ(nn.Module):
    """Q(s) read from a table: obs[:, 0] is the state index. Lets a test set every Q-value."""

    recurrent = False

    def initial_state(self, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        return ()

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone().float())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table[obs[:, 0].long()]


def batch_of(next_state: int, next_mask: list[bool], reward: float = 0.5, discount: float = 0.9) -> Batch:
    return Batch(
        obs=torch.tensor([[0.0]]),
        action=torch.tensor([0]),
        reward=torch.tensor([reward]),
        next_obs=torch.tensor([[float(next_state)]]),
        next_mask=torch.tensor([next_mask]),
        discount=torch.tensor([discount]),
        weight=torch.ones(1),
        index=torch.tensor([0]),
    )


# what the DQN learner reads of its env: one observation number, N_ACTIONS actions
ENV = SimpleNamespace(
    level=SimpleNamespace(layout=SimpleNamespace(size=1), n_actions=N_ACTIONS, max_steps=100)
)


def learner(online: torch.Tensor, target_table: torch.Tensor, **settings: object) -> DQN:
    cfg = TrainConfig(env={"num_envs": 1}, algorithm=DQNSettings(**settings, replay={"capacity": 512}))  # type: ignore[arg-type]
    dqn = DQN(cfg, TableQ(online), ENV, torch.device("cpu"))  # type: ignore[arg-type]
    with torch.no_grad():
        dqn.target.table.copy_(target_table)
    return dqn


def target_of(dqn: DQN, batch: Batch) -> float:
    td, q = dqn.td_errors(batch, dqn.online)
    return float((q - td).detach())  # y = q - (q - y)


# --- masked action choice ----------------------------------------------------------------------


def random_masks(rows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(rows, 8, generator=g) < 0.4
    mask[:, 5] |= ~mask.any(dim=1)  # at least one legal action per row (WAIT, as in the env)
    return mask


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_epsilon_greedy_never_picks_a_masked_action(epsilon: float) -> None:
    mask = random_masks(4096, seed=1)
    q = torch.randn(4096, 8, generator=torch.Generator().manual_seed(2)) * 10
    q[~mask] += 1000.0  # the masked actions look best: a greedy branch that ignored the mask would take them
    greedy = masked_argmax(q, mask)
    explorer = EpsilonGreedy(EpsilonSettings(), 4096, torch.device("cpu"))
    action = explorer.select(greedy, mask, epsilon, torch.Generator().manual_seed(3))
    assert bool(mask.gather(1, action[:, None]).all())
    if epsilon == 0.0:
        assert torch.equal(action, greedy)
    explored = (action != greedy).float().mean()
    # a random pick differs from the greedy one unless only one action is legal or it hits greedy
    if epsilon == 1.0:
        assert explored > 0.4
    # the random branch covers every legal action about uniformly
    if epsilon == 1.0:
        legal_counts = mask.sum(dim=1)
        rows = legal_counts == 3
        picks = torch.stack(
            [(mask[rows].cumsum(1).gather(1, action[rows, None]) == k).float().mean() for k in (1, 2, 3)]
        )
        assert torch.allclose(picks, torch.full((3,), 1 / 3), atol=0.06), picks


def test_masked_argmax_ignores_illegal_actions() -> None:
    q = torch.tensor([[5.0, 1.0, 3.0], [0.0, -1.0, -2.0]])
    mask = torch.tensor([[False, True, True], [False, False, True]])
    assert masked_argmax(q, mask).tolist() == [2, 2]


def test_epsilon_schedule_is_linear_then_flat() -> None:
    explorer = EpsilonGreedy(EpsilonSettings(start=1.0, end=0.1, decay_steps=1000), 3, torch.device("cpu"))
    assert explorer.epsilon(0) == pytest.approx(1.0)
    assert explorer.epsilon(500) == pytest.approx(0.55)
    assert explorer.epsilon(1000) == pytest.approx(0.1)
    assert explorer.epsilon(10**9) == pytest.approx(0.1)
    assert explorer.per_slot(500).tolist() == pytest.approx([0.55] * 3)


def test_spread_fans_the_slots_ends_out_geometrically_as_in_ape_x() -> None:
    settings = EpsilonSettings(start=1.0, end=0.4, decay_steps=1000, spread=7.0)
    explorer = EpsilonGreedy(settings, 8, torch.device("cpu"))
    ends = explorer.per_slot(10**9)
    assert ends.tolist() == pytest.approx([0.4 ** (1 + 7 * i / 7) for i in range(8)])
    assert explorer.per_slot(0).tolist() == pytest.approx([1.0] * 8)  # all start at `start`
    halfway = explorer.per_slot(500)
    assert halfway.tolist() == pytest.approx(((1.0 + ends) / 2).tolist())
    assert explorer.epsilon(10**9) == pytest.approx(float(ends.mean()))
    # each slot explores at its own rate
    mask = torch.ones(8, 8, dtype=torch.bool)
    greedy = torch.zeros(8, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    explored = (
        torch.stack([explorer.select(greedy, mask, ends, gen) != greedy for _ in range(4000)]).float().mean(0)
    )
    expected = ends * 7 / 8  # a random pick equals the greedy one with probability 1/8
    assert torch.allclose(explored, expected, atol=0.03), (explored, expected)


@pytest.mark.parametrize("epsilon_start", [1.0, 0.0])
def test_trainer_actions_are_always_legal(epsilon_start: float, tmp_path: Path) -> None:
    """Through the whole act -> env.step path, on the level with the most masking."""
    cfg = tiny_config(
        level="L1_full_observability",
        algorithm__epsilon__start=epsilon_start,
        algorithm__epsilon__end=epsilon_start,
    )
    trainer = Trainer(cfg, tmp_path)
    for _ in range(40):
        mask = trainer.info["action_mask"]
        action, _ = trainer.act()
        assert bool(mask.gather(1, action[:, None]).all())
        trainer.obs, _, _, _, trainer.info = trainer.env.step(action)
        assert not bool(trainer.info["invalid_action"].any())


# --- TD targets --------------------------------------------------------------------------------


def test_bootstrap_ignores_illegal_next_actions() -> None:
    # state 1 is the next state; its best action (0) is illegal there
    table = torch.tensor([[0.0, 0, 0, 0], [10.0, 1.0, 2.0, -1.0]])
    for double in (False, True):
        dqn = learner(table, table, double=double)
        y = target_of(dqn, batch_of(1, [False, True, True, True], reward=0.5, discount=0.9))
        assert y == pytest.approx(0.5 + 0.9 * 2.0), double  # the legal max, not 10
        y_all = target_of(dqn, batch_of(1, [True, True, True, True], reward=0.5, discount=0.9))
        assert y_all == pytest.approx(0.5 + 0.9 * 10.0)


def test_termination_does_not_bootstrap() -> None:
    table = torch.tensor([[0.0, 0, 0, 0], [10.0, 1.0, 2.0, -1.0]])
    dqn = learner(table, table)
    assert target_of(dqn, batch_of(1, [True] * 4, reward=0.7, discount=0.0)) == pytest.approx(0.7)


def test_double_and_plain_targets_differ_as_expected() -> None:
    online = torch.tensor([[0.0, 0, 0, 0], [100.0, 5.0, 0.0, 1.0]])
    target = torch.tensor([[0.0, 0, 0, 0], [50.0, 1.0, 2.0, 3.0]])
    mask = [False, True, True, False]
    batch = batch_of(1, mask, reward=0.0, discount=1.0 - 1e-6)
    # double: the online net chooses (action 1, the legal argmax of online), the target evaluates it
    assert target_of(learner(online, target, double=True), batch) == pytest.approx(1.0, abs=1e-4)
    # plain: the target net both chooses and evaluates (legal argmax of target: action 2)
    assert target_of(learner(online, target, double=False), batch) == pytest.approx(2.0, abs=1e-4)


def test_huber_and_mse_losses() -> None:
    td = torch.tensor([0.5, -3.0, 1.0])
    weight = torch.tensor([1.0, 0.5, 2.0])
    huber = learner(torch.zeros(2, 4), torch.zeros(2, 4), loss="huber").loss(td, weight)
    mse = learner(torch.zeros(2, 4), torch.zeros(2, 4), loss="mse").loss(td, weight)
    assert float(huber) == pytest.approx((0.125 * 1 + 2.5 * 0.5 + 0.5 * 2) / 3)
    assert float(mse) == pytest.approx((0.25 * 1 + 9.0 * 0.5 + 1.0 * 2) / 3)


def test_update_moves_q_towards_the_target_and_uses_the_importance_weight() -> None:
    table = torch.zeros(2, 4)
    dqn = learner(table, table, lr=0.1, loss="mse", double=False)
    batch = batch_of(1, [True] * 4, reward=1.0, discount=0.0)
    td, _ = dqn.td_errors(batch, dqn.online)
    stats = dqn.update(batch, dqn.online)
    assert float(td.detach()) == pytest.approx(-1.0)
    assert stats["loss"] == pytest.approx(1.0)
    assert float(dqn.online.table.detach()[0, 0]) > 0  # towards y = 1
    assert torch.equal(dqn.online.table[0, 1:], torch.zeros(3))  # other actions untouched
    zero = learner(table, table, lr=0.1, loss="mse")
    zero.update(Batch(**{**batch.__dict__, "weight": torch.zeros(1)}), zero.online)
    assert torch.equal(zero.online.table.detach(), table)  # weight 0: no learning


# --- target network ----------------------------------------------------------------------------


def one_update(dqn: DQN) -> None:
    dqn.update(batch_of(1, [True] * 4, reward=1.0, discount=0.5), dqn.online)


def test_hard_target_copies_every_m_updates() -> None:
    dqn = learner(torch.zeros(2, 4), torch.zeros(2, 4), lr=0.1, target=HardTarget(every=3))
    frozen = dqn.target.table.detach().clone()
    for update in range(1, 7):
        one_update(dqn)
        if update % 3:
            assert torch.equal(dqn.target.table, frozen), update  # unchanged between copies
            assert not torch.equal(dqn.online.table, dqn.target.table)
        else:
            assert torch.equal(dqn.target.table, dqn.online.table), update
            frozen = dqn.target.table.detach().clone()
    assert not dqn.target.table.requires_grad


def test_polyak_target_averages_every_update() -> None:
    tau = 0.1
    dqn = learner(
        torch.zeros(2, 4), torch.full((2, 4), 2.0), lr=0.1, target=PolyakTarget(kind="polyak", tau=tau)
    )
    for _ in range(3):
        before = dqn.target.table.detach().clone()
        one_update(dqn)
        expected = (1 - tau) * before + tau * dqn.online.table.detach()
        assert torch.allclose(dqn.target.table, expected, atol=1e-7)
        assert not torch.equal(dqn.target.table, dqn.online.table)

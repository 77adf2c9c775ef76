"""Replay: n-step returns against a plain loop, the uniform ring, the sum tree and prioritized
sampling (frequencies, importance weights, priority updates)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from townlet_train.data.replay import NStepAccumulator, PrioritizedReplay, SumTree, UniformReplay

CPU = torch.device("cpu")


# --- n-step accumulation ------------------------------------------------------------------------


def random_stream(num_envs: int, steps: int, n_actions: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Per-step batches whose obs/next_obs encode (slot, t) so that outputs can be traced back."""
    g = torch.Generator().manual_seed(seed)
    slots = torch.arange(num_envs, dtype=torch.float32)
    stream = []
    for t in range(steps):
        u = torch.rand(num_envs, generator=g)
        terminated = u < 0.12
        truncated = (u >= 0.12) & (u < 0.2)
        stamp = torch.full((num_envs,), float(t))
        stream.append(
            {
                "obs": torch.stack([slots, stamp, torch.zeros(num_envs)], dim=1),
                "action": torch.randint(0, n_actions, (num_envs,), generator=g),
                "reward": torch.randn(num_envs, generator=g),
                "next_obs": torch.stack([slots, stamp, torch.ones(num_envs)], dim=1),
                "next_mask": torch.rand(num_envs, n_actions, generator=g) < 0.5,
                "terminated": terminated,
                "truncated": truncated,
            }
        )
    return stream


def reference_nstep(stream: list[dict], n: int, gamma: float) -> dict[tuple[int, int], dict]:
    """The n-step transition starting at every (slot, t), by a plain loop over the future."""
    out: dict[tuple[int, int], dict] = {}
    num_envs = stream[0]["reward"].shape[0]
    for slot in range(num_envs):
        for t in range(len(stream)):
            ret, k, ended, terminal = 0.0, 0, False, False
            while k < n and t + k < len(stream):
                step = stream[t + k]
                ret += gamma**k * float(step["reward"][slot])
                k += 1
                if bool(step["terminated"][slot]) or bool(step["truncated"][slot]):
                    ended, terminal = True, bool(step["terminated"][slot])
                    break
            if k < n and not ended:
                continue  # still pending when the stream stops
            last = stream[t + k - 1]
            out[(slot, t)] = {
                "action": int(stream[t]["action"][slot]),
                "reward": ret,
                "next_obs": last["next_obs"][slot],
                "next_mask": last["next_mask"][slot],
                "discount": 0.0 if terminal else gamma**k,
                "emitted_at": t + k - 1,
            }
    return out


@pytest.mark.parametrize(("n", "gamma"), [(1, 0.9), (2, 0.5), (3, 0.99), (5, 0.8), (8, 0.95)])
def test_nstep_matches_a_loop_on_random_streams(n: int, gamma: float) -> None:
    num_envs, steps, n_actions = 6, 80, 4
    stream = random_stream(num_envs, steps, n_actions, seed=n)
    expected = reference_nstep(stream, n, gamma)
    acc = NStepAccumulator(n, gamma, num_envs, 3, CPU)
    seen: dict[tuple[int, int], dict] = {}
    for t, step in enumerate(stream):
        out = acc.push(
            step["obs"],
            step["action"],
            step["reward"],
            step["next_obs"],
            step["next_mask"],
            step["terminated"],
            step["truncated"],
        )
        assert set(out) == {"obs", "action", "reward", "next_obs", "next_mask", "discount"}
        for i in range(out["obs"].shape[0]):
            key = (int(out["obs"][i, 0]), int(out["obs"][i, 1]))
            assert key not in seen, f"transition {key} emitted twice"
            seen[key] = {k: v[i] for k, v in out.items()}
            assert expected[key]["emitted_at"] == t, (
                f"{key} emitted at {t}, expected {expected[key]['emitted_at']}"
            )
    assert set(seen) == set(expected)
    for key, want in expected.items():
        got = seen[key]
        assert int(got["action"]) == want["action"]
        assert float(got["reward"]) == pytest.approx(want["reward"], abs=1e-5)
        assert float(got["discount"]) == pytest.approx(want["discount"], rel=1e-6, abs=1e-12)
        assert torch.equal(got["next_obs"], want["next_obs"])  # the final obs of the window
        assert torch.equal(got["next_mask"], want["next_mask"])


def push_one(acc: NStepAccumulator, t: int, reward: float, term: bool = False, trunc: bool = False) -> dict:
    obs = torch.tensor([[float(t)]])
    return acc.push(
        obs,
        torch.tensor([t % 3]),
        torch.tensor([reward]),
        obs + 100,
        torch.ones(1, 2, dtype=torch.bool),
        torch.tensor([term]),
        torch.tensor([trunc]),
    )


def test_nstep_by_hand() -> None:
    acc = NStepAccumulator(3, 0.5, 1, 1, CPU)
    assert push_one(acc, 0, 1.0)["obs"].numel() == 0
    assert push_one(acc, 1, 2.0)["obs"].numel() == 0
    out = push_one(acc, 2, 3.0)  # the window of step 0 is full
    assert out["reward"].tolist() == [1 + 0.5 * 2 + 0.25 * 3]
    assert out["discount"].tolist() == [0.125]
    assert out["next_obs"].tolist() == [[102.0]]
    # a truncation flushes the partial windows and bootstraps with gamma^k
    out = push_one(acc, 3, 4.0, trunc=True)
    rows = {
        int(o): (r, d)
        for o, r, d in zip(out["obs"][:, 0], out["reward"].tolist(), out["discount"].tolist(), strict=True)
    }
    assert rows == {1: (2 + 0.5 * 3 + 0.25 * 4, 0.125), 2: (3 + 0.5 * 4, 0.25), 3: (4.0, 0.5)}
    assert out["next_obs"][:, 0].tolist() == [103.0] * 3
    # after the end, a new episode starts with an empty window
    assert push_one(acc, 4, 1.0)["obs"].numel() == 0
    out = push_one(acc, 5, 1.0, term=True)  # a termination does not bootstrap
    assert sorted(out["obs"][:, 0].tolist()) == [4.0, 5.0]
    assert out["discount"].tolist() == [0.0, 0.0]
    assert sorted(out["reward"].tolist()) == [1.0, 1.5]


def test_nstep_state_dict_round_trip() -> None:
    stream = random_stream(4, 30, 3, seed=7)
    a, b = NStepAccumulator(3, 0.9, 4, 3, CPU), NStepAccumulator(3, 0.9, 4, 3, CPU)

    def args(s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        keys = ("obs", "action", "reward", "next_obs", "next_mask", "terminated", "truncated")
        return tuple(s[k] for k in keys)

    for step in stream[:13]:
        a.push(*args(step))
    b.load_state_dict({k: v.clone() if torch.is_tensor(v) else v for k, v in a.state_dict().items()})
    for step in stream[13:]:
        oa, ob = a.push(*args(step)), b.push(*args(step))
        for key in oa:
            assert torch.equal(oa[key], ob[key])


# --- uniform replay -----------------------------------------------------------------------------


def transitions(ids: list[int], obs_dim: int = 2, n_actions: int = 3) -> dict[str, torch.Tensor]:
    x = torch.tensor(ids, dtype=torch.float32)
    return {
        "obs": x[:, None].expand(-1, obs_dim).clone(),
        "action": torch.tensor(ids) % n_actions,
        "reward": x,
        "next_obs": (x + 0.5)[:, None].expand(-1, obs_dim).clone(),
        "next_mask": torch.ones(len(ids), n_actions, dtype=torch.bool),
        "discount": torch.full((len(ids),), 0.9),
    }


def test_uniform_ring_wraps_around() -> None:
    replay = UniformReplay(5, 2, 3, CPU)
    assert replay.add(transitions([0, 1, 2])).tolist() == [0, 1, 2]
    assert len(replay) == 3
    rows = replay.add(transitions([3, 4, 5, 6]))
    assert rows.tolist() == [3, 4, 0, 1]  # the oldest two were overwritten
    assert len(replay) == 5 and replay.cursor == 2
    assert replay.reward.tolist() == [5.0, 6.0, 2.0, 3.0, 4.0]
    assert replay.obs[:, 0].tolist() == replay.reward.tolist()
    assert replay.next_obs[:, 0].tolist() == [r + 0.5 for r in replay.reward.tolist()]
    # a batch larger than the whole buffer keeps only its newest transitions
    replay.add(transitions(list(range(10, 22))))
    assert sorted(replay.reward.tolist()) == [17.0, 18.0, 19.0, 20.0, 21.0]
    assert len(replay) == 5


def test_uniform_samples_only_filled_rows_and_round_trips() -> None:
    replay = UniformReplay(100, 2, 3, CPU)
    replay.add(transitions(list(range(7))))
    g = torch.Generator().manual_seed(0)
    batch = replay.sample(500, g)
    assert batch.index.max() < 7
    assert set(batch.reward.tolist()) == set(range(7))  # each row comes up
    assert torch.equal(batch.weight, torch.ones(500))
    assert torch.equal(batch.obs[:, 0], batch.reward)  # fields of one row stay together
    other = UniformReplay(100, 2, 3, CPU)
    other.load_state_dict(replay.state_dict())
    assert len(other) == 7 and other.cursor == replay.cursor
    assert torch.equal(other.reward, replay.reward)


# --- sum tree and prioritized replay ------------------------------------------------------------


def test_sum_tree_totals_and_inverse_cdf() -> None:
    g = torch.Generator().manual_seed(1)
    tree = SumTree(13, CPU)
    priorities = torch.rand(13, generator=g, dtype=torch.float64) + 0.01
    priorities[[3, 7]] = 0.0  # never to be found
    tree.update(torch.arange(13), priorities)
    assert float(tree.total) == pytest.approx(float(priorities.sum()), rel=1e-12)
    # every internal node holds the sum of its children
    for node in range(1, tree.capacity):
        assert float(tree.tree[node]) == pytest.approx(float(tree.tree[2 * node] + tree.tree[2 * node + 1]))
    cdf = torch.cumsum(priorities, 0)
    lower = cdf - priorities
    nonzero = priorities > 0
    # the middle of each leaf's interval finds that leaf
    assert torch.equal(tree.find((lower + priorities / 2)[nonzero]), torch.arange(13)[nonzero])
    # a fine sweep matches searchsorted on the CDF (away from rounding at the exact edges) and
    # never lands on a zero leaf
    values = torch.linspace(0, float(tree.total) * (1 - 1e-9), 5001, dtype=torch.float64)
    found = tree.find(values)
    clear = (values[:, None] - cdf[None, :]).abs().min(dim=1).values > 1e-9
    assert torch.equal(found[clear], torch.searchsorted(cdf, values, right=True)[clear])
    assert not bool(torch.isin(found, torch.tensor([3, 7])).any())
    # updates move the total
    tree.update(torch.tensor([0, 5]), torch.tensor([2.0, 0.0], dtype=torch.float64))
    priorities[0], priorities[5] = 2.0, 0.0
    assert float(tree.total) == pytest.approx(float(priorities.sum()))
    assert float(tree.tree[tree.capacity :].sum()) == pytest.approx(float(tree.total))


def test_prioritized_sampling_frequencies_follow_priority_to_the_alpha() -> None:
    alpha = 0.6
    replay = PrioritizedReplay(16, 2, 3, CPU, alpha=alpha)
    replay.add(transitions(list(range(8))))
    td = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0, 0.05, 3.0, 1.5])
    replay.update_priorities(torch.arange(8), td)
    expected = (td.double().abs() + 1e-6) ** alpha
    expected /= expected.sum()
    g = torch.Generator().manual_seed(2)
    counts = torch.zeros(8, dtype=torch.float64)
    draws = 0
    for _ in range(100):
        batch = replay.sample(256, g)
        assert batch.index.max() < 8  # never an empty row
        counts += torch.bincount(batch.index, minlength=8).double()
        draws += 256
    chi2 = float(((counts - draws * expected) ** 2 / (draws * expected)).sum())
    assert chi2 < 24.3, (chi2, (counts / draws).tolist(), expected.tolist())  # df 7, p = 0.001
    # alpha really is applied: frequencies proportional to |td| itself are rejected
    raw = td.double() / td.double().sum()
    chi2_raw = float(((counts - draws * raw) ** 2 / (draws * raw)).sum())
    assert chi2_raw > 100


def test_importance_weights() -> None:
    replay = PrioritizedReplay(16, 2, 3, CPU, alpha=1.0)
    replay.add(transitions(list(range(4))))
    replay.update_priorities(torch.arange(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    replay.beta = 1.0
    batch = replay.sample(64, torch.Generator().manual_seed(3))
    prio = replay.tree.tree[replay.tree.capacity :][:4]
    p = (prio / prio.sum())[batch.index]
    w = (4 * p) ** -1.0
    assert torch.allclose(batch.weight.double(), w / w.max(), atol=1e-6)
    assert float(batch.weight.max()) == pytest.approx(1.0)
    # with beta = 1 the weights exactly undo the sampling bias: w * P is constant
    assert torch.allclose(batch.weight.double() * p, (batch.weight.double() * p)[0].expand_as(p), rtol=1e-5)
    replay.beta = 0.0
    assert torch.equal(replay.sample(64, torch.Generator().manual_seed(3)).weight, torch.ones(64))


def test_priority_updates_and_new_rows_get_the_max_priority() -> None:
    alpha = 0.5
    replay = PrioritizedReplay(8, 2, 3, CPU, alpha=alpha)
    rows = replay.add(transitions([0, 1, 2]))
    leaves = lambda: replay.tree.tree[replay.tree.capacity :]  # noqa: E731
    assert leaves()[:3].tolist() == [1.0, 1.0, 1.0]  # new rows start at the max priority
    replay.update_priorities(rows, torch.tensor([0.0, 16.0, -4.0]))
    assert leaves()[:3].tolist() == pytest.approx(
        [(1e-6) ** alpha, (16 + 1e-6) ** alpha, (4 + 1e-6) ** alpha]
    )
    assert replay.max_priority == pytest.approx((16 + 1e-6) ** alpha)
    replay.add(transitions([3]))
    assert float(leaves()[3]) == pytest.approx((16 + 1e-6) ** alpha)
    assert float(replay.tree.total) == pytest.approx(float(leaves().sum()))
    # overwritten rows take the max priority too; the tree stays consistent
    replay.add(transitions(list(range(4, 12))))
    assert torch.allclose(leaves(), torch.full((8,), replay.max_priority, dtype=torch.float64))
    assert float(replay.tree.total) == pytest.approx(8 * replay.max_priority)
    other = PrioritizedReplay(8, 2, 3, CPU, alpha=alpha)
    other.load_state_dict(replay.state_dict())
    assert torch.equal(other.tree.tree, replay.tree.tree) and other.max_priority == replay.max_priority


@pytest.mark.parametrize("capacity", [1, 2, 3, 8, 9])
def test_sum_tree_odd_capacities(capacity: int) -> None:
    tree = SumTree(capacity, CPU)
    assert tree.capacity >= capacity
    pr = torch.arange(1, capacity + 1, dtype=torch.float64)
    tree.update(torch.arange(capacity), pr)
    assert float(tree.total) == pytest.approx(float(pr.sum()))
    cdf = torch.cumsum(pr, 0)
    for i, (lo, hi) in enumerate(itertools.pairwise([0.0, *cdf.tolist()])):
        assert int(tree.find(torch.tensor([lo + (hi - lo) / 3], dtype=torch.float64))) == i
    assert not math.isnan(float(tree.total))

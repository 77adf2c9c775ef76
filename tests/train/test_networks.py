"""Networks read their inputs by field name from the env's observation layout, and every field
reaches the output (an earlier recurrent network read the wrong slice: its inputs were zeros)."""

from __future__ import annotations

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_train.models import QNetwork, RecurrentQNetwork, build_network

LEVELS = ["L0_minimal", "L2_partial_observability"]


def layout_of(level: str) -> tuple[list[tuple[str, int, int]], int, int]:
    env = TownletVectorEnv(level, 1)
    return env.observation_layout, env.single_observation_space.shape[0], env.level.n_actions


def make(kind: str, level: str) -> tuple[torch.nn.Module, list[tuple[str, int, int]], int]:
    layout, dim, n_actions = layout_of(level)
    torch.manual_seed(0)
    net = build_network(kind, layout, n_actions, [32, 16], 8, 16)
    assert isinstance(net, RecurrentQNetwork if kind == "lstm" else QNetwork)
    return net, layout, dim


def q_of(net: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """Q [B, A] (feed-forward) or Q of the last step [B, A] of sequences obs [B, T, D] (LSTM)."""
    if getattr(net, "recurrent", False):
        q, _ = net(obs, net.initial_state(obs.shape[0], obs.device))
        return q[:, -1]
    return net(obs)


def inputs(kind: str, dim: int, batch: int = 64, steps: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    shape = (batch, steps, dim) if kind == "lstm" else (batch, dim)
    return torch.rand(shape, generator=g) * 2 - 1


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", ["mlp", "dueling", "lstm"])
def test_every_field_has_a_gradient(kind: str, level: str) -> None:
    net, layout, dim = make(kind, level)
    assert sum(size for _, _, size in layout) == dim  # the layout covers the observation
    obs = inputs(kind, dim).requires_grad_(True)
    q_of(net, obs).sum().backward()
    grad = obs.grad.abs()
    for name, offset, size in layout:
        field = grad[..., offset : offset + size]
        # every element of the field matters, not just the field as a whole
        per_element = field.reshape(-1, size).sum(dim=0)
        assert bool((per_element > 0).all()), f"{kind}: field '{name}' has inputs with no gradient"
        if kind == "lstm":  # and through the memory: the first step reaches the last Q
            assert float(field[:, 0].sum()) > 0, f"lstm: field '{name}' at t=0 does not reach t=-1"


@pytest.mark.parametrize("kind", ["mlp", "dueling", "lstm"])
def test_perturbing_any_field_changes_q(kind: str) -> None:
    net, layout, dim = make(kind, "L2_partial_observability")
    obs = inputs(kind, dim)
    with torch.no_grad():
        base = q_of(net, obs)
        for name, offset, size in layout:
            changed = obs.clone()
            changed[..., offset : offset + size] += 0.5
            assert not torch.allclose(q_of(net, changed), base), f"{kind}: field '{name}' does not change Q"


@pytest.mark.parametrize("kind", ["mlp", "dueling", "lstm"])
def test_networks_run_on_real_observations(kind: str) -> None:
    env = TownletVectorEnv("L1_full_observability", 8)
    obs, _info = env.reset(seed=0)
    net = build_network(kind, env.observation_layout, env.level.n_actions, [16], 4, 8)
    q = q_of(net, obs[:, None] if kind == "lstm" else obs)
    assert q.shape == (8, env.level.n_actions)
    assert bool(torch.isfinite(q).all())


def test_encoders_are_keyed_by_field_name() -> None:
    layout, _, n_actions = layout_of("L2_partial_observability")
    net = build_network("dueling", layout, n_actions, [16], 4, 8)
    names = {name for name, _, _ in layout}
    encoder_keys = {k.split(".")[2] for k in net.state_dict() if k.startswith("encoder.encoders.")}
    assert encoder_keys == names


def test_dueling_head_is_value_plus_centred_advantage() -> None:
    layout, dim, n_actions = layout_of("L0_minimal")
    net = build_network("dueling", layout, n_actions, [16], 4, 8)
    obs = inputs("dueling", dim, batch=5)
    with torch.no_grad():
        features = net.trunk(net.encoder(obs))
        value = net.value(features)
        q = net(obs)
    assert torch.allclose(q.mean(dim=1, keepdim=True), value, atol=1e-5)


def test_recurrent_state_carries_and_resets() -> None:
    net, _layout, dim = make("lstm", "L2_partial_observability")
    obs = inputs("lstm", dim, batch=3, steps=5)
    state = net.initial_state(3, obs.device)
    assert state[0].shape == (1, 3, 16)
    with torch.no_grad():
        whole, _ = net(obs, state)
        # stepping one observation at a time with the carried state gives the same Q
        h = state
        for t in range(5):
            q_t, h = net(obs[:, t : t + 1], h)
            assert torch.allclose(q_t[:, 0], whole[:, t], atol=1e-5)


def test_recurrent_learner_unroll_matches_the_acting_network() -> None:
    net, _layout, dim = make("lstm", "L2_partial_observability")
    obs = inputs("lstm", dim, batch=3, steps=6)
    h0, c0 = (s[0] for s in net.initial_state(3, obs.device))
    with torch.no_grad():
        acting, _ = net(obs, net.initial_state(3, obs.device))
        learning, _, _ = net.unroll(obs, (h0, c0), torch.zeros(3, 6, dtype=torch.bool))
    assert torch.allclose(acting, learning, atol=1e-5)


def test_recurrent_policy_reads_every_field_and_its_critic_leaves_the_actor_alone() -> None:
    layout, dim, n_actions = layout_of("L2_partial_observability")
    torch.manual_seed(0)
    net = build_network("lstm", layout, n_actions, [32, 16], 8, 16, "dagger")
    obs = inputs("lstm", dim, batch=8, steps=5).requires_grad_(True)
    logits, _ = net(obs, net.initial_state(8, obs.device))
    logits[:, -1].sum().backward()
    for name, offset, size in layout:  # every field, and through the memory from the first step
        assert float(obs.grad[:, 0, offset : offset + size].abs().sum()) > 0, name
    net.zero_grad(set_to_none=True)
    memory, _ = net.lstm(net.features(obs.detach()), net.initial_state(8, obs.device))
    net.value(obs.detach(), memory).sum().backward()
    assert all(p.grad is None for p in net.actor_parameters())
    assert all(p.grad is not None for p in net.critic_parameters())


def test_window_summary_says_where_each_channel_is_in_view() -> None:
    from townlet_train.models import WindowSummary

    summary = WindowSummary(offset=2, shape=(5, 5, 4))
    obs = torch.zeros(1, 2 + 5 * 5 * 4)
    window = obs[0, 2:].view(5, 5, 4)  # rows are dy = -2 .. 2, columns dx = -2 .. 2
    window[0, 3, 1] = 1.0  # channel 1 at dx +1, dy -2
    window[2, 0, 2] = window[2, 4, 2] = 1.0  # channel 2 at dx -2 and +2, dy 0
    out = summary(obs)[0]
    present, where = out[:4], out[4:].view(4, 2)
    assert present.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert where[1].tolist() == [0.5, -1.0] and where[2].tolist() == [0.0, 0.0]
    assert where[0].tolist() == where[3].tolist() == [0.0, 0.0]


def test_a_recurrent_policy_with_the_window_shape_reads_its_summary() -> None:
    from townlet_train.models import WindowSummary, field_shapes

    env = TownletVectorEnv("L2_partial_observability", 4)
    obs, _ = env.reset(seed=0)
    layout, n_actions = env.observation_layout, env.level.n_actions
    net = build_network("lstm", layout, n_actions, [16], 4, 8, "ppo", field_shapes(env.level))
    assert isinstance(net.window, WindowSummary) and net.window(obs).shape == (4, 48)
    features = net.features(obs)
    with torch.no_grad():
        net.window_encoder.weight.zero_()
        net.window_encoder.bias.fill_(1.0)
    assert not torch.allclose(net.features(obs), features)

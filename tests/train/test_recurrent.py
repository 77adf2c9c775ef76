"""The recurrent learner's unroll and truncation bootstrap, checked against plain step-by-step
runs of the acting network."""

from __future__ import annotations

import copy

import torch

from townlet_env import TownletVectorEnv
from townlet_train.algos.dqn_windows import WindowTargets
from townlet_train.config import CONFIG_DIR, load_config
from townlet_train.models import RecurrentQNetwork

LEVEL = "L2_partial_observability"


def network() -> RecurrentQNetwork:
    env = TownletVectorEnv(LEVEL, 1)
    torch.manual_seed(0)
    return RecurrentQNetwork(env.observation_layout, env.level.n_actions, [32], 16, 24)


def stepwise(
    net: RecurrentQNetwork, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, reset: torch.Tensor
):
    """The acting network one step at a time, zeroing the state where a row resets."""
    qs, hs, cs = [], [], []
    state = (h[None], c[None])
    for t in range(obs.shape[1]):
        keep = (~reset[:, t]).float()[None, :, None]
        q, state = net(obs[:, t : t + 1], (state[0] * keep, state[1] * keep))
        qs.append(q[:, 0])
        hs.append(state[0][0])
        cs.append(state[1][0])
    return torch.stack(qs, 1), torch.stack(hs, 1), torch.stack(cs, 1)


def test_segmented_unroll_equals_stepping_one_step_at_a_time() -> None:
    net = network()
    batch, steps, dim = 6, 12, net.encoder.layout[-1][1] + net.encoder.layout[-1][2]
    gen = torch.Generator().manual_seed(1)
    obs = torch.rand(batch, steps, dim, generator=gen)
    h, c = torch.randn(batch, 24, generator=gen), torch.randn(batch, 24, generator=gen)
    reset = torch.zeros(batch, steps, dtype=torch.bool)
    reset[1, 4] = reset[3, 4] = reset[3, 9] = reset[5, 11] = True  # shared and distinct boundaries
    with torch.no_grad():
        q, hidden, (_, cells) = net.unroll(obs, (h, c), reset)
        q_ref, h_ref, c_ref = stepwise(net, obs, h, c, reset)
    torch.testing.assert_close(q, q_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hidden, h_ref, atol=1e-5, rtol=1e-5)
    # cell states are kept where a segment ends: before each boundary of any row, and at the end
    for t in (3, 8, 10, steps - 1):
        torch.testing.assert_close(cells[:, t], c_ref[:, t], atol=1e-5, rtol=1e-5)


def test_truncation_bootstraps_through_the_state_the_episode_reached() -> None:
    cfg = load_config(
        CONFIG_DIR / "recipes" / f"{LEVEL}_dqn.yaml",  # L2's default is DAgger
        network__kind="lstm",
        network__hidden=[32],
        network__field_embed=16,
        network__lstm_hidden=24,
        network__burn_in=2,
        network__sequence_length=4,
        algorithm__n_step=2,
        algorithm__double=False,
        env__num_envs=4,
    )
    online = network()
    target = copy.deepcopy(online)
    targets = WindowTargets(*cfg.window()[::-1], n_step=2, gamma=cfg.dqn.gamma, double=False)
    length = 2 + 4 + 2
    gen = torch.Generator().manual_seed(2)
    obs = torch.rand(3, length, 479, generator=gen)
    truncated = torch.zeros(3, length, dtype=torch.bool)
    truncated[0, 5] = True  # a learned step; the next step is a new life
    terminated = torch.zeros_like(truncated)
    terminated[1, 3] = True
    batch = {
        "obs": obs,
        "truncated": truncated,
        "terminated": terminated,
        "h": torch.zeros(3, 24),
        "c": torch.zeros(3, 24),
        "final_obs": torch.rand(3, 479, generator=gen),
        "final_mask": torch.ones(3, 8, dtype=torch.bool),
    }
    reset = torch.zeros_like(truncated)
    reset[:, 1:] = (truncated | terminated)[:, :-1]
    with torch.no_grad():
        _, _, states_tgt = target.unroll(obs, (batch["h"], batch["c"]), reset)
        _, _, states_on = online.unroll(obs[:, 2:], (batch["h"], batch["c"]), reset[:, 2:])
        value = targets._truncation_value(batch, online, target, states_tgt, states_on)
        # by hand: feed row 0's steps 0..5 and then its final obs through the target network
        _, state = target(obs[:1, :6], (torch.zeros(1, 1, 24), torch.zeros(1, 1, 24)))
        q_final, _ = target(batch["final_obs"][:1, None], state)
    # plain DQN: the bootstrap is the target network's best Q at the final observation
    torch.testing.assert_close(value[0], q_final[0, 0].max(), atol=1e-5, rtol=1e-5)
    assert value[1] == 0 and value[2] == 0  # no truncation in those windows

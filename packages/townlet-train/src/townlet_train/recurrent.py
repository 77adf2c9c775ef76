"""Recurrent DQN (R2D2-style) for the partial-observation levels.

Windows of `burn_in + sequence_length + n_step` consecutive steps of one slot go into replay,
together with the actor's LSTM state at the window's start. Learning replays a window from that
stored state: the burn-in steps only warm the LSTM (no gradient), the next `sequence_length`
steps are learned, and the last `n_step` steps only feed the n-step targets.

Episode boundaries inside a window are masked, never crossed: the LSTM state is zeroed before
the first step of a new life (as the actor does), and an n-step return stops at the step where
its episode ended. A termination does not bootstrap; a truncation bootstraps from the episode's
final observation, fed through the LSTM state the episode had reached. (An earlier
implementation treated the last step of every sequence as terminal and had no burn-in.)
"""

from __future__ import annotations

from typing import cast

import torch

from townlet_train.config import TrainConfig
from townlet_train.learner import DQNLearner
from townlet_train.models import RecurrentQNetwork, is_init_of, masked_argmax
from townlet_train.policy import Carried
from townlet_train.sequences import Fields, SequenceCollector, SequenceReplay


def step_fields(obs_dim: int, n_actions: int, hidden: int) -> Fields:
    """What a recurrent DQN window holds at each step."""
    return {
        "obs": ((obs_dim,), torch.float32),
        "action": ((), torch.long),
        "reward": ((), torch.float32),
        "terminated": ((), torch.bool),
        "truncated": ((), torch.bool),
        "mask": ((n_actions,), torch.bool),
        "h": ((hidden,), torch.float32),
        "c": ((hidden,), torch.float32),
        "final_obs": ((obs_dim,), torch.float32),
        "final_mask": ((n_actions,), torch.bool),
    }


def keep_truncation(window: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Of the per-step final observations, keep only the one learning needs: the truncation's
    (at most one truncation fits in a window, see the trainer's window check)."""
    truncated = window["truncated"]
    position = truncated.float().argmax(dim=1)
    rows = torch.arange(truncated.shape[0], device=truncated.device)
    return {
        **window,
        "final_obs": window["final_obs"][rows, position],
        "final_mask": window["final_mask"][rows, position],
    }


def one_step(net: RecurrentQNetwork, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Q of one more observation [B, D] from state (h, c) [B, H]."""
    return net.step(obs, (h[None], c[None]))[0]


class RecurrentDQN:
    """Acting with a carried LSTM state per slot, storing windows, and learning from them."""

    def __init__(
        self,
        cfg: TrainConfig,
        network: RecurrentQNetwork,
        num_envs: int,
        obs_dim: int,
        n_actions: int,
        device: torch.device,
    ):
        self.cfg = cfg
        alg, rep = cfg.dqn, cfg.replay
        # the optimizer, loss, clipping and target-network upkeep are the feed-forward learner's
        self.learner = DQNLearner(network, alg)
        self.online: RecurrentQNetwork = network
        self.target = cast(RecurrentQNetwork, self.learner.target)
        length = rep.burn_in + rep.sequence_length + alg.n_step
        fields = step_fields(obs_dim, n_actions, network.hidden_size)
        self.collector = SequenceCollector(length, rep.sequence_length, num_envs, fields, device)
        self.replay = SequenceReplay(max(1, rep.capacity // rep.sequence_length), device)
        self.actor = Carried(network, num_envs, device)

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.step(obs)[0]

    def store(self, step: dict[str, torch.Tensor]) -> None:
        h, c = self.actor.before
        window = self.collector.push({**step, "h": h[0], "c": c[0]})
        if window is not None:
            self.replay.add(keep_truncation(window))
        self.actor.end(step["done"])

    def ready(self) -> bool:
        return len(self.replay) >= 1

    def update(
        self, batch_size: int, rng: torch.Generator, agent_steps: int
    ) -> tuple[dict[str, float], torch.Tensor]:
        """One gradient step on `batch_size` windows; returns statistics and sampled observations."""
        batch = self.replay.sample(batch_size, rng)
        td, q = self.td_errors(batch)
        loss = self.learner.loss(td, torch.ones_like(td))
        grad_norm = self.learner.apply(loss)
        stats = {
            "loss": float(loss.detach()),
            "td_error": float(td.detach().abs().mean()),
            "q_mean": float(q.detach().mean()),
            "grad_norm": grad_norm,
        }
        return stats, batch["obs"][:, -1]

    def td_errors(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """TD errors [B, S] of the learned steps of each window, and their Q predictions."""
        alg, rep = self.cfg.dqn, self.cfg.replay
        bi, seq, n, gamma = rep.burn_in, rep.sequence_length, alg.n_step, alg.gamma
        ended = batch["terminated"] | batch["truncated"]
        init = is_init_of(ended)  # zero the state before the first step of a new life
        state0 = (batch["h"], batch["c"])
        warmed = self.online.warm(batch["obs"][:, :bi], state0, init[:, :bi]) if bi else state0
        with torch.no_grad():
            q_tgt, _, (h_tgt, c_tgt) = self.target.unroll(batch["obs"], state0, init)
        q_on, _, (h_on, c_on) = self.online.unroll(batch["obs"][:, bi:], warmed, init[:, bi:])
        learn = torch.arange(bi, bi + seq, device=ended.device)  # window positions learned
        q_pred = q_on[:, :seq].gather(2, batch["action"][:, learn, None]).squeeze(2)

        with torch.no_grad():
            q_sel = q_on.detach()  # online Q at positions bi.. for double-DQN action choice
            ret = torch.zeros_like(q_pred)
            alive = torch.ones_like(q_pred, dtype=torch.bool)  # the n-step window has not ended yet
            discount = torch.zeros_like(q_pred)
            bootstrap = torch.zeros_like(q_pred)
            for k in range(n):
                pos = learn + k
                ret = ret + alive * (gamma**k) * batch["reward"][:, pos]
                term, trunc = batch["terminated"][:, pos] & alive, batch["truncated"][:, pos] & alive
                # truncation: bootstrap from the final obs through the state the episode reached
                discount = torch.where(trunc, gamma ** (k + 1), discount)
                alive = alive & ~term & ~trunc
            pos = learn + n  # windows end n steps after the last learned step
            chooser = q_sel[:, pos - bi] if alg.double else q_tgt[:, pos]
            best = masked_argmax(chooser, batch["mask"][:, pos])
            bootstrap = torch.where(alive, q_tgt[:, pos].gather(2, best[..., None]).squeeze(2), bootstrap)
            discount = torch.where(alive, gamma**n, discount)
            trunc_value = self._truncation_value(batch, h_tgt, c_tgt, h_on, c_on)
            truncated_inside = (discount > 0) & ~alive
            bootstrap = torch.where(truncated_inside, trunc_value[:, None], bootstrap)
            y = ret + discount * bootstrap
        return q_pred - y, q_pred

    def _truncation_value(
        self, batch: dict, h_tgt: torch.Tensor, c_tgt: torch.Tensor, h_on: torch.Tensor, c_on: torch.Tensor
    ) -> torch.Tensor:
        """[B] target value of each window's truncation final obs (0 where there is none)."""
        bi = self.cfg.replay.burn_in
        pos = batch["truncated"].float().argmax(dim=1)
        rows = torch.arange(pos.shape[0], device=pos.device)
        q_t = one_step(self.target, batch["final_obs"], h_tgt[rows, pos], c_tgt[rows, pos])
        if self.cfg.dqn.double:
            on_pos = (pos - bi).clamp(min=0)
            q_c = one_step(self.online, batch["final_obs"], h_on[rows, on_pos], c_on[rows, on_pos])
        else:
            q_c = q_t
        best = masked_argmax(q_c, batch["final_mask"])
        return q_t.gather(1, best[:, None]).squeeze(1) * batch["truncated"].any(dim=1)

    @property
    def updates(self) -> int:
        return self.learner.updates

    def state_dict(self) -> dict:
        return {
            **self.learner.state_dict(),
            "collector": self.collector.state_dict(),
            **self.actor.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state)
        self.collector.load_state_dict(state["collector"])
        self.actor.load_state_dict(state)

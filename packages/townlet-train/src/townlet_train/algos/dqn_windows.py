"""Recurrent DQN's targets (R2D2-style), for the partial-observation levels.

Windows of `burn_in + sequence_length + n_step` consecutive steps of one slot are replayed
(`data.sequences.WindowReplay`), each from the actor's memory state at the window's start: the
burn-in steps only warm the memory (no gradient), the next `sequence_length` steps are learned,
and the last `n_step` steps only feed the n-step targets.

Episode boundaries inside a window are masked, never crossed: the state is zeroed before the
first step of a new life (as the actor does), and an n-step return stops at the step where its
episode ended. A termination does not bootstrap; a truncation bootstraps from the episode's
final observation, fed through the state the episode had reached. (An earlier implementation
treated the last step of every sequence as terminal and had no burn-in.)
"""

from __future__ import annotations

import torch

from townlet_train.data.sequences import Fields, window_state
from townlet_train.models import Model, is_init_of, masked_argmax


def step_fields(obs_dim: int, n_actions: int) -> Fields:
    """What a recurrent DQN window holds at each step (besides the memory state at its start)."""
    return {
        "obs": ((obs_dim,), torch.float32),
        "action": ((), torch.long),
        "reward": ((), torch.float32),
        "terminated": ((), torch.bool),
        "truncated": ((), torch.bool),
        "mask": ((n_actions,), torch.bool),
        "final_obs": ((obs_dim,), torch.float32),
        "final_mask": ((n_actions,), torch.bool),
    }


def keep_truncation(window: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Of the per-step final observations, keep only the one learning needs: the truncation's
    (at most one truncation fits in a window, see the learner's window check)."""
    truncated = window["truncated"]
    position = truncated.float().argmax(dim=1)
    rows = torch.arange(truncated.shape[0], device=truncated.device)
    return {
        **window,
        "final_obs": window["final_obs"][rows, position],
        "final_mask": window["final_mask"][rows, position],
    }


def one_step(net: Model, obs: torch.Tensor, state: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Q of one more observation [B, D] from a state (rows [B, ...])."""
    return net.step(obs, tuple(part[None] for part in state))[0]


class WindowTargets:
    def __init__(self, burn_in: int, sequence_length: int, n_step: int, gamma: float, double: bool):
        self.burn_in, self.length, self.n, self.gamma, self.double = (
            burn_in,
            sequence_length,
            n_step,
            gamma,
            double,
        )

    def td_errors(
        self, batch: dict[str, torch.Tensor], online: Model, target: Model
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TD errors [B, S] of the learned steps of each window, and their Q predictions."""
        bi, seq, n, gamma = self.burn_in, self.length, self.n, self.gamma
        ended = batch["terminated"] | batch["truncated"]
        init = is_init_of(ended)  # zero the state before the first step of a new life
        state0 = window_state(batch, online.initial_state(0, ended.device))
        warmed = online.warm(batch["obs"][:, :bi], state0, init[:, :bi]) if bi else state0
        with torch.no_grad():
            q_tgt, _, states_tgt = target.unroll(batch["obs"], state0, init)
        q_on, _, states_on = online.unroll(batch["obs"][:, bi:], warmed, init[:, bi:])
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
            chooser = q_sel[:, pos - bi] if self.double else q_tgt[:, pos]
            best = masked_argmax(chooser, batch["mask"][:, pos])
            bootstrap = torch.where(alive, q_tgt[:, pos].gather(2, best[..., None]).squeeze(2), bootstrap)
            discount = torch.where(alive, gamma**n, discount)
            trunc_value = self._truncation_value(batch, online, target, states_tgt, states_on)
            truncated_inside = (discount > 0) & ~alive
            bootstrap = torch.where(truncated_inside, trunc_value[:, None], bootstrap)
            y = ret + discount * bootstrap
        return q_pred - y, q_pred

    def _truncation_value(
        self,
        batch: dict[str, torch.Tensor],
        online: Model,
        target: Model,
        states_tgt: tuple[torch.Tensor, ...],
        states_on: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        """[B] target value of each window's truncation final obs (0 where there is none)."""
        pos = batch["truncated"].float().argmax(dim=1)
        rows = torch.arange(pos.shape[0], device=pos.device)
        q_t = one_step(target, batch["final_obs"], tuple(part[rows, pos] for part in states_tgt))
        if self.double:
            on_pos = (pos - self.burn_in).clamp(min=0)
            q_c = one_step(online, batch["final_obs"], tuple(part[rows, on_pos] for part in states_on))
        else:
            q_c = q_t
        best = masked_argmax(q_c, batch["final_mask"])
        return q_t.gather(1, best[:, None]).squeeze(1) * batch["truncated"].any(dim=1)

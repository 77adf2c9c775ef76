"""DQN: TD targets with masked bootstrap, double Q-learning, a target network; feed-forward from
n-step replay (uniform or prioritized), recurrent (R2D2-style) from windows (dqn_windows.py).

    y = r_n + discount * Q_target(s_n, a*)      a* = argmax over legal actions of s_n
    (double: a* from the online network; plain: from the target network)

`discount` already carries gamma^k and is 0 when the n-step window ended in a termination, so
truncated episodes bootstrap from their final observation and terminated ones do not. Acting is
masked epsilon-greedy (exploration.py) on the carried model's Q-values.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from townlet_train.algos.base import LearnContext
from townlet_train.algos.dqn_windows import WindowTargets, keep_truncation, step_fields
from townlet_train.config import TrainConfig
from townlet_train.data.replay import Batch, NStepReplay
from townlet_train.data.sequences import WindowReplay
from townlet_train.exploration import EpsilonGreedy
from townlet_train.models import Model, masked_argmax
from townlet_train.policy import Carried


def policy_entropy(mask: torch.Tensor, epsilon: float | torch.Tensor) -> torch.Tensor:
    """[N] entropy (nats) of the masked epsilon-greedy policy that actually picks the actions.

    With L legal actions the greedy one has probability 1 - eps + eps / L and each other one
    eps / L. This is the curriculum's confidence signal: it falls below 0.5 once the agent
    mostly follows its greedy choice (eps below about 0.1 with 5-8 legal actions).
    """
    legal = mask.sum(dim=1).float()
    p_other = epsilon / legal
    p_greedy = 1.0 - epsilon + p_other
    entropy = -(p_greedy * p_greedy.log() + (legal - 1) * torch.xlogy(p_other, p_other))
    return torch.where(legal > 1, entropy, 0.0)


class DQN:
    """The DQN learner: its carried model, epsilon-greedy acting, its buffer and its updates."""

    def __init__(self, cfg: TrainConfig, model: Model, env: Any, device: torch.device):
        s = self.settings = cfg.dqn
        n, obs_dim, n_actions = cfg.env.num_envs, env.level.layout.size, env.level.n_actions
        self.num_envs = n
        self.online = model
        self.target = copy.deepcopy(model).requires_grad_(False)
        # fused: one kernel for all parameters; on CPU the default loop over tensors took
        # about 2 ms of each update of the default network, the fused step about 0.3 ms.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=s.lr, fused=True)
        self.updates, self.debt = 0, 0.0
        self.actor = Carried(model, n, device)
        self.explorer = EpsilonGreedy(s.epsilon, n, device)
        self.windows: WindowTargets | None = None
        if model.recurrent:
            length, burn_in = cfg.window()
            span = burn_in + length + s.n_step
            if span > env.level.max_steps:
                raise ValueError(
                    f"replay window burn_in + sequence_length + n_step = {span} exceeds the level's "
                    f"max_steps {env.level.max_steps}: a window could then hold two truncations"
                )
            self.windows = WindowTargets(burn_in, length, s.n_step, s.gamma, s.double)
            # windows per update, so that one update learns about batch_size transitions
            self.batch = max(1, s.batch_size // length)
            self.transitions_per_update = self.batch * length
            fields = step_fields(obs_dim, n_actions)
            self.buffer: Any = WindowReplay(
                span, length, s.replay.capacity, n, fields, self.actor.state, device, keep_truncation
            )
        else:
            self.batch = self.transitions_per_update = s.batch_size
            self.buffer = NStepReplay(s.replay, s.n_step, s.gamma, n, obs_dim, n_actions, device)
        self.replay = self.buffer.replay

    # --- acting and storing -------------------------------------------------------------------

    def act(
        self, obs: torch.Tensor, info: dict[str, Any], agent_steps: int, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = info["action_mask"]
        q = self.actor.step(obs)[0]
        epsilon = self.explorer.per_slot(agent_steps)
        action = self.explorer.select(masked_argmax(q, mask), mask, epsilon, rng)
        return action, policy_entropy(mask, epsilon)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        self.buffer.add(step, self.actor.before)
        self.actor.end(step["done"])

    def explore(self, agent_steps: int) -> torch.Tensor:
        return self.explorer.per_slot(agent_steps)

    def schedule(self, agent_steps: int) -> dict[str, float]:
        return {"epsilon": self.explorer.epsilon(agent_steps)}

    # --- learning -----------------------------------------------------------------------------

    def learn(self, ctx: LearnContext) -> dict[str, float]:
        """The updates owed: `replay_ratio` sampled transitions per collected one."""
        s = self.settings
        if ctx.agent_steps < s.learning_starts or not self.buffer.ready(s.batch_size):
            return {}
        self.debt += s.replay_ratio * self.num_envs / self.transitions_per_update
        stats: dict[str, float] = {}
        while self.debt >= 1.0:
            self.debt -= 1.0
            batch = self.buffer.sample(self.batch, ctx.rng, ctx.agent_steps)
            stats = self.update(batch, self.online)
            if ctx.rnd is not None:  # the predictor learns the states just learned from
                seen = batch.next_obs if isinstance(batch, Batch) else batch["obs"][:, -1]
                stats["rnd_loss"] = ctx.rnd.learn(seen)
        return stats

    def update(self, batch: Batch | dict[str, torch.Tensor], model: Model) -> dict[str, float]:
        """One gradient step on transitions (feed-forward) or windows (a recurrent model)."""
        if isinstance(batch, Batch):
            td, q = self.td_errors(batch, model)
            weight = batch.weight
        else:
            assert self.windows is not None
            td, q = self.windows.td_errors(batch, model, self.target)
            weight = torch.ones_like(td)
        loss = self.loss(td, weight)
        grad_norm = self.apply(loss, model)
        td, q = td.detach(), q.detach()
        if isinstance(batch, Batch):
            self.replay.update_priorities(batch.index, td)
        return {
            "loss": float(loss.detach()),
            "td_error": float(td.abs().mean()),
            "q_mean": float(q.mean()),
            "grad_norm": grad_norm,
        }

    def td_errors(self, batch: Batch, model: Model) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction - target, predictions) for a feed-forward batch."""
        q = model(batch.obs).gather(1, batch.action[:, None]).squeeze(1)
        with torch.no_grad():
            q_next_target = self.target(batch.next_obs)
            chooser = model(batch.next_obs) if self.settings.double else q_next_target
            best = masked_argmax(chooser, batch.next_mask)
            bootstrap = q_next_target.gather(1, best[:, None]).squeeze(1)
            y = batch.reward + batch.discount * bootstrap
        return q - y, q

    def loss(self, td: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.settings.loss == "huber":
            per_item = F.huber_loss(td, torch.zeros_like(td), reduction="none", delta=1.0)
        else:
            per_item = td.pow(2)
        return (per_item * weight).mean()

    def apply(self, loss: torch.Tensor, model: Model) -> float:
        """Backward, clip, step, and keep the target network in line; returns the grad norm."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.updates += 1
        target = self.settings.target
        if target.kind == "hard":
            if self.updates % target.every == 0:
                self.target.load_state_dict(model.state_dict())
        else:
            with torch.no_grad():
                for t, o in zip(self.target.parameters(), model.parameters(), strict=True):
                    t.lerp_(o, target.tau)
        return float(grad_norm)

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "network": self.online.state_dict(),
            "target_network": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            **self.buffer.state_dict(),
            **self.actor.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["network"])
        self.target.load_state_dict(state["target_network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.buffer.load_state_dict(state)
        self.actor.load_state_dict(state)

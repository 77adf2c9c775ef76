"""PPO (Schulman et al. 2017) on the vector env, tensors on the device end to end.

One iteration: act for `rollout_steps` env steps with the masked categorical policy, compute
GAE advantages, then `epochs` passes of large minibatches of the clipped objective, the
(optionally clipped) value loss and an entropy bonus whose weight is annealed. The learning
rate anneals linearly to 0 over the run; gradients are clipped by norm.

Episode ends: a termination stops the bootstrap; a truncation (the level's max_steps) does not
end the task, so its reward gets `gamma * V(final_obs)` added, the value of the observation the
episode really ended in (`info["final_obs"]`; the env has already reset the slot), and GAE then
stops at the step as for any ended episode.

A recurrent policy (`network.kind: lstm`) acts with its memory state carried per slot and
zeroed where an episode ended (`policy.Carried`). Each rollout keeps the state every slot had at
its start; learning replays each slot's whole rollout from that state (backpropagation through
the rollout, `Model.unroll`), zeroing the state at the steps where a new life began, so the
first epoch's first pass recomputes exactly the log-probabilities and values the actor saw.
Its minibatches are whole slots' sequences, `minibatch_size // rollout_steps` slots each. The
critic reads the memory's output detached (see `RecurrentActorCritic`); a truncation's final
observation and the next rollout's first one are valued through the state the slot had reached.

Starting from a cloned student (`init_from`, a bc/dagger/ppo checkpoint): the critic is new
and wrong, so the first `critic_warmup` iterations train only the critic; the actor can learn
at a fraction of the critic's rate (`actor_lr_scale`), and a KL term toward the frozen student,
annealed to zero over `kl_steps`, keeps the early updates from forgetting what was cloned.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from townlet_env.core import compile_level
from townlet_train.algos.base import Diverged, LearnContext
from townlet_train.algos.ppo_math import clipped_policy_loss, gae, shuffled, value_loss
from townlet_train.config import PPOSettings, TrainConfig
from townlet_train.data.rollout import Rollout
from townlet_train.models import PolicyModel, is_init_of, masked_logits
from townlet_train.policy import Carried, load_network


class PPO:
    """The policy and value network (feed-forward or recurrent), its optimizer, its rollout and
    its updates: act by sampling the masked policy, learn one iteration per full rollout."""

    def __init__(self, cfg: TrainConfig, model: PolicyModel, env: Any, device: torch.device):
        settings = cfg.algorithm
        assert isinstance(settings, PPOSettings)
        self.cfg, self.settings, self.device = cfg, settings, device
        n = cfg.env.num_envs
        self.online = model
        self.actor = Carried(model, n, device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": model.actor_parameters(), "lr": settings.lr * settings.actor_lr_scale},
                {"params": model.critic_parameters(), "lr": settings.lr},
            ],
            eps=1e-5,
            fused=True,  # one kernel for all parameters, as DQN's
        )
        obs_dim, n_actions = env.level.layout.size, env.level.n_actions
        self.rollout = Rollout(settings.rollout_steps, n, obs_dim, n_actions, device, self.actor.state)
        self.replay = None  # the rollout, every checkpoint's, is PPO's only buffer
        self.teacher: PolicyModel | None = None  # the frozen student PPO started from, for the KL term
        self.pending: dict[str, torch.Tensor] = {}  # what act() computed for the step being taken
        self.updates = self.iterations = 0
        self.debt = 0.0  # PPO learns per rollout, never owes updates
        self.weights = (0.0, 0.0, True)  # this iteration's entropy weight, KL weight, train_actor
        if settings.init_from is not None:
            self._start_from(Path(settings.init_from), env)

    def _start_from(self, path: Path, env: Any) -> None:
        source, cfg = load_network(path, self.device)
        if cfg.algorithm.kind == "dqn" or not hasattr(source, "ACTOR"):
            raise ValueError(f"init_from {path}: a {cfg.algorithm.kind} checkpoint has no policy network")
        if type(source) is not type(self.online):
            raise ValueError(
                f"init_from {path}: its network.kind is '{cfg.network.kind}', this config's is "
                f"'{self.cfg.network.kind}' (a recurrent policy starts only a recurrent one)"
            )
        if compile_level(cfg.level).content_hash != env.level.content_hash:
            raise ValueError(f"init_from {path}: trained on another level than {self.cfg.level}")
        try:
            for name in self.online.ACTOR:
                getattr(self.online, name).load_state_dict(getattr(source, name).state_dict())
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ValueError(f"init_from {path}: its network does not fit this config ({first})") from None
        if self.settings.kl_start > 0:
            self.teacher = copy.deepcopy(self.online).requires_grad_(False)

    # --- acting and storing -------------------------------------------------------------------

    def act(
        self, obs: torch.Tensor, info: dict[str, Any], agent_steps: int, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A sample of the masked policy; keeps its log-probability and value for the rollout."""
        mask = info["action_mask"]
        if self.rollout.t == 0:  # the state learning will replay this rollout from
            self.rollout.begin(self.actor.state)
        logits, memory = self.actor.step(obs)
        with torch.no_grad():
            value = self.online.value(obs, memory)
        with torch.inference_mode():  # one log-softmax gives the sample, its log-prob and the entropy
            log_probs = torch.log_softmax(masked_logits(logits, mask), dim=-1)
            probs = log_probs.exp()
            try:
                action = torch.multinomial(probs, 1, generator=rng).squeeze(1)
            except RuntimeError:  # NaN or inf probabilities: the weights have diverged
                raise Diverged("the policy's action probabilities are not finite") from None
            logprob = log_probs.gather(1, action[:, None]).squeeze(1)
            entropy = -(probs * log_probs).sum(dim=-1)  # an illegal action adds 0 * -1e9 = 0
        self.pending = {"action": action, "logprob": logprob, "value": value}
        return action, entropy

    def value_of(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) of observations that follow the last one acted on (a truncation's final one,
        the next rollout's first one), without acting on them."""
        memory = self.actor.peek(obs)[1] if self.online.recurrent else None
        with torch.no_grad():
            return self.online.value(obs, memory)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        r, s = self.rollout, self.settings
        reward = step["reward"]
        if bool(step["truncated"].any()):
            tail = self.value_of(step["final_obs"])
            reward = reward + s.gamma * tail * step["truncated"].float()
        r.obs[r.t], r.mask[r.t], r.reward[r.t], r.done[r.t] = step["obs"], step["mask"], reward, step["done"]
        pending = self.pending
        r.action[r.t], r.logprob[r.t], r.value[r.t] = pending["action"], pending["logprob"], pending["value"]
        r.t += 1
        self.actor.end(step["done"])

    def explore(self, agent_steps: int) -> torch.Tensor:
        """PPO explores by sampling its policy: no epsilon."""
        return torch.zeros(self.rollout.done.shape[1], device=self.device)

    def schedule(self, agent_steps: int) -> dict[str, float]:
        return {"epsilon": 0.0}

    # --- learning -----------------------------------------------------------------------------

    def learn(self, ctx: LearnContext) -> dict[str, float]:
        if self.rollout.t < self.settings.rollout_steps:
            return {}
        stats = self.iterate(self.value_of(ctx.obs), ctx)
        if ctx.rnd is not None:  # the bonus went into the rollout's rewards: now learn its states
            stats["rnd_loss"] = self._learn_novelty(self.rollout.obs.flatten(0, 1), ctx)
        self.rollout.t = 0
        self.iterations += 1
        return stats

    def _learn_novelty(self, obs: torch.Tensor, ctx: LearnContext) -> float:
        """One pass of RND's predictor over the rollout's observations, in shuffled minibatches."""
        size = min(self.settings.minibatch_size, obs.shape[0])
        loss = 0.0
        for rows in shuffled(obs.shape[0], size, ctx.rng, self.device):
            loss = ctx.rnd.learn(obs.index_select(0, rows))
        return loss

    def _schedules(self, ctx: LearnContext) -> tuple[float, float, float]:
        """(learning-rate fraction, entropy weight, KL weight) at this point of the run."""
        s, left = self.settings, ctx.run_left
        lr = left if s.anneal_lr else 1.0
        entropy = s.entropy_end + (s.entropy_start - s.entropy_end) * left
        kl = s.kl_start * max(0.0, 1.0 - ctx.agent_steps / s.kl_steps)
        return lr, entropy, kl

    def iterate(self, next_value: torch.Tensor, ctx: LearnContext) -> dict[str, float]:
        s, r = self.settings, self.rollout
        advantages, returns = gae(r.reward, r.value, r.done, next_value, s.gamma, s.gae_lambda)
        data = {k: getattr(r, k) for k in ("obs", "mask", "action", "logprob", "value", "done")}
        data["advantage"], data["return"] = advantages, returns
        lr_fraction, entropy_weight, kl_weight = self._schedules(ctx)
        for group, base in zip(self.optimizer.param_groups, (s.lr * s.actor_lr_scale, s.lr), strict=True):
            group["lr"] = base * lr_fraction
        self.weights = (entropy_weight, kl_weight, self.iterations >= s.critic_warmup)
        stats: dict[str, float] = {}
        for _ in range(s.epochs):
            for batch in self._minibatches(data, ctx.rng):
                stats = self.update(batch, self.online)
        return {**stats, "lr_fraction": lr_fraction, "entropy_weight": entropy_weight, "kl_weight": kl_weight}

    def _minibatches(
        self, data: dict[str, torch.Tensor], rng: torch.Generator
    ) -> Iterator[dict[str, torch.Tensor]]:
        """One epoch of shuffled minibatches of `minibatch_size` samples from [T, N] data; with a
        recurrent policy, of whole slots' sequences (slot-major), with their start states."""
        if self.online.recurrent:
            yield from self._sequences(data, rng)
            return
        flat = {k: v.flatten(0, 1) for k, v in data.items()}
        total = flat["action"].shape[0]
        size = min(self.settings.minibatch_size, total)
        for rows in shuffled(total, size, rng, self.device):
            yield {k: v.index_select(0, rows) for k, v in flat.items()}  # faster than v[rows]

    def _sequences(
        self, data: dict[str, torch.Tensor], rng: torch.Generator
    ) -> Iterator[dict[str, torch.Tensor]]:
        n, steps = data["action"].shape[1], data["action"].shape[0]
        per_batch = min(n, max(1, self.settings.minibatch_size // steps))
        for slots in shuffled(n, per_batch, rng, self.device):
            batch = {k: v[:, slots].transpose(0, 1).flatten(0, 1) for k, v in data.items()}  # slot-major
            batch["sequence_obs"] = data["obs"][:, slots].transpose(0, 1)
            batch["sequence_done"] = data["done"][:, slots].transpose(0, 1)
            for key, part in zip(Rollout.STATE_KEYS, self.rollout.start, strict=False):
                batch[key] = part[slots]
            yield batch

    def _outputs(
        self, batch: dict[str, torch.Tensor], model: PolicyModel, kl_weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """[M, A] logits, [M] values and (for the KL term) the teacher's [M, A] logits of a
        minibatch's M samples (a recurrent policy's replayed through `Model.unroll`)."""
        teacher = None
        if not model.recurrent:
            if self.teacher is not None and kl_weight > 0:
                with torch.no_grad():
                    teacher = self.teacher(batch["obs"])
            return model(batch["obs"]), model.value(batch["obs"]), teacher
        obs = batch["sequence_obs"]
        state0 = tuple(batch[key] for key in Rollout.STATE_KEYS[: len(self.rollout.start)])
        init = is_init_of(batch["sequence_done"])
        if self.teacher is not None and kl_weight > 0:
            with torch.no_grad():
                teacher = self.teacher.unroll(obs, state0, init)[0].flatten(0, 1)
        logits, memory, _ = model.unroll(obs, state0, init)
        value = model.value(obs, memory)
        return logits.flatten(0, 1), value.flatten(), teacher

    def update(self, batch: dict[str, torch.Tensor], model: PolicyModel) -> dict[str, float]:
        """One step of the clipped objective on a minibatch (the weights of this iteration)."""
        s = self.settings
        entropy_weight, kl_weight, train_actor = self.weights
        logits, new_value, teacher_logits = self._outputs(batch, model, kl_weight)
        logits = masked_logits(logits, batch["mask"])
        log_probs = torch.log_softmax(logits, dim=-1)
        new_logprob = log_probs.gather(1, batch["action"][:, None]).squeeze(1)
        adv = batch["advantage"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss, clip_fraction = clipped_policy_loss(new_logprob, batch["logprob"], adv, s.clip)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1).mean()
        v_loss = value_loss(new_value, batch["value"], batch["return"], s.clip if s.clip_value else None)
        loss = s.value_coef * v_loss
        kl = torch.zeros(())
        if teacher_logits is not None:
            teacher = torch.log_softmax(masked_logits(teacher_logits, batch["mask"]), dim=-1)
            kl = F.kl_div(log_probs, teacher, log_target=True, reduction="batchmean")
        if train_actor:
            loss = loss + policy_loss - entropy_weight * entropy + kl_weight * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        self.optimizer.step()
        self.updates += 1
        return {
            "loss": float(loss.detach()),
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(v_loss.detach()),
            "entropy": float(entropy.detach()),
            "kl_to_teacher": float(kl.detach()),
            "clip_fraction": float(clip_fraction),
            "grad_norm": float(grad_norm),
        }

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = {
            "network": self.online.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "iterations": self.iterations,
            "rollout": self.rollout.state_dict(),
            **self.actor.state_dict(),
        }
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates, self.iterations = int(state["updates"]), int(state["iterations"])
        self.rollout.load_state_dict(state["rollout"])
        self.actor.load_state_dict(state)
        if self.teacher is not None and "teacher" in state:
            self.teacher.load_state_dict(state["teacher"])

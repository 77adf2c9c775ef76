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
from townlet_train.config import EpsilonSettings, PPOSettings
from townlet_train.exploration import EpsilonGreedy
from townlet_train.loop import Trainer
from townlet_train.models import PolicyModel, State, is_init_of, masked_logits, policy_network, rows_of
from townlet_train.policy import Carried, load_network


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), all [T, N]; `dones[t]` means step t ended its episode, so neither
    the value nor the advantage of step t + 1 (a new life) flows back into step t."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        live = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * following * live - values[t]
        last = delta + gamma * lam * live * last
        advantages[t] = last
    return advantages, advantages + values


def shuffled(total: int, size: int, rng: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """One epoch of row indices: a permutation of range(total) in whole batches of `size` (the
    remainder is left out)."""
    order = torch.randperm(total, generator=rng, device=device)
    for start in range(0, total - size + 1, size):
        yield order[start : start + size]


def clipped_policy_loss(
    new_logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the clipped surrogate loss, the fraction of samples where the clip was active)."""
    ratio = (new_logprob - old_logprob).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    return torch.max(unclipped, clipped).mean(), ((ratio - 1.0).abs() > clip).float().mean()


def value_loss(
    new: torch.Tensor, old: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> torch.Tensor:
    if clip is None:
        return 0.5 * (new - returns).pow(2).mean()
    clipped = old + (new - old).clamp(-clip, clip)
    return 0.5 * torch.max((new - returns).pow(2), (clipped - returns).pow(2)).mean()


class Rollout:
    """[T, N] storage for one iteration's steps; `t` is how many are filled. With a recurrent
    policy, also the memory state (rows [N, ...]) each slot had at the first step: `h0`, `c0`."""

    KEYS: tuple[str, ...] = ("obs", "mask", "action", "logprob", "value", "reward", "done")
    STATE_KEYS = ("h0", "c0")

    def __init__(
        self, steps: int, n: int, obs_dim: int, n_actions: int, device: torch.device, state: State = ()
    ):
        def z(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(steps, n, *shape, dtype=dtype, device=device)

        self.obs, self.mask = z(obs_dim), z(n_actions, dtype=torch.bool)
        self.action = z(dtype=torch.long)
        self.logprob, self.value, self.reward = z(), z(), z()
        self.done = z(dtype=torch.bool)
        self.start = tuple(torch.zeros_like(part) for part in rows_of(state))
        self.t = 0

    def state_dict(self) -> dict[str, Any]:
        start = dict(zip(self.STATE_KEYS, self.start, strict=False))
        return {**{k: getattr(self, k) for k in self.KEYS}, **start, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        for key in self.KEYS:
            getattr(self, key).copy_(state[key])
        for key, part in zip(self.STATE_KEYS, self.start, strict=False):
            part.copy_(state[key])
        self.t = int(state["t"])


class PPOAgent:
    """The policy and value network (feed-forward or recurrent), its optimizer and its rollout."""

    def __init__(self, network: PolicyModel, settings: PPOSettings, n: int, obs_dim: int, n_actions: int):
        device = next(network.parameters()).device
        self.online, self.settings = network, settings
        self.actor = Carried(network, n, device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": network.actor_parameters(), "lr": settings.lr * settings.actor_lr_scale},
                {"params": network.critic_parameters(), "lr": settings.lr},
            ],
            eps=1e-5,
            fused=True,  # one kernel for all parameters, as the DQN learner's
        )
        self.rollout = Rollout(settings.rollout_steps, n, obs_dim, n_actions, device, self.actor.state)
        self.teacher: PolicyModel | None = None  # the frozen student PPO started from, for the KL term
        self.pending: dict[str, torch.Tensor] = {}  # what act() computed for the step being taken
        self.updates = self.iterations = 0

    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, values) to act on; a recurrent policy's state steps here."""
        r = self.rollout
        if r.t == 0:  # the state learning will replay this rollout from
            for part, carried in zip(r.start, rows_of(self.actor.state), strict=True):
                part.copy_(carried)
        logits, memory = self.actor.step(obs)
        with torch.no_grad():
            return logits, self.online.value(obs, memory)

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

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates, self.iterations = int(state["updates"]), int(state["iterations"])
        self.rollout.load_state_dict(state["rollout"])
        self.actor.load_state_dict(state)
        if self.teacher is not None and "teacher" in state:
            self.teacher.load_state_dict(state["teacher"])


class PPOTrainer(Trainer):
    """The trainer's loop, episode accounting, metrics, checkpoints and resume, with PPO's acting
    (a sample of the masked policy) and learning (one iteration whenever a rollout is full)."""

    agent: PPOAgent

    def _build_agent(self) -> PPOAgent:
        settings = self.cfg.algorithm
        assert isinstance(settings, PPOSettings)
        self.settings = settings
        net, env = self.cfg.network, self.env
        network = policy_network(net, env, self.n_actions, "ppo").to(self.device)
        assert isinstance(network, PolicyModel)
        self.recurrent = network.recurrent
        self.batch = self.transitions_per_update = settings.minibatch_size
        agent = PPOAgent(network, settings, self.cfg.env.num_envs, self.obs_dim, self.n_actions)
        if settings.init_from is not None:
            self._start_from(agent, Path(settings.init_from))
        return agent

    def _start_from(self, agent: PPOAgent, path: Path) -> None:
        source, cfg = load_network(path, self.device)
        if cfg.algorithm.kind == "dqn" or not hasattr(source, "ACTOR"):
            raise ValueError(f"init_from {path}: a {cfg.algorithm.kind} checkpoint has no policy network")
        if type(source) is not type(agent.online):
            raise ValueError(
                f"init_from {path}: its network.kind is '{cfg.network.kind}', this config's is "
                f"'{self.cfg.network.kind}' (a recurrent policy starts only a recurrent one)"
            )
        if compile_level(cfg.level).content_hash != self.env.level.content_hash:
            raise ValueError(f"init_from {path}: trained on another level than {self.cfg.level}")
        try:
            for name in agent.online.ACTOR:
                getattr(agent.online, name).load_state_dict(getattr(source, name).state_dict())
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ValueError(f"init_from {path}: its network does not fit this config ({first})") from None
        if self.settings.kl_start > 0:
            agent.teacher = copy.deepcopy(agent.online).requires_grad_(False)

    def _build_explorer(self) -> EpsilonGreedy:
        # PPO explores by sampling its policy: no epsilon (metrics' epsilon column holds 0)
        return EpsilonGreedy(EpsilonSettings(start=0.0, end=0.0), self.cfg.env.num_envs, self.device)

    def act(self) -> tuple[torch.Tensor, torch.Tensor]:
        mask = self.info["action_mask"]
        logits, value = self.agent.policy(self.obs)
        with torch.inference_mode():  # one log-softmax gives the sample, its log-prob and the entropy
            log_probs = torch.log_softmax(masked_logits(logits, mask), dim=-1)
            probs = log_probs.exp()
            try:
                action = torch.multinomial(probs, 1, generator=self.rng).squeeze(1)
            except RuntimeError:  # NaN or inf probabilities: the weights have diverged
                self._diverged("the policy's action probabilities are not finite")
                raise
            logprob = log_probs.gather(1, action[:, None]).squeeze(1)
            entropy = -(probs * log_probs).sum(dim=-1)  # an illegal action adds 0 * -1e9 = 0
        self.agent.pending = {"action": action, "logprob": logprob, "value": value}
        return action, entropy

    def learn(self) -> dict[str, float]:
        if self.agent.rollout.t < self.settings.rollout_steps:
            return {}
        stats = self.iterate(self.agent.value_of(self.obs))
        if self.rnd is not None:  # the bonus went into the rollout's rewards: now learn its states
            stats["rnd_loss"] = self._learn_novelty(self.agent.rollout.obs.flatten(0, 1))
        self.agent.rollout.t = 0
        self.agent.iterations += 1
        return stats

    def _learn_novelty(self, obs: torch.Tensor) -> float:
        """One pass of RND's predictor over the rollout's observations, in shuffled minibatches."""
        assert self.rnd is not None
        size = min(self.settings.minibatch_size, obs.shape[0])
        loss = 0.0
        for rows in shuffled(obs.shape[0], size, self.rng, self.device):
            loss = self.rnd.learn(obs.index_select(0, rows))
        return loss

    def _schedules(self) -> tuple[float, float, float]:
        """(learning-rate fraction, entropy weight, KL weight) at this point of the run."""
        s, left = self.settings, self.run_left()
        lr = left if s.anneal_lr else 1.0
        entropy = s.entropy_end + (s.entropy_start - s.entropy_end) * left
        kl = s.kl_start * max(0.0, 1.0 - self.counters["agent_steps"] / s.kl_steps)
        return lr, entropy, kl

    def iterate(self, next_value: torch.Tensor) -> dict[str, float]:
        s, r, agent = self.settings, self.agent.rollout, self.agent
        advantages, returns = gae(r.reward, r.value, r.done, next_value, s.gamma, s.gae_lambda)
        data = {k: getattr(r, k) for k in ("obs", "mask", "action", "logprob", "value", "done")}
        data["advantage"], data["return"] = advantages, returns
        lr_fraction, entropy_weight, kl_weight = self._schedules()
        for group, base in zip(agent.optimizer.param_groups, (s.lr * s.actor_lr_scale, s.lr), strict=True):
            group["lr"] = base * lr_fraction
        train_actor = agent.iterations >= s.critic_warmup
        stats: dict[str, float] = {}
        for _ in range(s.epochs):
            for batch in self._minibatches(data):
                stats = self._minibatch(batch, entropy_weight, kl_weight, train_actor)
        return {**stats, "lr_fraction": lr_fraction, "entropy_weight": entropy_weight, "kl_weight": kl_weight}

    def _minibatches(self, data: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        """One epoch of shuffled minibatches of `minibatch_size` samples from [T, N] data; with a
        recurrent policy, of whole slots' sequences (slot-major), with their start states."""
        if self.recurrent:
            yield from self._sequences(data)
            return
        flat = {k: v.flatten(0, 1) for k, v in data.items()}
        total = flat["action"].shape[0]
        size = min(self.settings.minibatch_size, total)
        for rows in shuffled(total, size, self.rng, self.device):
            yield {k: v.index_select(0, rows) for k, v in flat.items()}  # faster than v[rows]

    def _sequences(self, data: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        n, steps = data["action"].shape[1], data["action"].shape[0]
        per_batch = min(n, max(1, self.settings.minibatch_size // steps))
        start = self.agent.rollout.start
        for slots in shuffled(n, per_batch, self.rng, self.device):
            batch = {k: v[:, slots].transpose(0, 1).flatten(0, 1) for k, v in data.items()}  # slot-major
            batch["sequence_obs"] = data["obs"][:, slots].transpose(0, 1)
            batch["sequence_done"] = data["done"][:, slots].transpose(0, 1)
            for key, part in zip(Rollout.STATE_KEYS, start, strict=False):
                batch[key] = part[slots]
            yield batch

    def _outputs(
        self, batch: dict[str, torch.Tensor], kl_weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """[M, A] logits, [M] values and (for the KL term) the teacher's [M, A] logits of a
        minibatch's M samples (a recurrent policy's replayed through `Model.unroll`)."""
        agent, teacher = self.agent, None
        if not self.recurrent:
            if agent.teacher is not None and kl_weight > 0:
                with torch.no_grad():
                    teacher = agent.teacher(batch["obs"])
            return agent.online(batch["obs"]), agent.online.value(batch["obs"]), teacher
        obs = batch["sequence_obs"]
        state0 = tuple(batch[key] for key in Rollout.STATE_KEYS[: len(agent.rollout.start)])
        init = is_init_of(batch["sequence_done"])
        if agent.teacher is not None and kl_weight > 0:
            with torch.no_grad():
                teacher = agent.teacher.unroll(obs, state0, init)[0].flatten(0, 1)
        logits, memory, _ = agent.online.unroll(obs, state0, init)
        value = agent.online.value(obs, memory)
        return logits.flatten(0, 1), value.flatten(), teacher

    def _minibatch(
        self, batch: dict[str, torch.Tensor], entropy_weight: float, kl_weight: float, train_actor: bool
    ) -> dict[str, float]:
        s, agent = self.settings, self.agent
        logits, new_value, teacher_logits = self._outputs(batch, kl_weight)
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
        agent.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(agent.online.parameters(), s.grad_clip)
        agent.optimizer.step()
        agent.updates += 1
        return {
            "loss": float(loss.detach()),
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(v_loss.detach()),
            "entropy": float(entropy.detach()),
            "kl_to_teacher": float(kl.detach()),
            "clip_fraction": float(clip_fraction),
            "grad_norm": float(grad_norm),
        }

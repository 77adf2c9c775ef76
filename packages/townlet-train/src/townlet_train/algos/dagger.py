"""DAgger (Ross et al. 2011): the student acts, a teacher labels every state it visits.

Plain BC learns only the states the teacher visits; the student's own mistakes take it to
states the teacher never showed, and its errors compound (a study measured 220 of L1's 500
steps). DAgger lets the student act and has the teacher label every state the student visits:
with probability beta (annealed to 0) the teacher's action is executed instead, so early data
stays near good trajectories. The teacher is a labelling hook (`Teacher`: the scripted policy
reading the Town's true state; on L2/L3 it is privileged, which DAgger allows: only the labels
come from it). Learning is masked cross-entropy (imitation.py).

The student is feed-forward, the map student (`network.kind: map`: it stores the observations
its map has filled, the memory's output, and learns its feed-forward head from them; with
`teacher_knows: student_map` the teacher reads the same map) or recurrent (`network.kind:
lstm`), which learns from windows of `burn_in + sequence_length` labelled steps replayed from
the memory state at their start (`data.sequences.WindowReplay`): the burn-in only warms the
memory, the rest is learned, backpropagated through the window.

Labels alone teach memory slowly: a label says where to go, rarely what to keep in mind. With
`recall_weight` > 0 the recurrent student also learns to say, at every step, where each
affordance of its town is (read from the Town, privileged like the labels, and only used for
learning): a dense target that the memory can only meet by remembering what its window showed.
The head that says it is the learner's, not the network's; the policy does not carry it.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from townlet_env.core import Town
from townlet_env.policies.scripted import ScriptedPolicy
from townlet_train.algos.base import LearnContext
from townlet_train.algos.imitation import clone_step, descend
from townlet_train.config import DaggerSettings, EpsilonSettings, TrainConfig
from townlet_train.data.labels import LabelBuffer
from townlet_train.data.sequences import Fields, WindowReplay, window_state
from townlet_train.exploration import EpsilonGreedy
from townlet_train.models import MapStudent, Model, PolicyModel, is_init_of, masked_argmax, masked_logits
from townlet_train.policy import Carried


def affordance_positions(town: Town) -> torch.Tensor:
    """[N, 2A]: where each affordance of a slot's town is, in [0, 1] across the grid (what L1's
    full view shows and the window of L2 and L3 hides). Absolute, not relative to the agent: a
    target that stays put while the agent walks only has to be remembered, not updated."""
    state, level = town.state, town.level
    where = state.affordance_position[state.town].float()
    return (where / max(level.width - 1, level.height - 1, 1)).flatten(1)


def label_fields(obs_dim: int, n_actions: int, n_affordances: int) -> Fields:
    """What a recurrent DAgger window holds at each step (besides the memory state at its start)."""
    return {
        "obs": ((obs_dim,), torch.float32),
        "mask": ((n_actions,), torch.bool),
        "label": ((), torch.long),
        "where": ((2 * n_affordances,), torch.float32),
        "done": ((), torch.bool),
    }


def window_logits(
    model: Model, batch: dict[str, torch.Tensor], burn_in: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, S, A] of the learned steps of windows [B, burn_in + S], and the memory's output
    [B, S, H] there, replayed from the stored state at their start, zeroed at each new life."""
    init = is_init_of(batch["done"])
    state = window_state(batch, model.initial_state(0, batch["obs"].device))
    if burn_in:
        state = model.warm(batch["obs"][:, :burn_in], state, init[:, :burn_in])
    logits, memory, _ = model.unroll(batch["obs"][:, burn_in:], state, init[:, burn_in:])
    return logits, memory


class Teacher:
    """The labelling hook: the scripted policy's action for each slot's state of the run's towns,
    given (with `student_map`) what the student's map knows; and, for the recall loss, where
    each affordance is."""

    def __init__(self, town: Town):
        self.town = town
        self.policy = ScriptedPolicy(town)

    def label(self, obs: torch.Tensor, info: dict[str, Any], knowledge: Any = None) -> torch.Tensor:
        if knowledge is None:
            return self.policy(obs, info)
        return self.policy(obs, info, knowledge)

    def where(self) -> torch.Tensor:
        return affordance_positions(self.town)


class Dagger:
    def __init__(self, cfg: TrainConfig, model: Model, env: Any, device: torch.device):
        s = cfg.algorithm
        assert isinstance(s, DaggerSettings)
        self.settings, self.device, self.online = s, device, model
        n, obs_dim, n_actions = cfg.env.num_envs, env.level.layout.size, env.level.n_actions
        n_aff, self.aff_channel = env.level.n_affordances, env.level.aff_channel
        self.teacher = Teacher(env.town)
        self.windows = model.recurrent and not isinstance(model, MapStudent)
        self.length, self.burn_in = cfg.window()
        if self.windows:
            assert isinstance(model, PolicyModel)
            self.learned: PolicyModel = model
            self.recall = nn.Linear(cast(int, model.hidden_size), 2 * n_aff).to(device)
            params = [*model.actor_parameters(), *self.recall.parameters()]
        else:
            if isinstance(model, MapStudent) and env.level.layout.encoding != "partial":
                raise ValueError(
                    f"network.kind 'map' maps a partial view (levels L2_partial_observability, "
                    f"L3_temporal_mechanics); level '{env.level.name}' shows the whole town: use mlp"
                )
            learned = model.policy if isinstance(model, MapStudent) else model
            assert isinstance(learned, PolicyModel)
            self.learned, params = learned, learned.actor_parameters()
        self.optimizer = torch.optim.Adam(params, lr=s.lr, fused=True)  # fused: see dqn.py
        self.actor = Carried(model, n, device)
        if self.windows:
            fields = label_fields(obs_dim, n_actions, n_aff)
            span = self.burn_in + self.length
            self.buffer = WindowReplay(span, self.length, s.capacity, n, fields, self.actor.state, device)
            self.replay: Any = self.buffer.replay
        else:
            inputs = model.inputs if isinstance(model, MapStudent) else obs_dim
            self.replay = LabelBuffer(s.capacity, inputs, n_actions, device)
            self.inputs = torch.zeros(n, inputs, device=device)  # what the head read this step
        self.where = torch.zeros(n, 2 * n_aff, device=device)  # where the affordances were this step
        self.labels: torch.Tensor | None = None  # the teacher's actions for the step being taken
        beta = EpsilonSettings(start=s.beta_start, end=s.beta_end, decay_steps=s.beta_steps)
        self.beta = EpsilonGreedy(beta, n, device)  # its per-slot linear schedule
        self.updates, self.debt = 0, 0.0

    # --- acting and storing -------------------------------------------------------------------

    def act(
        self, obs: torch.Tensor, info: dict[str, Any], agent_steps: int, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's greedy action, or with probability beta the teacher's; every state is
        labelled with the teacher's."""
        mask = info["action_mask"]
        logits = masked_logits(self.logits(obs), mask)
        teacher = self.label(obs, info)
        student = masked_argmax(logits, mask)
        beta = self.beta.per_slot(agent_steps)
        follow = torch.rand(mask.shape[0], generator=rng, device=self.device) < beta
        self.labels = teacher
        entropy = torch.distributions.Categorical(logits=logits, validate_args=False).entropy()
        if self.windows:
            self.where = self.teacher.where()
        return torch.where(follow, teacher, student), entropy

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        logits, memory = self.actor.step(obs)
        if not self.windows:
            self.inputs = memory if isinstance(self.online, MapStudent) else obs
        return logits

    def label(self, obs: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
        """The teacher's actions for the current observations (after the student has seen them)."""
        if self.settings.teacher_knows == "town":
            return self.teacher.label(obs, info)
        student = self.online
        assert isinstance(student, MapStudent)
        # the map after this step's observation
        knowledge = student.memory.knowledge(obs, self.actor.state, self.aff_channel)
        return self.teacher.label(obs, info, knowledge)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        assert self.labels is not None, "act() labels each state before it is stored"
        if self.windows:
            labelled = {"obs": step["obs"], "mask": step["mask"], "label": self.labels}
            self.buffer.add({**labelled, "where": self.where, "done": step["done"]}, self.actor.before)
        else:
            self.replay.add(self.inputs, step["mask"], self.labels)
        self.actor.end(step["done"])

    @property
    def labelled(self) -> int:
        """Labelled states stored (a window's learned steps count)."""
        return len(self.replay) * (self.length if self.windows else 1)

    def explore(self, agent_steps: int) -> torch.Tensor:
        """DAgger does not act epsilon-greedily (its beta is `schedule`'s)."""
        return torch.zeros_like(self.beta.ends)

    def schedule(self, agent_steps: int) -> dict[str, float]:
        return {"epsilon": 0.0, "beta": self.beta.epsilon(agent_steps)}

    # --- learning -----------------------------------------------------------------------------

    def learn(self, ctx: LearnContext) -> dict[str, float]:
        s = self.settings
        if self.labelled < max(s.learning_starts, 1):
            return {}
        self.debt += s.updates_per_step
        if s.anneal_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = s.lr * ctx.run_left
        stats: dict[str, float] = {}
        while self.debt >= 1.0:
            self.debt -= 1.0
            if self.windows:  # about batch_size labelled states: batch_size // sequence_length windows
                batch = self.buffer.sample(max(1, s.batch_size // self.length), ctx.rng)
            else:
                batch = self.replay.sample(s.batch_size, ctx.rng)
            stats = self.update(batch, self.online)
        return stats

    def update(self, batch: dict[str, torch.Tensor], model: Model) -> dict[str, float]:
        """One step of masked cross-entropy toward the labels (plus, for windows, the recall loss)."""
        s = self.settings
        if not self.windows:
            learned = model.policy if isinstance(model, MapStudent) else model
            stats = clone_step(learned, self.optimizer, batch, s.grad_clip)
            self.updates += 1
            return stats
        bi = self.burn_in
        logits, memory = window_logits(model, batch, bi)
        targets = {k: batch[k][:, bi:].flatten(0, 1) for k in ("mask", "label")}
        # squared distance in grid sizes, summed over the affordances: per step, of the size of
        # the cross-entropy (a mean over the 2A coordinates made it too weak to shape the memory)
        recall = (self.recall(memory) - batch["where"][:, bi:]).pow(2).sum(dim=-1).mean()
        extra = s.recall_weight * recall if s.recall_weight > 0 else None
        stats = descend(self.optimizer, logits.flatten(0, 1), targets, s.grad_clip, extra)
        self.updates += 1
        return {**stats, "recall_loss": float(recall.detach())}

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        state = {
            "network": self.online.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            **self.actor.state_dict(),
        }
        if self.windows:
            state |= {"recall": self.recall.state_dict(), **self.buffer.state_dict()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.actor.load_state_dict(state)
        if self.windows:
            self.recall.load_state_dict(state["recall"])
            self.buffer.load_state_dict(state)

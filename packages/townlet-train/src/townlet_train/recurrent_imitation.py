"""DAgger with a recurrent student, for the partial-observation levels (L2 and L3).

The student (`networks.RecurrentActorCritic`) acts with an LSTM state carried per slot and
zeroed where the env ended an episode (the SAME_STEP autoreset hands over the next life's first
observation in the same step). The teacher labels every state the student visits, as in
imitation.py; but the right action depends on what the student has seen so far, so learning
replays whole windows: `burn_in + sequence_length` consecutive labelled steps of one slot,
stored with the actor's LSTM state at the window's start (a window every `sequence_length`
steps, so consecutive windows overlap by the burn-in). The burn-in steps only warm the LSTM
from that stored, by then slightly stale, state; the next `sequence_length` steps are learned
by masked cross-entropy, backpropagated through the window. An episode boundary inside a window
zeroes the state there, as the actor did.

Labels alone teach memory slowly: a label says where to go, rarely what to keep in mind. With
`recall_weight` > 0 the student also learns to say, at every step, where each affordance of its
town is (read from the Town, privileged like the labels, and only used for
learning): a dense target that the LSTM can only meet by remembering what its window showed.
The head that says it is the agent's, not the network's; the policy does not carry it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from townlet_env.core import Town
from townlet_train.cloning import descend
from townlet_train.config import DaggerSettings
from townlet_train.models import RecurrentActorCritic, is_init_of
from townlet_train.policy import Carried
from townlet_train.sequences import Fields, SequenceCollector, SequenceReplay


def label_fields(obs_dim: int, n_actions: int, n_affordances: int, hidden: int) -> Fields:
    """What a recurrent DAgger window holds at each step."""
    return {
        "obs": ((obs_dim,), torch.float32),
        "mask": ((n_actions,), torch.bool),
        "label": ((), torch.long),
        "where": ((2 * n_affordances,), torch.float32),
        "done": ((), torch.bool),
        "h": ((hidden,), torch.float32),
        "c": ((hidden,), torch.float32),
    }


def affordance_positions(town: Town) -> torch.Tensor:
    """[N, 2A]: where each affordance of a slot's town is, in [0, 1] across the grid (what L1's
    full view shows and the window of L2 and L3 hides). Absolute, not relative to the agent: a
    target that stays put while the agent walks only has to be remembered, not updated."""
    state, level = town.state, town.level
    where = state.affordance_position[state.town].float()
    return (where / max(level.width - 1, level.height - 1, 1)).flatten(1)


def window_logits(
    net: RecurrentActorCritic, batch: dict[str, torch.Tensor], burn_in: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, S, A] of the learned steps of windows [B, burn_in + S], and the LSTM's output
    [B, S, H] there, replayed from the stored state at their start, with the state zeroed at each
    new life."""
    init = is_init_of(batch["done"])
    state: tuple[torch.Tensor, ...] = (batch["h"], batch["c"])
    if burn_in:
        state = net.warm(batch["obs"][:, :burn_in], state, init[:, :burn_in])
    logits, memory, _ = net.unroll(batch["obs"][:, burn_in:], state, init[:, burn_in:])
    return logits, memory


class RecurrentDaggerAgent:
    """The recurrent student: its carried state, the windows it stores and its updates."""

    def __init__(
        self,
        network: RecurrentActorCritic,
        settings: DaggerSettings,
        num_envs: int,
        obs_dim: int,
        n_actions: int,
        n_affordances: int,
    ):
        device = next(network.parameters()).device
        self.online, self.settings = network, settings
        self.recall = nn.Linear(network.hidden_size, 2 * n_affordances).to(device)
        params = [*network.actor_parameters(), *self.recall.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=settings.lr, fused=True)  # see learner.py
        length = settings.burn_in + settings.sequence_length
        fields = label_fields(obs_dim, n_actions, n_affordances, network.hidden_size)
        self.collector = SequenceCollector(length, settings.sequence_length, num_envs, fields, device)
        self.replay = SequenceReplay(max(1, settings.capacity // settings.sequence_length), device)
        self.actor = Carried(network, num_envs, device)
        self.labels: torch.Tensor | None = None  # the teacher's actions for the step being taken
        self.where = torch.zeros(num_envs, 2 * n_affordances, device=device)  # and the affordances
        self.updates = 0

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor.step(obs)[0]

    @property
    def labelled(self) -> int:
        """Labelled states stored, counting each window's learned steps."""
        return len(self.replay) * self.settings.sequence_length

    def store(self, step: dict[str, torch.Tensor]) -> None:
        assert self.labels is not None, "act() labels each state before it is stored"
        h, c = self.actor.before
        window = self.collector.push(
            {
                "obs": step["obs"],
                "mask": step["mask"],
                "label": self.labels,
                "where": self.where,
                "done": step["done"],
                "h": h[0],
                "c": c[0],
            }
        )
        if window is not None:
            self.replay.add(window)
        self.actor.end(step["done"])

    def update(self, batch_size: int, rng: torch.Generator) -> dict[str, float]:
        """One step on about `batch_size` labelled states: batch_size // sequence_length windows."""
        s = self.settings
        batch = self.replay.sample(max(1, batch_size // s.sequence_length), rng)
        logits, memory = window_logits(self.online, batch, s.burn_in)
        learned = {k: batch[k][:, s.burn_in :].flatten(0, 1) for k in ("mask", "label")}
        # squared distance in grid sizes, summed over the affordances: per step, of the size of
        # the cross-entropy (a mean over the 2A coordinates made it too weak to shape the LSTM)
        recall = (self.recall(memory) - batch["where"][:, s.burn_in :]).pow(2).sum(dim=-1).mean()
        extra = s.recall_weight * recall if s.recall_weight > 0 else None
        stats = descend(self.optimizer, logits.flatten(0, 1), learned, s.grad_clip, extra)
        self.updates += 1
        return {**stats, "recall_loss": float(recall.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {
            "network": self.online.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "recall": self.recall.state_dict(),
            "collector": self.collector.state_dict(),
            **self.actor.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.recall.load_state_dict(state["recall"])
        self.collector.load_state_dict(state["collector"])
        self.actor.load_state_dict(state)

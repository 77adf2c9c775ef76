"""PPO with a recurrent policy (`network.kind: lstm`), for the partial-observation levels.

The actor carries an LSTM state per slot and zeroes it where the env ended an episode, as the
recurrent DAgger student does (the two share `RecurrentActorCritic`, so PPO can start from a
recurrent DAgger checkpoint with `init_from`). Each rollout keeps the state every slot had at
its start; learning replays each slot's whole rollout from that state (backpropagation through
the rollout), zeroing the state at the steps where a new life began, so the first epoch's first
pass recomputes exactly the log-probabilities and values the actor saw. Minibatches are whole
slots' sequences, `minibatch_size // rollout_steps` slots each.

The critic reads the LSTM's output detached (see `RecurrentActorCritic`); a truncation's final
observation and the next rollout's first one are valued through the state the slot had reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from townlet_train.config import PPOSettings
from townlet_train.networks import RecurrentActorCritic
from townlet_train.ppo import PPOAgent, PPOTrainer, Rollout, shuffled
from townlet_train.sequences import restored, starts_of_lives, unroll_lstm, zero_ended


class RecurrentRollout(Rollout):
    """A rollout and the LSTM state (h0, c0) [N, H] each slot had at its first step."""

    KEYS = (*Rollout.KEYS, "h0", "c0")

    def __init__(self, steps: int, n: int, obs_dim: int, n_actions: int, hidden: int, device: torch.device):
        super().__init__(steps, n, obs_dim, n_actions, device)
        self.h0 = torch.zeros(n, hidden, device=device)
        self.c0 = torch.zeros(n, hidden, device=device)


def replay(
    net: RecurrentActorCritic, obs: torch.Tensor, done: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, T, A] and the LSTM's output [B, T, H] of sequences obs [B, T, D] from (h0, c0),
    with the state zeroed after each step that ended an episode."""
    features = net.features(obs)
    memory, _ = unroll_lstm(net.lstm, features, h0, c0, starts_of_lives(done))
    return net.head(features, memory), memory


class RecurrentPPOAgent(PPOAgent):
    online: RecurrentActorCritic  # type: ignore[assignment]
    rollout: RecurrentRollout
    teacher: RecurrentActorCritic | None  # type: ignore[assignment]

    def __init__(
        self, network: RecurrentActorCritic, settings: PPOSettings, n: int, obs_dim: int, n_actions: int
    ):
        super().__init__(network, settings, n, obs_dim, n_actions)  # type: ignore[arg-type]
        device = next(network.parameters()).device
        self.rollout = RecurrentRollout(
            settings.rollout_steps, n, obs_dim, n_actions, network.hidden_size, device
        )
        self.state = network.initial_state(n, device)

    def _memory(self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> Any:
        features = self.online.features(obs[:, None])
        memory, new_state = self.online.lstm(features, state)
        return self.online.head(features, memory)[:, 0], memory[:, 0], new_state

    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.rollout
        if r.t == 0:  # the state learning will replay this rollout from
            r.h0.copy_(self.state[0][0])
            r.c0.copy_(self.state[1][0])
        with torch.no_grad():
            logits, memory, self.state = self._memory(obs, self.state)
            return logits, self.online.value(obs, memory)

    def value_of(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            _, memory, _ = self._memory(obs, self.state)
            return self.online.value(obs, memory)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        super().store(step)  # a truncation's final obs is valued through the state reached
        self.state = zero_ended(self.state, step["done"])  # a new life starts from nothing

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "actor_state": list(self.state)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.state = restored(state["actor_state"])


class RecurrentPPOTrainer(PPOTrainer):
    """PPO's loop with the recurrent policy: minibatches of whole slot sequences."""

    agent: RecurrentPPOAgent

    def _make_agent(self, network: torch.nn.Module) -> PPOAgent:
        assert isinstance(network, RecurrentActorCritic)
        return RecurrentPPOAgent(network, self.settings, self.cfg.env.num_envs, self.obs_dim, self.n_actions)

    def _minibatches(self, data: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        n, steps = data["action"].shape[1], data["action"].shape[0]
        per_batch = min(n, max(1, self.settings.minibatch_size // steps))
        r = self.agent.rollout
        for slots in shuffled(n, per_batch, self.rng, self.device):
            batch = {k: v[:, slots].transpose(0, 1).flatten(0, 1) for k, v in data.items()}  # slot-major
            batch["sequence_obs"] = data["obs"][:, slots].transpose(0, 1)
            batch["sequence_done"] = data["done"][:, slots].transpose(0, 1)
            batch["h0"], batch["c0"] = r.h0[slots], r.c0[slots]
            yield batch

    def _outputs(
        self, batch: dict[str, torch.Tensor], kl_weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        agent, teacher = self.agent, None
        sequence = (batch["sequence_obs"], batch["sequence_done"], batch["h0"], batch["c0"])
        if agent.teacher is not None and kl_weight > 0:
            with torch.no_grad():
                teacher = replay(agent.teacher, *sequence)[0].flatten(0, 1)
        logits, memory = replay(agent.online, *sequence)
        value = agent.online.value(batch["sequence_obs"], memory)
        return logits.flatten(0, 1), value.flatten(), teacher

"""One model shape for every learner: `Model` = field encoders -> `Memory` -> heads.

    x = model.encode(obs)                         # [..., F] features of each step
    y, states = model.memory.unroll(x, state0, is_init)
    out = model.head(x, y)                        # Q-values (DQN) or logits (PPO, BC, DAgger)
    v = model.value(obs, y)                       # policy models: the critic (PPO)

`Model.unroll` and `Model.step` (acting: one step from a carried state) are written once here;
the four model classes only say what their encoder, memory and heads are. Their parameter
names are those of the networks they replace, so every checkpoint loads as before.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from townlet_train.models.encoders import FieldEncoder, Layout, WindowSummary, mlp
from townlet_train.models.map import EXPLORE, MapMemory
from townlet_train.models.memory import LSTMMemory, NoMemory, State


class Model(nn.Module):
    """The base of every network: see the module's docstring."""

    recurrent = False  # whether the memory carries a state between steps

    @property
    def memory_module(self) -> Any:
        raise NotImplementedError

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def initial_state(self, batch: int, device: torch.device) -> State:
        return self.memory_module.initial_state(batch, device)

    def unroll(
        self, obs: torch.Tensor, state0: State, is_init: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """(out [B, T, A], memory output y [B, T, H], states after each step) of windows obs
        [B, T, D] from state0 (rows [B, ...]), zeroing the state before each new life."""
        x = self.encode(obs)
        y, states = self.memory_module.unroll(x, state0, is_init)
        return self.head(x, y), y, states

    def warm(self, obs: torch.Tensor, state0: State, is_init: torch.Tensor) -> State:
        """The state (rows) after a burn-in of obs [B, T, D] from state0: no head, no gradient."""
        with torch.no_grad():
            _, states = self.memory_module.unroll(self.encode(obs), state0, is_init)
        return tuple(part[:, -1] for part in states)

    def step(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Acting: (out [N, A], y [N, H], state) of one observation per slot [N, D] from the
        carried state ([1, N, ...] tensors; `()` without memory)."""
        if not self.recurrent:
            x = self.encode(obs)
            return self.head(x, x), x, state
        is_init = torch.zeros(obs.shape[0], 1, dtype=torch.bool, device=obs.device)
        out, y, states = self.unroll(obs[:, None], tuple(part[0] for part in state), is_init)
        return out[:, 0], y[:, 0], tuple(part[:, -1][None] for part in states)

    def forward(self, obs: torch.Tensor, state: State | None = None) -> Any:
        """Feed-forward: out of obs [..., D]. Recurrent: (out [B, T, A], state) of obs [B, T, D]
        from a carried state, without resets."""
        if not self.recurrent:
            x = self.encode(obs)
            return self.head(x, x)
        assert state is not None
        is_init = torch.zeros(obs.shape[:2], dtype=torch.bool, device=obs.device)
        out, _, states = self.unroll(obs, tuple(part[0] for part in state), is_init)
        return out, tuple(part[:, -1][None] for part in states)


class PolicyModel(Model):
    """A model with policy logits and a critic (PPO, BC, DAgger): `ACTOR` names the modules of
    the policy (what PPO's `init_from` copies and imitation trains)."""

    ACTOR: tuple[str, ...] = ()

    def value(self, obs: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.ACTOR for p in getattr(self, name).parameters()]

    def critic_parameters(self) -> list[nn.Parameter]:
        return [
            p for name in ("critic_encoder", "critic", "values") for p in getattr(self, name).parameters()
        ]


def dueling(value: nn.Module | None, advantage: nn.Module, y: torch.Tensor) -> torch.Tensor:
    a = advantage(y)
    if value is None:
        return a
    return value(y) + a - a.mean(dim=-1, keepdim=True)


class QModel(Model):
    """Q-values: field encoders -> MLP -> memory -> dueling head (value + advantage), what the two
    Q-networks share. `FEATURES` and `MEMORY` name the MLP and the memory of each: the names of
    their parameters in checkpoints, kept from the networks these classes replace."""

    FEATURES = "trunk"
    MEMORY = "none"
    encoder: FieldEncoder
    advantage: nn.Linear
    value: nn.Linear | None

    def features(self, layout: Layout, hidden: list[int], embed: int) -> int:
        """Build the encoder and, under FEATURES, the MLP (in that order: the order in which they
        draw their initial weights); the MLP's output width."""
        self.encoder = FieldEncoder(layout, embed)
        setattr(self, self.FEATURES, mlp([self.encoder.out_features, *hidden]))
        return hidden[-1] if hidden else self.encoder.out_features

    @property
    def memory_module(self) -> Any:
        return getattr(self, self.MEMORY)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        features: nn.Module = getattr(self, self.FEATURES)
        return features(self.encoder(obs))

    def head(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return dueling(self.value, self.advantage, y)


class QNetwork(QModel):
    """Feed-forward Q-network, with an optional dueling head (value + advantage)."""

    def __init__(self, layout: Layout, n_actions: int, hidden: list[int], embed: int, dueling: bool):
        super().__init__()
        width = self.features(layout, hidden, embed)
        self.dueling = dueling
        self.advantage = nn.Linear(width, n_actions)
        self.value = nn.Linear(width, 1) if dueling else None
        self.none = NoMemory()


class RecurrentQNetwork(QModel):
    """Field encoders -> MLP -> LSTM -> dueling head, for the partial-observation levels."""

    recurrent = True
    FEATURES = "pre"
    MEMORY = "lstm"

    def __init__(self, layout: Layout, n_actions: int, hidden: list[int], embed: int, lstm_hidden: int):
        super().__init__()
        width = self.features(layout, hidden, embed)
        self.lstm = LSTMMemory(width, lstm_hidden)
        self.hidden_size = lstm_hidden
        self.advantage = nn.Linear(lstm_hidden, n_actions)
        self.value = nn.Linear(lstm_hidden, 1)


class ActorCritic(PolicyModel):
    """Policy logits and state value, from separate trunks: the critic can then be trained alone
    first (PPO from a cloned student) without moving the actor's features.

    `forward(obs)` returns the logits, so greedy acting is `masked_argmax(net(obs), mask)` as for a
    Q-network; `value(obs)` returns [B] values.
    """

    ACTOR = ("actor_encoder", "actor", "logits")  # the modules of the policy (PPO's init_from)

    def __init__(self, layout: Layout, n_actions: int, hidden: list[int], embed: int):
        super().__init__()
        width = hidden[-1] if hidden else embed * len(layout)
        self.actor_encoder = FieldEncoder(layout, embed)
        self.actor = mlp([self.actor_encoder.out_features, *hidden])
        self.logits = nn.Linear(width, n_actions)
        self.critic_encoder = FieldEncoder(layout, embed)
        self.critic = mlp([self.critic_encoder.out_features, *hidden])
        self.values = nn.Linear(width, 1)
        self.none = NoMemory()
        # small initial logits: a fresh policy starts near uniform over the legal actions
        nn.init.orthogonal_(self.logits.weight, gain=0.01)
        nn.init.zeros_(self.logits.bias)

    @property
    def memory_module(self) -> Any:
        return self.none

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.actor_encoder(obs))

    def head(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.logits(y)

    def value(self, obs: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.values(self.critic(self.critic_encoder(obs))).squeeze(-1)


class RecurrentActorCritic(PolicyModel):
    """The policy of the partial-observation levels: field encoders -> MLP -> LSTM, and logits
    from both the current features and the LSTM's output (what is in view needs no memory; the
    memory adds what is not). The critic (for PPO) has its own encoder and reads the LSTM's
    output detached, so that training the critic alone never moves the actor or its memory.

    With the shape of a `window` field (`shapes`), the actor also reads its `WindowSummary`.

    Its `encode` is the LSTM's input (`features`), its head reads both that and the LSTM's output.
    """

    recurrent = True
    ACTOR = ("actor_encoder", "window_encoder", "actor", "lstm", "policy", "logits")

    def __init__(
        self,
        layout: Layout,
        n_actions: int,
        hidden: list[int],
        embed: int,
        lstm_hidden: int,
        shapes: dict[str, tuple[int, ...]] | None = None,
    ):
        super().__init__()
        self.actor_encoder = FieldEncoder(layout, embed)
        window = next(((o, (shapes or {}).get(n)) for n, o, _ in layout if n == "window"), None)
        self.window: nn.Module = nn.Sequential()  # no window field: nothing added
        self.window_encoder: nn.Module = nn.Sequential()
        summary = 0
        if window is not None and window[1] is not None and len(window[1]) == 3:
            self.window = WindowSummary(window[0], window[1])
            self.window_encoder = nn.Linear(self.window.out_features, embed)
            summary = embed
        inputs = self.actor_encoder.out_features + summary
        self.actor = mlp([inputs, *hidden])
        width = hidden[-1] if hidden else inputs
        self.lstm = LSTMMemory(width, lstm_hidden)
        self.hidden_size = lstm_hidden
        # one hidden layer over both: a remembered target's direction is a function of where the
        # agent is now and what the memory holds, which one linear layer cannot form
        self.policy = mlp([width + lstm_hidden, lstm_hidden])
        self.logits = nn.Linear(lstm_hidden, n_actions)
        self.critic_encoder = FieldEncoder(layout, embed)
        self.critic = mlp([self.critic_encoder.out_features + lstm_hidden, *hidden])
        self.values = nn.Linear(hidden[-1] if hidden else self.critic_encoder.out_features + lstm_hidden, 1)
        nn.init.orthogonal_(self.logits.weight, gain=0.01)  # near uniform at first, as ActorCritic
        nn.init.zeros_(self.logits.bias)

    @property
    def memory_module(self) -> Any:
        return self.lstm

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.features(obs)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The LSTM's input for each step: [..., D] -> [..., F]."""
        summary = obs[..., :0]
        if isinstance(self.window, WindowSummary):
            summary = torch.relu(self.window_encoder(self.window(obs)))
        return self.actor(torch.cat([self.actor_encoder(obs), summary], dim=-1))

    def head(self, features: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Logits from a step's features and the LSTM's output after it."""
        return self.logits(self.policy(torch.cat([features, memory], dim=-1)))

    def value(self, obs: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """[...] values of observations [..., D], given the LSTM's output [..., H] at each."""
        assert y is not None, "the recurrent critic reads the memory's output"
        inputs = torch.cat([self.critic_encoder(obs), y.detach()], dim=-1)
        return self.values(self.critic(inputs)).squeeze(-1)


class MapStudent(Model):
    """`MapMemory` then a feed-forward `ActorCritic` over its filled observations: its encoder is
    the identity, its memory the map (whose output y is the filled observation), its head the
    actor-critic's policy. DAgger stores y and learns the head from it feed-forward."""

    recurrent = True

    def __init__(
        self,
        layout: Layout,
        n_actions: int,
        hidden: list[int],
        embed: int,
        shapes: dict[str, tuple[int, ...]],
        grid: tuple[int, int],
    ):
        super().__init__()
        self.memory = MapMemory(layout, shapes, grid)
        obs_dim = sum(size for _, _, size in layout)
        self.policy = ActorCritic([*layout, ("explore", obs_dim, EXPLORE)], n_actions, hidden, embed)
        self.inputs = obs_dim + EXPLORE

    @property
    def memory_module(self) -> Any:
        return self.memory

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def head(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.policy(y)


def build_network(
    kind: str,
    layout: Layout,
    n_actions: int,
    hidden: list[int],
    embed: int,
    lstm_hidden: int,
    algorithm: str = "dqn",
    shapes: dict[str, tuple[int, ...]] | None = None,
    grid: tuple[int, int] | None = None,
) -> Model:
    """The network of a config; `shapes` (see `field_shapes`) lets a recurrent policy summarise
    its window, and with the level's `grid` (width, height) a map student maps it."""
    if kind == "map":
        if shapes is None or grid is None:
            raise ValueError("network.kind 'map' needs the level's field shapes and grid size")
        return MapStudent(layout, n_actions, hidden, embed, shapes, grid)
    if algorithm != "dqn":  # PPO, BC and DAgger learn a policy, not Q-values
        if kind == "lstm":
            return RecurrentActorCritic(layout, n_actions, hidden, embed, lstm_hidden, shapes)
        return ActorCritic(layout, n_actions, hidden, embed)
    if kind == "lstm":
        return RecurrentQNetwork(layout, n_actions, hidden, embed, lstm_hidden)
    return QNetwork(layout, n_actions, hidden, embed, dueling=kind == "dueling")


def policy_network(net: Any, env: Any, n_actions: int, algorithm: str) -> Model:
    """The policy network that a config's `network` settings ask for, on a vector env's layout."""
    return build_network(
        net.kind,
        env.observation_layout,
        n_actions,
        net.hidden,
        net.field_embed,
        net.lstm_hidden,
        algorithm,
        field_shapes(env.level),
        (env.level.width, env.level.height),
    )


def field_shapes(level: Any) -> dict[str, tuple[int, ...]]:
    """{field name: shape} of a compiled level's observation layout."""
    return {field.name: tuple(field.shape) for field in level.layout.fields}


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Illegal actions get probability exactly 0 (a large negative, not -inf: no NaN gradients)."""
    return logits.masked_fill(~mask, -1e9)


def masked_argmax(q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Greedy action among the legal ones (every row has at least WAIT legal)."""
    return q.masked_fill(~mask, float("-inf")).argmax(dim=-1)

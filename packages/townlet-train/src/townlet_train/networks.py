"""Q- and policy networks that read their inputs by field name from the env's observation layout.

An earlier implementation sliced its observation by hand and fed its LSTM all zeros. Here each
layout field gets its own encoder, keyed by name, so a field cannot silently fall out of the
input (tests/train/test_networks.py checks that every field reaches the output).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from townlet_train.map_memory import EXPLORE, MapMemory, State

Layout = list[tuple[str, int, int]]  # (name, offset, size), as TownletVectorEnv.observation_layout


class FieldEncoder(nn.Module):
    """One linear encoder per observation field; their outputs are concatenated."""

    def __init__(self, layout: Layout, embed: int) -> None:
        super().__init__()
        self.layout = [(name, offset, size) for name, offset, size in layout]
        self.encoders = nn.ModuleDict({name: nn.Linear(size, embed) for name, _, size in self.layout})
        self.out_features = embed * len(self.layout)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        parts = [self.encoders[name](obs[..., offset : offset + size]) for name, offset, size in self.layout]
        return torch.relu(torch.cat(parts, dim=-1))


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Feed-forward Q-network, with an optional dueling head (value + advantage)."""

    recurrent = False

    def __init__(self, layout: Layout, n_actions: int, hidden: list[int], embed: int, dueling: bool):
        super().__init__()
        self.encoder = FieldEncoder(layout, embed)
        self.trunk = _mlp([self.encoder.out_features, *hidden])
        width = hidden[-1] if hidden else self.encoder.out_features
        self.dueling = dueling
        self.advantage = nn.Linear(width, n_actions)
        self.value = nn.Linear(width, 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.trunk(self.encoder(obs))
        advantage = self.advantage(features)
        if self.value is None:
            return advantage
        return self.value(features) + advantage - advantage.mean(dim=-1, keepdim=True)


class RecurrentQNetwork(nn.Module):
    """Field encoders -> LSTM -> dueling head, for the partial-observation levels.

    `forward(obs [B, T, D], state)` returns q [B, T, A] and the new (h, c), each [1, B, H].
    """

    recurrent = True

    def __init__(self, layout: Layout, n_actions: int, hidden: list[int], embed: int, lstm_hidden: int):
        super().__init__()
        self.encoder = FieldEncoder(layout, embed)
        self.pre = _mlp([self.encoder.out_features, *hidden])
        width = hidden[-1] if hidden else self.encoder.out_features
        self.lstm = nn.LSTM(width, lstm_hidden, batch_first=True)
        self.hidden_size = lstm_hidden
        self.advantage = nn.Linear(lstm_hidden, n_actions)
        self.value = nn.Linear(lstm_hidden, 1)

    def initial_state(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(1, batch, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def forward(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        features = self.pre(self.encoder(obs))
        out, new_state = self.lstm(features, state)
        advantage = self.advantage(out)
        q = self.value(out) + advantage - advantage.mean(dim=-1, keepdim=True)
        return q, (new_state[0], new_state[1])


class ActorCritic(nn.Module):
    """Policy logits and state value, from separate trunks: the critic can then be trained alone
    first (PPO from a cloned student) without moving the actor's features.

    `forward(obs)` returns the logits, so greedy acting is `masked_argmax(net(obs), mask)` as for a
    Q-network; `value(obs)` returns [B] values.
    """

    recurrent = False
    ACTOR = ("actor_encoder", "actor", "logits")  # the modules of the policy (PPO's init_from)

    def __init__(self, layout: Layout, n_actions: int, hidden: list[int], embed: int):
        super().__init__()
        width = hidden[-1] if hidden else embed * len(layout)
        self.actor_encoder = FieldEncoder(layout, embed)
        self.actor = _mlp([self.actor_encoder.out_features, *hidden])
        self.logits = nn.Linear(width, n_actions)
        self.critic_encoder = FieldEncoder(layout, embed)
        self.critic = _mlp([self.critic_encoder.out_features, *hidden])
        self.values = nn.Linear(width, 1)
        # small initial logits: a fresh policy starts near uniform over the legal actions
        nn.init.orthogonal_(self.logits.weight, gain=0.01)
        nn.init.zeros_(self.logits.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.actor(self.actor_encoder(obs)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.values(self.critic(self.critic_encoder(obs))).squeeze(-1)

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.ACTOR for p in getattr(self, name).parameters()]

    def critic_parameters(self) -> list[nn.Parameter]:
        return [*self.critic_encoder.parameters(), *self.critic.parameters(), *self.values.parameters()]


class WindowSummary(nn.Module):
    """Per channel of an egocentric window field [rows, cols, channels] (row-major, the agent in
    the centre): whether any cell shows it, and the mean offset (dx, dy) of the cells that do, in
    half-widths of the window. That is the format of L1's `affordances` field, restricted to what
    the window shows: a fixed map, since "which way is the Bed, if I see one" is the same sum over
    cells for every channel, which the student otherwise learns from labels through a 400-wide
    one-hot (on L2, one run each: 310 against 289 training survival at 2 million agent-steps).
    """

    def __init__(self, offset: int, shape: tuple[int, ...]):
        super().__init__()
        rows, cols, channels = shape
        self.offset, self.cells, self.channels = offset, rows * cols, channels
        dy, dx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        half = torch.tensor([max(cols // 2, 1), max(rows // 2, 1)])
        where = torch.stack([dx - cols // 2, dy - rows // 2], dim=-1).reshape(-1, 2) / half
        self.register_buffer("where", where.float(), persistent=False)  # [cells, 2] (dx, dy)
        self.out_features = 3 * channels

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        size = self.cells * self.channels
        window = obs[..., self.offset : self.offset + size].unflatten(-1, (self.cells, self.channels))
        count = window.sum(dim=-2)  # [..., C]
        total = torch.einsum("...kc,kd->...cd", window, self.where)  # [..., C, 2]
        mean = total / count.clamp(min=1.0)[..., None]
        return torch.cat([count.clamp(max=1.0), mean.flatten(-2)], dim=-1)


class RecurrentActorCritic(nn.Module):
    """The policy of the partial-observation levels: field encoders -> MLP -> LSTM, and logits
    from both the current features and the LSTM's output (what is in view needs no memory; the
    memory adds what is not). The critic (for PPO) has its own encoder and reads the LSTM's
    output detached, so that training the critic alone never moves the actor or its memory.

    With the shape of a `window` field (`shapes`), the actor also reads its `WindowSummary`.

    `forward(obs [B, T, D], state)` returns logits [B, T, A] and the new (h, c), each [1, B, H],
    as `RecurrentQNetwork` returns Q-values: greedy acting is the same for both.
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
        self.actor = _mlp([inputs, *hidden])
        width = hidden[-1] if hidden else inputs
        self.lstm = nn.LSTM(width, lstm_hidden, batch_first=True)
        self.hidden_size = lstm_hidden
        # one hidden layer over both: a remembered target's direction is a function of where the
        # agent is now and what the memory holds, which one linear layer cannot form
        self.policy = _mlp([width + lstm_hidden, lstm_hidden])
        self.logits = nn.Linear(lstm_hidden, n_actions)
        self.critic_encoder = FieldEncoder(layout, embed)
        self.critic = _mlp([self.critic_encoder.out_features + lstm_hidden, *hidden])
        self.values = nn.Linear(hidden[-1] if hidden else self.critic_encoder.out_features + lstm_hidden, 1)
        nn.init.orthogonal_(self.logits.weight, gain=0.01)  # near uniform at first, as ActorCritic
        nn.init.zeros_(self.logits.bias)

    def initial_state(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(1, batch, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The LSTM's input for each step: [..., D] -> [..., F]."""
        summary = obs[..., :0]
        if isinstance(self.window, WindowSummary):
            summary = torch.relu(self.window_encoder(self.window(obs)))
        return self.actor(torch.cat([self.actor_encoder(obs), summary], dim=-1))

    def head(self, features: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Logits from a step's features and the LSTM's output after it."""
        return self.logits(self.policy(torch.cat([features, memory], dim=-1)))

    def forward(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        features = self.features(obs)
        memory, new_state = self.lstm(features, state)
        return self.head(features, memory), (new_state[0], new_state[1])

    def value(self, obs: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """[...] values of observations [..., D], given the LSTM's output [..., H] at each."""
        inputs = torch.cat([self.critic_encoder(obs), memory.detach()], dim=-1)
        return self.values(self.critic(inputs)).squeeze(-1)

    def actor_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.ACTOR for p in getattr(self, name).parameters()]

    def critic_parameters(self) -> list[nn.Parameter]:
        return [*self.critic_encoder.parameters(), *self.critic.parameters(), *self.values.parameters()]


class MapStudent(nn.Module):
    """`MapMemory` then a feed-forward `ActorCritic` over its filled observations. Recurrent as
    far as acting goes: `forward(obs [B, T, D], state)` returns logits [B, T, A] and the new
    state, as `RecurrentActorCritic` does, so eval, recording and the observer carry it alike."""

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

    def initial_state(self, batch: int, device: torch.device) -> State:
        return self.memory.initial_state(batch, device)

    def forward(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        logits = []
        for t in range(obs.shape[1]):
            inputs, state = self.memory.step(obs[:, t], state)
            logits.append(self.policy(inputs))
        return torch.stack(logits, dim=1), state


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
) -> nn.Module:
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


def policy_network(net: Any, env: Any, n_actions: int, algorithm: str) -> nn.Module:
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

"""A student with a map for the partial-observation levels (L2, L3): `network.kind: map`.

An LSTM student imitating the privileged teacher stalls far below it (367 and 397 of 500 on L2
and L3): the teacher walks to a bed the student has never seen, and a label says where to go,
not what to keep in mind. This student's memory is not learned. It is a map, written from the
observations alone (no privileged input), carried per slot and cleared at each new life:

- where each affordance was last seen: its window shows each affordance's cells, and the
  observation's `position` field says where the window is;
- which cells of the grid the window has shown, to say where the unexplored part lies.

Before each step the map fills the observation's `affordances` field, which the partial view
leaves at zero, in the full view's format (offset from the agent in grid sizes, and a flag),
for the affordances seen so far, and appends an `explore` field: the unexplored fraction of the
grid, the mean offset of its cells and the offset of the nearest one. A feed-forward
`ActorCritic` reads the result, so DAgger stores the filled observations and learns like the
L1 student. Mapping is an engineered memory (as in Neural Map or Active Neural SLAM), not a
learned one; the LSTM student (`network.kind: lstm`) remains for comparison.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from townlet_train.config import DaggerSettings
from townlet_train.imitation import DaggerAgent, DaggerTrainer, LabelBuffer, clone_step
from townlet_train.networks import ActorCritic, Layout
from townlet_train.scripted import Knowledge

EXPLORE = 5  # unexplored fraction, mean offset (2), nearest offset (2)
State = tuple[torch.Tensor, torch.Tensor]


def _field(layout: Layout, name: str) -> tuple[int, int]:
    for field, offset, size in layout:
        if field == name:
            return offset, size
    raise ValueError(
        f"network.kind 'map' needs an observation field '{name}' (a partial view: levels "
        f"L2_partial_observability, L3_temporal_mechanics); this level's fields are "
        f"{', '.join(f for f, _, _ in layout)}"
    )


class MapMemory(nn.Module):
    """The map's writes and reads: `step(obs [B, D], state) -> (filled obs [B, D + 5], state)`.

    State: `where` [1, B, 3C] (x, y and a seen flag per affordance channel, in cells) and `seen`
    [1, B, P] (the cells of the grid padded by the window's half-width that the window showed),
    both zero for a new life, so the policy protocol's reset (multiply by not-done) clears them.
    """

    view_xy: torch.Tensor  # [K, 2] each window cell's offset from the agent
    view_index: torch.Tensor  # [K] the same, as an index into the padded grid
    cell_xy: torch.Tensor  # [P, 2] each padded-grid cell's (x, y)
    inside: torch.Tensor  # [P] 1 on the grid's own cells
    scale: torch.Tensor  # [2] the observation's position scale

    def __init__(self, layout: Layout, shapes: dict[str, tuple[int, ...]], grid: tuple[int, int]):
        super().__init__()
        self.position = _field(layout, "position")[0]
        self.window, _ = _field(layout, "window")
        self.affordances, _ = _field(layout, "affordances")
        rows, cols, channels = shapes["window"]
        self.channels = shapes["affordances"][1]  # the window adds blocked and agents channels
        self.cells, self.stride = rows * cols, channels
        width, height = grid
        pad = max(rows, cols) // 2
        self.pad, self.padded_width = pad, width + 2 * pad
        self.padded_cells = (height + 2 * pad) * self.padded_width
        dy, dx = torch.meshgrid(torch.arange(rows) - rows // 2, torch.arange(cols) - cols // 2, indexing="ij")
        self.register_buffer("view_xy", torch.stack([dx, dy], -1).reshape(-1, 2).float(), persistent=False)
        self.register_buffer("view_index", (dy * self.padded_width + dx).reshape(-1), persistent=False)
        y, x = torch.meshgrid(
            torch.arange(height + 2 * pad) - pad, torch.arange(width + 2 * pad) - pad, indexing="ij"
        )
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        self.register_buffer("cell_xy", torch.stack([x, y], -1).reshape(-1, 2).float(), persistent=False)
        self.register_buffer("inside", inside.reshape(-1).float(), persistent=False)
        scale = torch.tensor([max(width - 1, 1), max(height - 1, 1)], dtype=torch.float32)
        self.register_buffer("scale", scale, persistent=False)

    def initial_state(self, batch: int, device: torch.device) -> State:
        return (
            torch.zeros(1, batch, 3 * self.channels, device=device),
            torch.zeros(1, batch, self.padded_cells, device=device),
        )

    def step(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        n, c = obs.shape[0], self.channels
        here = torch.round(obs[:, self.position : self.position + 2] * self.scale)  # [B, 2] (x, y)
        view = obs[:, self.window : self.window + self.cells * self.stride].view(n, self.cells, self.stride)
        view = view[:, :, :c]
        count = view.sum(dim=1)  # [B, C]
        mean = torch.einsum("bkc,kd->bcd", view, self.view_xy) / count.clamp(min=1.0)[..., None]
        visible = (count > 0)[..., None]
        where = state[0][0].view(n, c, 3)
        xy = torch.where(visible, here[:, None, :] + mean, where[..., :2])
        known = torch.maximum(where[..., 2:], visible.float())
        seen = state[1][0].clone()
        anchor = (here[:, 1] + self.pad) * self.padded_width + here[:, 0] + self.pad
        seen.scatter_(1, anchor.long()[:, None] + self.view_index, 1.0)
        filled = obs.clone()
        field = filled[:, self.affordances : self.affordances + 3 * c].view(n, 3, c)
        field[:, 0:2] = ((xy - here[:, None, :]) / self.scale * known).transpose(1, 2)
        field[:, 2] = known[..., 0]
        inputs = torch.cat([filled, self.explore(here, seen)], dim=1)
        return inputs, (torch.cat([xy, known], -1).view(1, n, 3 * c), seen[None])

    def unexplored(self, here: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, P] 1 on the grid's cells not seen yet, [B, 2] the nearest of them, in steps;
        ties go to the first in row-major order, and any cell when none is left)."""
        unseen = (1.0 - seen) * self.inside
        distance = (self.cell_xy[None] - here[:, None]).abs().sum(-1)
        nearest = distance.masked_fill(unseen == 0, float("inf")).argmin(dim=1)
        return unseen, self.cell_xy[nearest]

    def explore(self, here: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """[B, 5]: the unexplored fraction, and the mean and nearest offsets of unexplored cells
        (zero when all is explored), in grid sizes."""
        unseen, nearest = self.unexplored(here, seen)
        count = unseen.sum(dim=1, keepdim=True)
        mean = unseen @ self.cell_xy / count.clamp(min=1.0) - here
        some = (count > 0).float()
        fraction = count / self.inside.sum()
        return torch.cat([fraction, mean / self.scale * some, (nearest - here) / self.scale * some], dim=1)

    def knowledge(self, obs: torch.Tensor, state: State, aff_channel: torch.Tensor) -> Knowledge:
        """What the map in `state` knows, for the scripted teacher (`teacher_knows: student_map`);
        `aff_channel` [A] is each affordance's channel."""
        n = obs.shape[0]
        here = torch.round(obs[:, self.position : self.position + 2] * self.scale)
        known = state[0][0].view(n, self.channels, 3)[..., 2] > 0
        unseen, nearest = self.unexplored(here, state[1][0])
        return Knowledge(known[:, aff_channel], nearest.long(), unseen.sum(dim=1) > 0)


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


class MapDaggerAgent(DaggerAgent):
    """DAgger's student with a map: it stores the filled observations it acted on, so learning
    is the feed-forward student's."""

    def __init__(self, network: MapStudent, settings: DaggerSettings, num_envs: int, n_actions: int):
        device = next(network.parameters()).device
        self.student, self.settings = network, settings
        self.online = network  # type: ignore[assignment]  # checkpoints hold the whole student
        self.optimizer = torch.optim.Adam(network.policy.actor_parameters(), lr=settings.lr, fused=True)
        self.replay = LabelBuffer(settings.capacity, network.inputs, n_actions, device)
        self.labels: torch.Tensor | None = None
        self.updates = 0
        self.state = network.initial_state(num_envs, device)
        self.inputs = torch.zeros(num_envs, network.inputs, device=device)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.inputs, self.state = self.student.memory.step(obs, self.state)
            return self.student.policy(self.inputs)

    def store(self, step: dict[str, torch.Tensor]) -> None:
        assert self.labels is not None, "act() labels each state before it is stored"
        self.replay.add(self.inputs, step["mask"], self.labels)
        keep = (~step["done"]).float()[None, :, None]  # a new life starts with an empty map
        self.state = (self.state[0] * keep, self.state[1] * keep)

    def update(self, batch_size: int, rng: torch.Generator) -> dict[str, float]:
        batch = self.replay.sample(batch_size, rng)
        stats = clone_step(self.student.policy, self.optimizer, batch, self.settings.grad_clip)
        self.updates += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "actor_state": list(self.state)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.state = (state["actor_state"][0].clone(), state["actor_state"][1].clone())


class MapDaggerTrainer(DaggerTrainer):
    """DAgger's acting and labelling with the map student (`network.kind: map`)."""

    def _student(self, network: nn.Module) -> MapDaggerAgent:
        assert isinstance(network, MapStudent)
        level = self.env.level
        if level.layout.encoding != "partial":
            raise ValueError(
                f"network.kind 'map' maps a partial view (levels L2_partial_observability, "
                f"L3_temporal_mechanics); level '{level.name}' shows the whole town: use mlp"
            )
        return MapDaggerAgent(network, self.settings, self.cfg.env.num_envs, self.n_actions)

    def label(self) -> torch.Tensor:
        if self.settings.teacher_knows == "town":
            return super().label()
        agent: MapDaggerAgent = self.agent  # type: ignore[assignment]
        memory = agent.student.memory
        knowledge = memory.knowledge(self.obs, agent.state, self.env.level.aff_channel)
        return self.teacher(self.obs, self.info, knowledge)

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
`ActorCritic` reads the result (`networks.MapStudent`), so DAgger stores the filled observations
and learns like the L1 student. Mapping is an engineered memory (as in
Neural Map or Active Neural SLAM), not a learned one; the LSTM student (`network.kind: lstm`)
remains for comparison.
"""

from __future__ import annotations

import torch
from torch import nn

from townlet_env.policies.scripted import Knowledge
from townlet_train.models.encoders import Layout
from townlet_train.models.memory import reset_ended

EXPLORE = 5  # unexplored fraction, mean offset (2), nearest offset (2)
State = tuple[torch.Tensor, ...]


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

    def unroll(self, x: torch.Tensor, state0: State, is_init: torch.Tensor) -> tuple[torch.Tensor, State]:
        """The `Memory` protocol: step by step (the map is written per observation); y [B, T, D + 5]
        are the filled observations, the states after every step are kept."""
        state = tuple(part[None] for part in state0)
        filled, after = [], []
        for t in range(x.shape[1]):
            if t and bool(is_init[:, t].any()):
                state = reset_ended(state, is_init[:, t])
            y, state = self.step(x[:, t], state)
            filled.append(y)
            after.append(state)
        return torch.stack(filled, 1), tuple(
            torch.stack([s[i][0] for s in after], 1) for i in range(len(state))
        )

    def cell_of(self, obs: torch.Tensor) -> torch.Tensor:
        """[B, 2] the agent's cell (x, y), from the observation's normalised `position`."""
        return torch.round(obs[:, self.position : self.position + 2] * self.scale)

    def step(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        n, c = obs.shape[0], self.channels
        here = self.cell_of(obs)
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
        here = self.cell_of(obs)
        known = state[0][0].view(n, self.channels, 3)[..., 2] > 0
        unseen, nearest = self.unexplored(here, state[1][0])
        return Knowledge(known[:, aff_channel], nearest.long(), unseen.sum(dim=1) > 0)

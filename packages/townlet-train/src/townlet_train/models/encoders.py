"""Field encoders: each observation field, read by name from the env's layout, gets its own.

An earlier implementation sliced its observation by hand and fed its LSTM all zeros. Here each
layout field gets its own encoder, keyed by name, so a field cannot silently fall out of the
input (tests/train/test_networks.py checks that every field reaches the output).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

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


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


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

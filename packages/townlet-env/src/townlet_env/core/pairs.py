"""Pairwise facts of the agents of each town on a social level, laid out with the town last.

Every social rule compares the agents of a town pair by pair: who stands next to whom, who
shares an affordance, who is served first. Torch's CPU kernels are fast along a long contiguous
innermost dimension, and slow when that dimension is a few agents wide or broadcast: at 683
towns of six, `[T, K, 1] & [T, 1, K]` costs about seven times `[K, 1, T] & [1, K, T]`, and a
reduction over the last six entries of [T, K, K] several times one over the middle of
[K, K, T]. So here a pairwise fact is a [K (i), K (j), T] tensor, a per-agent fact a [K, T] one,
and the few per-slot tensors a tick needs are converted once (`town_last`), its results back
once (`slot_major`).

`Pairs` holds these facts for one state, each computed on first use and then kept: the
observation, the mask, `info` and the next tick read the same ones (`Town` passes them along).
"""

from __future__ import annotations

import functools
import math
from functools import cached_property

import torch

from townlet_env.core.state import TownState

NOT_QUEUED = -1


def town_last(values: torch.Tensor, k: int) -> torch.Tensor:
    """[N] per-slot values as [K, T]: row i holds slot i of every town."""
    return values.view(-1, k).t().contiguous()


def slot_major(values: torch.Tensor) -> torch.Tensor:
    """[K, T] per-agent values back as [N] (slot `town * K + i`)."""
    return values.t().reshape(-1)


def ties_town_last(state: TownState) -> torch.Tensor:
    """[3, K (i), K (j), T] float32: trust, familiarity and rivalry of i toward j."""
    k = state.agents_per_town
    ties = torch.stack((state.trust, state.familiarity, state.rivalry))
    return ties.view(3, -1, k, k).permute(0, 2, 3, 1).contiguous()


def ties_slot_major(ties: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[N, K] trust, familiarity and rivalry from their [3, K, K, T] town-last block."""
    trust, familiarity, rivalry = ties.permute(0, 3, 1, 2).reshape(3, -1, ties.shape[1]).unbind(dim=0)
    return trust, familiarity, rivalry


@functools.lru_cache(maxsize=64)
def rows(k: int, device: torch.device) -> torch.Tensor:
    """[K, 1]: i, each agent's slot in its town, beside a [K, T] per-agent tensor."""
    return torch.arange(k, device=device)[:, None]


@functools.lru_cache(maxsize=64)
def columns(k: int, device: torch.device, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """[1, K, 1]: j, to compare with a [K, 1, T] per-agent slot index."""
    return torch.arange(k, device=device, dtype=dtype).view(1, k, 1)


def any_other(values: torch.Tensor) -> torch.Tensor:
    """[K, T] `values.any(dim=1)` of a [K (i), K (j), T] bool tensor, as the largest of its
    bytes: torch's `any` over that middle dimension costs about four times `amax`."""
    return values.view(torch.uint8).amax(dim=1).view(torch.bool)


X, Y, AFF, ALIVE, QUEUE_KEY, PROGRESS = range(6)


class Pairs:
    """The pairwise facts of one state (and `aff`, the affordance under each of its slots).

    `scratch` (a `Town` passes its own) keeps the observation's largest temporaries from one
    state to the next: freed every step, blocks of a megabyte or so go back to the kernel, and
    the next step pays a page fault for every 4 KiB of them again. `ties`, when known (the
    step that made the state has them), spares converting the state's ties back.
    """

    def __init__(
        self,
        state: TownState,
        aff: torch.Tensor,
        max_steps: int,
        scratch: dict[str, torch.Tensor] | None = None,
        ties: torch.Tensor | None = None,
    ) -> None:
        self.state = state
        self.aff = aff
        self.max_steps = max_steps
        self.k = state.agents_per_town
        self.scratch = scratch
        if ties is not None:
            self.__dict__["ties"] = ties  # the cached_property's value

    def head(self, state: TownState, aff: torch.Tensor) -> Pairs:
        """The `Pairs` of `state`, the first towns of this one's state (`aff`: its slots' rows of
        this one's): every fact computed so far, as a view of this one's."""
        t, n = state.num_towns, state.num_slots
        new = Pairs(state, aff, self.max_steps, self.scratch)
        for name in self.__dict__.keys() & FACTS:
            value = self.__dict__[name]
            pieces = value if isinstance(value, tuple) else (value,)
            cut = tuple(v[:n] if name in SLOT_FACTS else v[..., :t] for v in pieces)
            new.__dict__[name] = cut if isinstance(value, tuple) else cut[0]
        market = self.__dict__.get("market")  # an economy level's (observe.market_of)
        if market is not None:
            new.__dict__["market"] = market.head(t, n)
        return new

    def buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """An uninitialised float32 tensor, from `scratch` when there is one. A scratch buffer
        only grows, with some room to spare: an autoreset observes a few more towns than the
        batch holds, a different few every step."""
        device = self.aff.device
        if self.scratch is None:
            return torch.empty(shape, device=device)
        size = math.prod(shape)
        found = self.scratch.get(name)
        if found is None or found.numel() < size or found.device != device:
            found = self.scratch[name] = torch.empty(size + size // 4, device=device)
        return found[:size].view(shape)

    @cached_property
    def agents(self) -> torch.Tensor:
        """[6, K, T] int32: x, y, affordance underfoot, alive, queue key and progress of every
        agent, converted to the town-last layout at once (all of them fit: ticks are at most a
        million)."""
        s = self.state
        facts = torch.stack((s.position[:, 0], s.position[:, 1], self.aff, s.alive, s.queue_key, s.progress))
        facts = facts.view(6, -1, self.k).transpose(1, 2)
        return facts.to(torch.int32, memory_format=torch.contiguous_format)

    @cached_property
    def alive(self) -> torch.Tensor:
        """[K, T] bool."""
        return self.agents[ALIVE] > 0

    @cached_property
    def offset(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[K (i), K (j), T] int32 each: x_j - x_i and y_j - y_i."""
        x, y = self.agents[X], self.agents[Y]
        return x[None, :, :] - x[:, None, :], y[None, :, :] - y[:, None, :]

    @cached_property
    def living(self) -> torch.Tensor:
        """[K, K, T] bool: i and j are both alive."""
        return self.alive[:, None, :] & self.alive[None, :, :]

    @cached_property
    def distance(self) -> torch.Tensor:
        """[K, K, T] int32: Manhattan distance (between living and dead agents alike)."""
        dx, dy = self.offset
        return dx.abs() + dy.abs()

    @cached_property
    def near(self) -> torch.Tensor:
        """[K, K, T] bool: j is another living agent on i's cell or next to it, i is alive."""
        near = (self.distance <= 1) & self.living
        near.diagonal(dim1=0, dim2=1).fill_(False)  # not oneself
        return near

    @cached_property
    def has_neighbour(self) -> torch.Tensor:
        """[N] bool: someone to CHAT with."""
        return slot_major(any_other(self.near))

    @cached_property
    def busy(self) -> torch.Tensor:
        """[K, T] bool: part-way through a multi-tick use."""
        return self.agents[PROGRESS] > 0

    @cached_property
    def ties(self) -> torch.Tensor:
        """[3, K (i), K (j), T] float32: trust, familiarity and rivalry of i toward j."""
        return ties_town_last(self.state)

    # --- queues ------------------------------------------------------------------------------

    @cached_property
    def standing(self) -> torch.Tensor:
        """[K, T] int32: the affordance a living agent stands on, -1 for none (or dead)."""
        aff = self.agents[AFF]
        return torch.where((aff >= 0) & self.alive, aff, -1)

    @cached_property
    def spot(self) -> torch.Tensor:
        """[K, K, T] bool: i and j are different living agents on the same affordance."""
        a = self.standing
        spot = (a[:, None, :] == a[None, :, :]) & (a >= 0)[:, None, :]
        spot.diagonal(dim1=0, dim2=1).fill_(False)
        return spot

    @cached_property
    def queued(self) -> torch.Tensor:
        """[K, T] bool: holds a place in a queue."""
        return self.agents[QUEUE_KEY] >= 0

    @cached_property
    def serve_key(self) -> torch.Tensor:
        """[K, T] long: the serving order on an affordance, smallest first: part-way through a
        use, then queued by join tick and slot, then present by slot (docs/social.md#queues)."""
        joined = torch.where(self.queued, self.agents[QUEUE_KEY], self.max_steps + 2).long()
        return torch.where(self.busy, -1, joined * self.k + rows(self.k, self.aff.device))

    @cached_property
    def served_before(self) -> torch.Tensor:
        """[K, K, T] bool: j is on i's affordance and goes first."""
        key = self.serve_key
        return self.spot & (key[None, :, :] < key[:, None, :])

    @cached_property
    def queued_with(self) -> torch.Tensor:
        """[K, K, T] bool: j is queued on i's affordance."""
        return self.spot & self.queued[None, :, :]

    @cached_property
    def queue_position(self) -> torch.Tensor:
        """[N] long: how many queued agents are served before this one; -1 when not queued."""
        ahead = (self.served_before & self.queued_with).sum(dim=1)
        return slot_major(torch.where(self.queued, ahead, NOT_QUEUED))


FACTS = frozenset(name for name, value in vars(Pairs).items() if isinstance(value, cached_property))
SLOT_FACTS = frozenset({"has_neighbour", "queue_position"})  # [N]; the others are town-last

"""The simulation state: a frozen bag of tensors, batched over towns and agent slots.

Slot `i` lives in town `i // agents_per_town`. Per-slot tensors have `N = towns x agents_per_town`
rows; per-town tensors have `T` rows. Functions in `townlet_env.core` take a state and return a
new one; nothing here is mutated in place.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TownState:
    meters: torch.Tensor  # [N, M] float32 in [0, 1]
    position: torch.Tensor  # [N, 2] long (x, y)
    alive: torch.Tensor  # [N] bool
    progress: torch.Tensor  # [N] long, ticks done of the current multi-tick use
    life_steps: torch.Tensor  # [N] long, ticks lived by the slot's current agent
    difficulty: torch.Tensor  # [N] float32, multiplies the base drain
    clock: torch.Tensor  # [T] long, ticks since the town was (re)generated
    affordance_position: torch.Tensor  # [T, A, 2] int16 (x, y): grids are at most 64 wide
    cells: torch.Tensor  # [T, H + 2 pad, W + 2 pad] int8: affordance index, EMPTY or BLOCKED
    # The social layer (docs/social.md). On a level without social.yaml the ties and traits have
    # no columns and nothing reads or writes them. Column j of a tie is slot j of the same town.
    trust: torch.Tensor  # [N, K or 0] float32 in [-1, 1], row slot's trust toward each slot
    familiarity: torch.Tensor  # [N, K or 0] float32 in [0, 1]
    rivalry: torch.Tensor  # [N, K or 0] float32 in [0, 1]
    personality: torch.Tensor  # [N, 3 or 0] float32: extroversion, forgiveness, ambition
    queue_key: torch.Tensor  # [N] long: tick the slot joined the queue it stands in, -1: none
    stall: torch.Tensor  # [N] long: ticks the slot has held a queue up
    # The economy (docs/economy.md). Without economy.yaml they have no columns (no events).
    work: torch.Tensor  # [N, 9 or 0] long: employer, shift, absences, rehire_at, firings, broke,
    #                     vacant, home x, home y (columns named in townlet_env.core.economy)
    ledger: torch.Tensor  # [N, 1 or 0] float32: the reward of the slot's agent so far
    event_clock: torch.Tensor  # [T, E, 2] long: tick each event of the catalogue ends, may restart
    event_value: torch.Tensor  # [T, E] float32: its drawn multiplier

    @property
    def num_slots(self) -> int:
        return self.meters.shape[0]

    @property
    def num_towns(self) -> int:
        return self.clock.shape[0]

    @property
    def agents_per_town(self) -> int:
        return self.num_slots // self.num_towns

    @property
    def town(self) -> torch.Tensor:
        """[N] town index of every slot."""
        return town_index(self.num_slots, self.agents_per_town, self.meters.device)

    def per_slot(self, per_town: torch.Tensor) -> torch.Tensor:
        """[N, ...] the row of each slot's town; no gather at all with one agent per town."""
        if self.agents_per_town == 1:
            return per_town
        return per_town.index_select(0, self.town)

    def replace(self, **changes: torch.Tensor) -> TownState:
        return dataclasses.replace(self, **changes)

    def slots_of(self, towns: torch.Tensor) -> torch.Tensor:
        """[len(towns) * K] the slots of the given towns, town by town."""
        k = self.agents_per_town
        return (towns[:, None] * k + torch.arange(k, device=towns.device)).flatten()

    def select_towns(self, towns: torch.Tensor) -> TownState:
        """The sub-state of the given towns and their slots, e.g. to re-observe only them."""
        slots = self.slots_of(towns)
        return TownState(
            **{
                name: value[towns] if name in PER_TOWN else value[slots]
                for name, value in self.tensors().items()
            }
        )

    def followed_by(self, other: TownState, towns: torch.Tensor) -> TownState:
        """This state's towns, then `other`'s `towns` with their slots: T + len(towns) towns that
        one pass can observe (an autoreset's renewed state, and the ended towns' last tick)."""
        slots = other.slots_of(towns)
        tail = {name: towns if name in PER_TOWN else slots for name in self.tensors()}

        def joined(name: str, value: torch.Tensor) -> torch.Tensor:
            index = tail[name]
            if value.numel() == 0:  # a layer this level does not have: no columns to copy, and
                # a cat costs tens of microseconds even then (eight such fields below L4)
                return value.new_empty((value.shape[0] + index.numel(), *value.shape[1:]))
            return torch.cat((value, getattr(other, name).index_select(0, index)))

        return TownState(**{name: joined(name, value) for name, value in self.tensors().items()})

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# The per-town layout is copied whenever a town is regenerated; int16 makes that copy a quarter
# of the long one, and grids are at most 64 cells wide.
POSITION_DTYPE = torch.int16
PER_TOWN = frozenset({"clock", "affordance_position", "cells", "event_clock", "event_value"})


@functools.lru_cache(maxsize=64)
def town_index(num_slots: int, agents_per_town: int, device: torch.device) -> torch.Tensor:
    return torch.arange(num_slots, device=device) // agents_per_town

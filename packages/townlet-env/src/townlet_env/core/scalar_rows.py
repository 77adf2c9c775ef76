"""The observation of a social town (L4, L5) for the scalar engine, kept from tick to tick.

On these levels every field of an agent's row is contiguous (`ObserveTables.one_row`), and much
of the row changes little: the position, underfoot and affordance fields (58 of 115 or 164
floats) only when the agent moves, personality never, the town's events and prices rarely.
Handing a Python float to numpy costs far more than copying a float32, so those pieces are kept
as float32 arrays (`array("f")`: the place fields per position for the town's life, as its
affordances never move) and each tick converts only the rest (meters, time, progress, queue,
nearest, job), puts every row together in one float32 array and hands it to numpy in one
assignment. Every value is the one `scalar_observe` wrote before, computed the same way, so the
rows stay equal to the core's bit for bit (tests/env/test_scalar_engine.py).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

import numpy as np

from townlet_env.core.level import HOURS_PER_DAY
from townlet_env.core.observe_social import FAR
from townlet_env.core.scalar_events import job_rows, shared_fields

if TYPE_CHECKING:
    from townlet_env.core.scalar_base import TownNumbers as ScalarTown


class RowBuffer:
    """What stays of a loaded town's rows from tick to tick, as float32 (`array("f")`): each
    agent's personality, the economy's town fields last written, and per position the place
    fields (in `town.place_cache`)."""

    def __init__(self, town: ScalarTown) -> None:
        v = town.view
        social = town.social
        assert social is not None
        self.personality = [array("f", p) for p in social.personality]  # fixed for the town's life
        self.shared_of: list[float] | None = None  # the economy's town fields ...
        self.shared = array("f")  # ... as float32
        self.nearest_pad = [0.0] * (8 * v.nearest_rows)
        # a column offset / scale per integer offset (the core divides the same integers)
        span = max(town.t.level.width, town.t.level.height)
        self.span = span
        self.dx = [d / v.sx for d in range(-span, span + 1)]
        self.dy = [d / v.sy for d in range(-span, span + 1)]


def write_rows(town: ScalarTown, out: np.ndarray) -> np.ndarray:
    """Every slot's observation into `out` ([K, obs_dim] float32): the rows are put together
    as one float32 array, the pieces kept from tick to tick copied in whole, and handed to
    numpy in one assignment."""
    v = town.view
    k = town.k
    buf = town.rows
    if buf is None:
        buf = town.rows = RowBuffer(town)
    time = v.hours[town.clock % HOURS_PER_DAY] if v.day_cycle else [0.0, 0.0]
    episode = town.clock / v.max_steps
    if town.economy is not None:
        shared = shared_fields(town)
        if shared is not buf.shared_of:
            buf.shared_of, buf.shared = shared, array("f", shared)
    cells = town.cells
    flat = array("f")
    for i, tail in enumerate(_tail(town, buf)):
        x, y = town.x[i], town.y[i]
        code = cells[y][x]
        p = town.progress[i]
        progress = p / v.ticks[code] if p and v.multi_tick and code >= 0 else 0.0
        flat.fromlist(town.meters[i])
        flat.fromlist([*time, progress, episode])
        flat += _place(town, x, y)
        flat += buf.personality[i]
        flat.fromlist(tail)
        flat += buf.shared
    out[:k] = np.frombuffer(flat, dtype=np.float32).reshape(k, v.size)
    return out


def _place(town: ScalarTown, x: int, y: int) -> array:
    """position, underfoot and the full view's affordances from (x, y), as float32, kept per
    position for the town's life."""
    place = town.place_cache.get((x, y))
    if place is None:
        v = town.view
        code = town.cells[y][x]
        fields = [x / v.sx, y / v.sy, *v.underfoot_rows[(code if code >= 0 else -1) + 1]]
        fields += _affordance_rows(town, x, y)
        place = town.place_cache[(x, y)] = array("f", fields)
    return place


def _affordance_rows(town: ScalarTown, x: int, y: int) -> list[float]:
    """The full view's affordance field (rows dx, dy, present; a column per channel) from (x, y)."""
    v = town.view
    dx, dy, present = [0.0] * v.n_ch, [0.0] * v.n_ch, [0.0] * v.n_ch
    for a, (ax, ay) in enumerate(town.aff_xy):
        c = v.channel[a]
        dx[c], dy[c], present[c] = (ax - x) / v.sx, (ay - y) / v.sy, 1.0
    return dx + dy + present


def _tail(town: ScalarTown, buf: RowBuffer) -> list[list[float]]:
    """queue and nearest (padded to its full size), then on an economy level employer and job:
    one list per agent. An agent not seen (it or the other dead) shows its facts times 0.0, as
    the core multiplies them (a negative offset becomes -0.0)."""
    v = town.view
    social = town.social
    assert social is not None
    k = town.k
    width = min(k - 1, v.nearest_rows)
    trust, fam, riv = social.ties
    xs, ys, alive = town.x, town.y, town.alive
    busy = [float(p > 0) for p in town.progress]
    queued = [float(q >= 0) for q in social.queue_key]
    pad = buf.nearest_pad[: 8 * (v.nearest_rows - width)]
    dxs, dys, span = buf.dx, buf.dy, buf.span
    jobs = None if town.economy is None else job_rows(town)
    out = []
    for i, position in enumerate(social.queue_position(town)):
        row = [1.0, 1.0 / (1.0 + position)] if position >= 0 else [0.0, 0.0]
        if width > 0:
            x, y = xs[i], ys[i]
            keys = [
                (abs(xj - x) + abs(yj - y) if aj else FAR) * k + j
                for j, (xj, yj, aj) in enumerate(zip(xs, ys, alive, strict=True))
                if j != i
            ]
            keys.sort()
            me = alive[i]
            ti, fi, ri = trust[i], fam[i], riv[i]
            for key in keys[:width]:
                j = key % k
                if me and alive[j]:
                    dx, dy = dxs[xs[j] - x + span], dys[ys[j] - y + span]
                    row += (dx, dy, 1.0, busy[j], queued[j], ti[j], fi[j], ri[j])
                else:
                    seen = 0.0
                    row += (
                        (xs[j] - x) / v.sx * seen,
                        (ys[j] - y) / v.sy * seen,
                        float(alive[j]) * seen,
                        busy[j] * seen,
                        queued[j] * seen,
                        ti[j] * seen,
                        fi[j] * seen,
                        ri[j] * seen,
                    )
        row += pad
        if jobs is not None:
            row += jobs[i]
        out.append(row)
    return out

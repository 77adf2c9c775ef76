"""The observation of a social town (L4, L5) for the scalar engine, kept from tick to tick.

On these levels every field of an agent's row is contiguous (`ObserveTables.one_row`), and most
of the row changes little: the position, underfoot and affordance fields (58 of 115 or 164
floats) only when the agent moves, personality never, the town's events and prices rarely. A
float handed to numpy costs some 30-60 ns however it goes there, so `RowBuffer` keeps the last
rows written as float32 and each tick writes only what may have changed: the leading fields
(meters, time, progress), the rows of the agents that moved (a float32 row per position, kept
for the town's life: its affordances never move), and the social and job fields; then one
numpy copy hands the rows out. Every value is the one `scalar_observe` wrote before, computed
the same way, so the rows stay equal to the core's bit for bit (tests/env/test_scalar_engine.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from townlet_env.core.level import HOURS_PER_DAY
from townlet_env.core.observe_social import FAR
from townlet_env.core.scalar_events import job_rows, shared_fields

if TYPE_CHECKING:
    from townlet_env.core.scalar_base import TownNumbers as ScalarTown


class RowBuffer:
    """The rows last written for one loaded town ([K, obs_dim] float32), and the position whose
    place fields each row holds."""

    def __init__(self, town: ScalarTown) -> None:
        v = town.view
        social = town.social
        assert social is not None
        self.rows = np.zeros((town.k, v.size), dtype=np.float32)
        self.rows[:, v.personality : v.queue] = social.personality  # fixed for the town's life
        self.at: list[tuple[int, int] | None] = [None] * town.k
        self.head = v.position  # meters, time, interaction and episode progress
        # queue, nearest and (on an economy level) employer and job: written every tick
        self.tail_end = v.social_end if town.economy is None else v.social_end + town.events.job_width
        self.shared: list[float] | None = None  # the economy's town fields last written
        self.nearest_pad = [0.0] * (8 * v.nearest_rows)
        # a column offset / scale per integer offset (the core divides the same integers)
        span = max(town.t.level.width, town.t.level.height)
        self.span = span
        self.dx = [d / v.sx for d in range(-span, span + 1)]
        self.dy = [d / v.sy for d in range(-span, span + 1)]


def write_rows(town: ScalarTown, out: np.ndarray) -> np.ndarray:
    """Every slot's observation into `out` ([K, obs_dim] float32)."""
    v = town.view
    k = town.k
    buf = town.rows
    if buf is None:
        buf = town.rows = RowBuffer(town)
    rows = buf.rows
    time = v.hours[town.clock % HOURS_PER_DAY] if v.day_cycle else [0.0, 0.0]
    episode = town.clock / v.max_steps
    head = []
    at = buf.at
    cells = town.cells
    for i in range(k):
        x, y = town.x[i], town.y[i]
        code = cells[y][x]
        p = town.progress[i]
        progress = p / v.ticks[code] if p and v.multi_tick and code >= 0 else 0.0
        head.append([*town.meters[i], *time, progress, episode])
        if at[i] != (x, y):
            rows[i, v.position : v.personality] = _place(town, x, y)
            at[i] = (x, y)
    rows[:k, : buf.head] = head
    rows[:k, v.queue : buf.tail_end] = _tail(town, buf)
    if town.economy is not None:
        shared = shared_fields(town)
        if shared is not buf.shared:
            rows[:k, buf.tail_end :] = buf.shared = shared
    out[:k] = rows
    return out


def _place(town: ScalarTown, x: int, y: int) -> np.ndarray:
    """position, underfoot and the full view's affordances from (x, y), as float32, kept per
    position for the town's life."""
    place = town.place_cache.get((x, y))
    if place is None:
        v = town.view
        code = town.cells[y][x]
        fields = [x / v.sx, y / v.sy, *v.underfoot_rows[(code if code >= 0 else -1) + 1]]
        fields += _affordance_rows(town, x, y)
        place = town.place_cache[(x, y)] = np.array(fields, dtype=np.float32)
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

"""What the agents of a `ScalarTown` see: `core.observe` for one town, written with numpy.

Every value is one float32 rounding of an exact quantity (a ratio of integers, a table entry, a
tie), or such a value times 0 or 1 as the core multiplies it (a negative offset of an agent not
seen becomes -0.0 there too), so the rows equal the core's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from townlet_env.core.level import BLOCKED, EMPTY, HOURS_PER_DAY, CompiledLevel
from townlet_env.core.observe_social import FAR
from townlet_env.core.scalar_events import observe_economy
from townlet_env.core.scalar_rows import write_rows

if TYPE_CHECKING:
    from townlet_env.core.scalar_base import TownNumbers as ScalarTown


class ObserveTables:
    def __init__(self, level: CompiledLevel) -> None:
        layout = level.layout
        self.layout = layout
        self.size = layout.size
        self.encoding = layout.encoding
        self.day_cycle = level.day_cycle
        self.multi_tick = level.multi_tick
        self.max_steps = level.max_steps
        self.sx, self.sy = level.position_scale.tolist()
        self.hours = level.hour_features.tolist()
        self.channel = level.aff_channel.tolist()
        self.n_aff = level.n_affordances
        self.n_ch = len(layout.channels)
        self.ticks = level.aff_ticks.tolist()
        self.meters = layout["meters"].offset
        self.time = layout["time"].offset
        self.progress = layout["interaction_progress"].offset
        self.episode = layout["episode_progress"].offset
        self.position = layout["position"].offset
        self.underfoot = layout["underfoot"].offset
        self.n_meters = level.n_meters
        # the leading fields' order, which `observe_into` writes as one list
        leading = ["meters", "time", "interaction_progress", "episode_progress", "position", "underfoot"]
        self.affordance_field = "affordances" in layout
        if self.affordance_field:
            leading.append("affordances")
        assert layout.names[: len(leading)] == leading, layout.names
        self.no_affordances = [0.0] * (3 * self.n_ch)
        # underfoot_rows[a + 1]: the one-hot row of affordance a (index 0: none)
        self.underfoot_rows = [[0.0] * self.n_ch]
        for c in self.channel:
            row = [0.0] * self.n_ch
            row[c] = 1.0
            self.underfoot_rows.append(row)
        self.others = layout.other_agents
        self.agents_follow = False  # the agents field right after the full view's affordances
        self._others: dict[int, list[tuple[list[int], list[float]]]] = {}
        if self.others:
            self.agents = layout["agents"].offset
            self.agents_follow = (
                self.encoding == "full"
                and self.affordance_field
                and self.agents == layout["affordances"].offset + layout["affordances"].size
            )
        self.window = layout.window
        if self.encoding == "partial":
            self.window_offset = layout["window"].offset
        self.social = level.social is not None
        if self.social:
            self.personality = layout["personality"].offset
            self.queue = layout["queue"].offset
            self.nearest = layout["nearest"].offset
            self.nearest_rows = layout["nearest"].shape[0]
            assert self.queue == self.personality + 3 and self.nearest == self.queue + 2, layout.names
            self.social_end = self.nearest + layout["nearest"].size
        # the social and economy fields follow the leading ones (up to the full view's
        # affordances) without a gap: one list per agent can then hold the whole observation
        leading_end = (
            layout["affordances"].offset + layout["affordances"].size if self.affordance_field else -1
        )
        self.one_row = (
            self.social
            and self.encoding == "full"
            and self.affordance_field
            and not self.others
            and self.personality == leading_end
            and (level.economy is None or layout["employer"].offset == self.social_end)
        )

    def others_of(self, k: int) -> list[tuple[list[int], list[float]]]:
        """Per slot of a town of k: the other slots the agents field shows, and its padding."""
        found = self._others.get(k)
        if found is None:
            width = min(k - 1, self.others)
            found = self._others[k] = [
                ([j for j in range(k) if j != i][:width], [0.0] * (self.others - width)) for i in range(k)
            ]
        return found


def observe_into(town: ScalarTown, out: np.ndarray) -> np.ndarray:
    """Every slot's observation into `out` ([K, obs_dim] float32, zeroed here). The leading
    fields, up to the affordances of the full view, are one Python list per agent, written with
    one assignment: each numpy call costs about a microsecond, a list of floats far less."""
    v = town.view
    if v.one_row:  # a social town, its rows kept from tick to tick
        return write_rows(town, out)
    k = town.k
    out[:k].fill(0.0)
    time = v.hours[town.clock % HOURS_PER_DAY] if v.day_cycle else [0.0, 0.0]
    episode = town.clock / v.max_steps
    full = v.encoding == "full"
    tail = _social(town) if v.social else None
    if tail is not None and town.economy is not None:
        tail = [a + b for a, b in zip(tail, observe_economy(town), strict=True)]
    for i in range(k):
        aff = town.affordance(i)
        x, y = town.x[i], town.y[i]
        progress = town.progress[i] / v.ticks[aff] if v.multi_tick and aff >= 0 else 0.0
        row = [*town.meters[i], *time, progress, episode, x / v.sx, y / v.sy, *v.underfoot_rows[aff + 1]]
        if v.affordance_field:
            if full:
                row += view_rows(town, x, y)
            else:
                row += v.no_affordances
        if v.agents_follow and k > 1:
            row += _other_agents(town, i)
        out[i, : len(row)] = row
    if full:
        if v.others and k > 1 and not v.agents_follow:
            for i in range(k):
                out[i, v.agents : v.agents + 3 * v.others] = _other_agents(town, i)
    else:
        _window(town, out)
    if tail is not None:
        for i, row in enumerate(tail):
            out[i, v.personality : v.personality + len(row)] = row
    return out


def view_rows(town: ScalarTown, x: int, y: int) -> list[float]:
    """The full view's affordance field seen from (x, y), kept for the town's life (its
    affordances never move): most steps revisit a cell seen before."""
    rows = town.view_cache.get((x, y))
    if rows is None:
        rows = town.view_cache[(x, y)] = affordance_rows(town, x, y)
    return rows


def affordance_rows(town: ScalarTown, x: int, y: int) -> list[float]:
    """The full view's affordance field (rows dx, dy, present; a column per channel) of an agent
    at (x, y) in this town."""
    v = town.view
    dx, dy, present = [0.0] * v.n_ch, [0.0] * v.n_ch, [0.0] * v.n_ch
    for a, (ax, ay) in enumerate(town.aff_xy):
        c = v.channel[a]
        dx[c], dy[c], present[c] = (ax - x) / v.sx, (ay - y) / v.sy, 1.0
    return dx + dy + present


def _other_agents(town: ScalarTown, i: int) -> list[float]:
    """The agents field of slot i: dx, dy and seen of the first other slots, each padded."""
    v = town.view
    others, pad = v.others_of(town.k)[i]
    me = town.alive[i]
    seen = [float(me and town.alive[j]) for j in others]
    x, y = town.x[i], town.y[i]
    dx = [(town.x[j] - x) / v.sx * s for j, s in zip(others, seen, strict=True)]
    dy = [(town.y[j] - y) / v.sy * s for j, s in zip(others, seen, strict=True)]
    return dx + pad + dy + pad + seen + pad


def _window(town: ScalarTown, out: np.ndarray) -> None:
    """The cells around each agent: what its cell holds (kept per position for the town's life,
    like the full view's affordance rows), then where other living agents stand."""
    v = town.view
    k = town.k
    r = v.window // 2
    cell_size = v.n_ch + 2
    start = v.window_offset
    for i in range(k):
        x0, y0 = town.x[i], town.y[i]
        cells = town.view_cache.get((x0, y0))
        if cells is None:
            cells = town.view_cache[(x0, y0)] = _window_cells(town, x0, y0)
        out[i, start : start + len(cells)] = cells
        if k == 1 or not town.alive[i]:
            continue
        for j in range(k):
            dx, dy = town.x[j] - x0, town.y[j] - y0
            if j != i and town.alive[j] and -r <= dx <= r and -r <= dy <= r:
                out[i, start + ((dy + r) * v.window + dx + r) * cell_size + v.n_ch + 1] = 1.0


def _window_cells(town: ScalarTown, x0: int, y0: int) -> np.ndarray:
    """The window's cell fields around (x0, y0): a wall or edge, or an affordance's channel."""
    v = town.view
    r = v.window // 2
    n_ch, cell_size = v.n_ch, v.n_ch + 2
    cells = np.zeros(v.window * v.window * cell_size, dtype=np.float32)
    base = 0
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            code = town.cell(x0 + dx, y0 + dy)
            if code == BLOCKED:
                cells[base + n_ch] = 1.0
            elif code != EMPTY:
                cells[base + v.channel[code]] = 1.0
            base += cell_size
    return cells


def _social(town: ScalarTown) -> list[list[float]]:
    """personality, queue and nearest (the three fields are contiguous): one list per agent, up
    to the end of nearest."""
    v = town.view
    social = town.social
    assert social is not None
    k = town.k
    width = min(k - 1, v.nearest_rows)
    trust, fam, riv = social.ties
    xs, ys, alive = town.x, town.y, town.alive
    facts = [  # of each j: alive, busy, queued
        (float(alive[j]), float(town.progress[j] > 0), float(social.queue_key[j] >= 0)) for j in range(k)
    ]
    sx, sy = v.sx, v.sy
    rows = []
    for i, position in enumerate(social.queue_position(town)):
        row = (
            [*social.personality[i], 1.0, 1.0 / (1.0 + position)]
            if position >= 0
            else [*social.personality[i], 0.0, 0.0]
        )
        if width > 0:
            x, y = xs[i], ys[i]
            keys = [
                (abs(xj - x) + abs(yj - y) if aj else FAR) * k + j
                for j, (xj, yj, aj) in enumerate(zip(xs, ys, alive, strict=True))
            ]
            del keys[i]
            keys.sort()
            me = float(alive[i])
            for key in keys[:width]:
                j = key % k
                seen = me * facts[j][0]
                a, b, c = facts[j]
                row += (
                    (xs[j] - x) / sx * seen,
                    (ys[j] - y) / sy * seen,
                    a * seen,
                    b * seen,
                    c * seen,
                    trust[i][j] * seen,
                    fam[i][j] * seen,
                    riv[i][j] * seen,
                )
        if town.economy is not None:  # its fields follow nearest's: pad the rows not shown
            row += [0.0] * (v.social_end - v.personality - len(row))
        rows.append(row)
    return rows

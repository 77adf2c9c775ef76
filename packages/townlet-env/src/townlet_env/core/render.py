"""Pictures of one town: text for terminals and logs, an RGB array (grid, legend, meter bars) for videos."""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from townlet_env.core.font import ADVANCE, draw_text, text_width
from townlet_env.core.level import CompiledLevel
from townlet_env.core.observe import hour_of_day
from townlet_env.core.state import TownState

CELL = 16  # pixels per grid cell in rgb_array


RESERVED = set("#.@0123456789 ")  # walls, floor and agents (digits number agents of a shared town)
SPARE = string.ascii_letters + "$%&*+-?^~<>/|!"  # no "=": the legend reads symbol=name


def _symbols(level: CompiledLevel) -> list[str]:
    """One distinct character per affordance: its initial, lower-cased for later clashes, then
    another letter of its name, then any spare letter or sign; never one that marks an agent."""
    used: set[str] = set()
    out = []
    for name in level.affordance_names:
        options = [name[0].upper(), name[0].lower(), *name[1:].upper(), *name[1:].lower(), *SPARE]
        symbol = next((s for s in options if s not in used and s not in RESERVED), None)
        if symbol is None:
            raise ValueError(f"too many affordances ({level.n_affordances}) for distinct text symbols")
        used.add(symbol)
        out.append(symbol)
    return out


def render_ansi(level: CompiledLevel, state: TownState, town: int) -> str:
    k = state.agents_per_town
    symbols = _symbols(level)
    p = level.pad
    cells = state.cells[town, p : p + level.height, p : p + level.width].cpu().tolist()
    grid = [["#" if c == -2 else "." if c == -1 else symbols[c] for c in row] for row in cells]
    slots = range(town * k, (town + 1) * k)
    pos = state.position.cpu().tolist()
    alive = state.alive.cpu().tolist()
    for j, slot in enumerate(slots):
        if alive[slot]:
            x, y = pos[slot]
            grid[y][x] = "@" if k == 1 else str(j % 10)
    clock = int(state.clock[town])
    lines = ["".join(row) for row in grid]
    header = f"town {town}  step {clock}/{level.max_steps}"
    if level.day_cycle:
        header += f"  hour {int(hour_of_day(state)[town * k])}"
    meters = state.meters.cpu()
    rows = [header, *lines]
    # an agent hides the letter of the affordance it stands on, so its line names it
    under = state.cells[town, p : p + level.height, p : p + level.width]
    for j, slot in enumerate(slots):
        status = "alive" if alive[slot] else "dead"
        x, y = pos[slot]
        code = int(under[y, x])
        if alive[slot] and code >= 0:
            status += f", on {level.affordance_names[code]}"
        values = " ".join(f"{n}={meters[slot, i]:.2f}" for i, n in enumerate(level.meter_names))
        rows.append(f"agent {j} ({status}): {values}")
    legend = "  ".join(f"{s}={n}" for s, n in zip(symbols, level.affordance_names, strict=True))
    agents = "@=agent" if k == 1 else f"0-{min(k, 10) - 1}=agents"  # slot in town, mod 10
    rows.append(f"legend: {legend}  {agents}  #=wall  .=floor")
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class RgbLayout:
    """Where things are in an `rgb_array` picture of a level with `agents` per town (pixels).

    The grid is at the top left (cell (x, y) at [y * CELL, x * CELL]); the legend (step, hour,
    one colour swatch and name per affordance) is to its right; below both is the meter strip:
    a row of meter names, then one row per agent with its colour and one bar per meter.
    """

    height: int
    width: int
    legend_x: int
    strip_y: int
    bar_x: int  # left edge of the first meter bar
    bar_width: int  # pixels of a full bar; the next bar starts bar_width + GAP further
    row: int  # height of a legend or strip row

    def legend_row_y(self, i: int) -> int:
        """Top of legend row i (rows 0 and 1 hold the step and hour, affordance a is row a + 2)."""
        return GAP + i * self.row

    def bar_origin(self, agent: int, meter: int) -> tuple[int, int]:
        """(x, y) of the top-left corner of an agent's bar for a meter."""
        return self.bar_x + meter * (self.bar_width + GAP), self.strip_y + (agent + 1) * self.row


GAP, ROW, SWATCH, BAR = 2, 8, 6, 24
FLOOR, WALL, TEXT, DEAD = (235, 235, 235), (40, 40, 40), (20, 20, 20), (150, 150, 150)
BAR_BACK, BAR_OK, BAR_LOW = (210, 210, 210), (60, 160, 90), (205, 60, 50)


def rgb_layout(level: CompiledLevel, agents: int) -> RgbLayout:
    grid_w, grid_h = level.width * CELL, level.height * CELL
    names = [f"{n}" for n in level.affordance_names] + [f"step {level.max_steps}/{level.max_steps}"]
    legend_x = grid_w + 2 * GAP
    legend_w = SWATCH + GAP + max(text_width(n) for n in names)
    legend_h = GAP + (level.n_affordances + 2) * ROW
    strip_y = max(grid_h, legend_h) + GAP
    bar_x = SWATCH + GAP + text_width("00") + GAP
    width = max(legend_x + legend_w + GAP, bar_x + level.n_meters * (BAR + GAP))
    height = strip_y + (agents + 1) * ROW + GAP

    def up(n: int) -> int:  # multiples of 16: what video encoders want, so no frame is rescaled
        return -(-n // CELL) * CELL

    return RgbLayout(up(height), up(width), legend_x, strip_y, bar_x, BAR, ROW)


def agent_colours(k: int) -> np.ndarray:
    """[k, 3] fully saturated, bright colours, hues a golden ratio apart: distinct from each other
    and from every affordance colour (those are never brighter than 217)."""
    return np.stack([_hsv((j * 0.618034) % 1.0, s=1.0, v=1.0) for j in range(k)]).reshape(k, 3)


def affordance_colours(level: CompiledLevel) -> np.ndarray:
    hues = np.linspace(0, 1, max(level.n_affordances, 1), endpoint=False)
    return np.stack([_hsv(h) for h in hues[: level.n_affordances]]).reshape(level.n_affordances, 3)


def render_rgb(level: CompiledLevel, state: TownState, town: int) -> np.ndarray:
    """[H, W, 3] uint8 (see `rgb_layout`): the grid with affordances in distinct colours, walls
    dark and living agents in their own colours; a legend; each agent's meters as bars."""
    k = state.agents_per_town
    p = level.pad
    layout = rgb_layout(level, k)
    cells = state.cells[town, p : p + level.height, p : p + level.width].cpu().numpy().astype(int)
    palette = affordance_colours(level)
    grid = np.full((level.height, level.width, 3), FLOOR, dtype=np.uint8)
    grid[cells == -2] = WALL
    for a in range(level.n_affordances):
        grid[cells == a] = palette[a]
    image = np.full((layout.height, layout.width, 3), 255, dtype=np.uint8)
    image[: level.height * CELL, : level.width * CELL] = grid.repeat(CELL, axis=0).repeat(CELL, axis=1)
    slots = range(town * k, (town + 1) * k)
    pos = state.position.cpu().numpy()
    alive = state.alive.cpu().numpy()
    meters = state.meters.cpu().numpy()
    colours = agent_colours(k)
    q = CELL // 4
    for j, slot in enumerate(slots):
        if alive[slot]:  # a square with a dark outline, in the agent's colour
            x, y = pos[slot]
            image[y * CELL + q - 1 : (y + 1) * CELL - q + 1, x * CELL + q - 1 : (x + 1) * CELL - q + 1] = TEXT
            image[y * CELL + q : (y + 1) * CELL - q, x * CELL + q : (x + 1) * CELL - q] = colours[j]
    # the legend: clock, then a swatch and the name of every affordance
    lx = layout.legend_x
    draw_text(image, lx, layout.legend_row_y(0), f"step {int(state.clock[town])}/{level.max_steps}", TEXT)
    if level.day_cycle:
        draw_text(image, lx, layout.legend_row_y(1), f"hour {int(hour_of_day(state)[town * k])}", TEXT)
    for a, name in enumerate(level.affordance_names):
        y = layout.legend_row_y(a + 2)
        image[y : y + SWATCH, lx : lx + SWATCH] = palette[a]
        draw_text(image, lx + SWATCH + GAP, y, name, TEXT)
    # the meter strip: names over the bars, then one row per agent
    for m, name in enumerate(level.meter_names):
        x, y = layout.bar_origin(-1, m)
        draw_text(image, x, y, name[: (BAR + 1) // ADVANCE], TEXT)
    for j, slot in enumerate(slots):
        y = layout.bar_origin(j, 0)[1]
        image[y : y + SWATCH, GAP : GAP + SWATCH] = colours[j] if alive[slot] else DEAD
        draw_text(image, GAP + SWATCH + GAP, y, f"{j}", TEXT)
        for m in range(level.n_meters):
            x, y = layout.bar_origin(j, m)
            value = float(np.clip(meters[slot, m], 0.0, 1.0))
            image[y : y + SWATCH, x : x + BAR] = BAR_BACK
            fill = BAR_OK if value >= 0.25 else BAR_LOW
            image[y : y + SWATCH, x : x + round(value * BAR)] = fill if alive[slot] else DEAD
    return image


def _hsv(h: float, s: float = 0.65, v: float = 0.85) -> np.ndarray:
    i = int(h * 6)
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return (np.array(rgb) * 255).astype(np.uint8)

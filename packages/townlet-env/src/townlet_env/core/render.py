"""Pictures of one town: text for terminals and logs, an RGB array for videos."""

from __future__ import annotations

import string

import numpy as np

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


def render_rgb(level: CompiledLevel, state: TownState, town: int) -> np.ndarray:
    """[H * 16, W * 16, 3] uint8: affordances in distinct colours, walls dark, agents white."""
    k = state.agents_per_town
    p = level.pad
    cells = state.cells[town, p : p + level.height, p : p + level.width].cpu().numpy().astype(int)
    hues = np.linspace(0, 1, max(level.n_affordances, 1), endpoint=False)
    palette = np.stack([_hsv(h) for h in hues]) if level.n_affordances else np.zeros((0, 3))
    image = np.full((level.height, level.width, 3), 235, dtype=np.uint8)
    image[cells == -2] = 40
    for a in range(level.n_affordances):
        image[cells == a] = palette[a]
    image = image.repeat(CELL, axis=0).repeat(CELL, axis=1)
    pos = state.position.cpu().numpy()
    alive = state.alive.cpu().numpy()
    for slot in range(town * k, (town + 1) * k):
        if alive[slot]:
            x, y = pos[slot]
            q = CELL // 4
            image[y * CELL + q : (y + 1) * CELL - q, x * CELL + q : (x + 1) * CELL - q] = (255, 255, 255)
    return image


def _hsv(h: float) -> np.ndarray:
    i = int(h * 6)
    f = h * 6 - i
    s, v = 0.65, 0.85
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return (np.array(rgb) * 255).astype(np.uint8)

"""Pictures of a town: the text view must place every affordance and agent where the state
says they are, and the RGB view must tell affordances apart and show the agents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_env.core.render import (
    BAR_BACK,
    BAR_OK,
    CELL,
    DEAD,
    SWATCH,
    _symbols,
    affordance_colours,
    agent_colours,
    rgb_layout,
)

L1, L3 = "L1_full_observability", "L3_temporal_mechanics"


def make(level: str = L1, mode: str | None = "ansi", k: int = 1, towns: int = 2, town: int = 0):
    env = TownletVectorEnv(
        level=level, num_envs=towns * k, agents_per_town=k, render_mode=mode, render_town=town
    )
    env.reset(seed=0)
    return env


def grid_and_legend(env: TownletVectorEnv, text: str) -> tuple[list[str], dict[str, str]]:
    lines = text.splitlines()
    grid = lines[1 : 1 + env.level.height]
    legend_line = next(line for line in lines if line.startswith("legend:"))
    legend = dict(item.split("=", 1) for item in legend_line[len("legend:") :].split())
    return grid, legend


@pytest.mark.parametrize("town", [0, 1])
def test_ansi_places_affordances_and_the_agent_of_the_chosen_town(town: int) -> None:
    env = make(town=town)
    # put the agent on an empty cell so that no affordance letter is covered
    aff = {tuple(p) for p in env.state.affordance_position[town].tolist()}
    empty = next((x, y) for y in range(8) for x in range(8) if (x, y) not in aff)
    pos = env.state.position.clone()
    pos[town] = torch.tensor(empty)
    env.town.set_state(env.state.replace(position=pos))
    text = env.render()
    assert isinstance(text, str)
    grid, legend = grid_and_legend(env, text)
    assert len(grid) == 8 and all(len(row) == 8 for row in grid)
    symbol = {name: s for s, name in legend.items()}
    # one distinct letter per affordance, each at its cell in this town
    assert len({symbol[n] for n in env.affordance_names}) == len(env.affordance_names)
    for a, name in enumerate(env.affordance_names):
        x, y = env.state.affordance_position[town, a].tolist()
        assert grid[y][x] == symbol[name], name
    assert grid[empty[1]][empty[0]] == "@"
    assert sum(row.count("@") for row in grid) == 1
    assert sum(row.count(".") for row in grid) == 64 - 14 - 1
    assert text.splitlines()[0].startswith(f"town {town}")


def test_ansi_shows_every_meter_of_every_agent() -> None:
    env = make(k=3, towns=1)
    meters = env.state.meters.clone()
    meters[1, env.meter_names.index("money")] = 0.37
    env.town.set_state(env.state.replace(meters=meters))
    text = env.render()
    agent_lines = [line for line in text.splitlines() if line.startswith("agent ")]
    assert len(agent_lines) == 3
    for line in agent_lines:
        for name in env.meter_names:
            assert f"{name}=" in line
    assert "money=0.37" in agent_lines[1] and "money=0.50" in agent_lines[0]


def test_ansi_numbers_agents_in_a_shared_town() -> None:
    env = make(k=3, towns=1)
    aff = {tuple(p) for p in env.state.affordance_position[0].tolist()}
    empty = [(x, y) for y in range(8) for x in range(8) if (x, y) not in aff][:3]
    env.town.set_state(env.state.replace(position=torch.tensor(empty)))
    grid, legend = grid_and_legend(env, env.render())
    for j, (x, y) in enumerate(empty):
        assert grid[y][x] == str(j)
    assert legend.get("0-2") == "agents" and "@" not in legend


def test_ansi_names_the_affordance_an_agent_hides() -> None:
    env = make(k=2, towns=1)
    bed = env.state.affordance_position[0, env.affordance_names.index("Bed")]
    aff = {tuple(p) for p in env.state.affordance_position[0].tolist()}
    empty = next((x, y) for y in range(8) for x in range(8) if (x, y) not in aff)
    env.town.set_state(env.state.replace(position=torch.stack([bed, torch.tensor(empty)])))
    lines = env.render().splitlines()
    assert lines[1 + int(bed[1])][int(bed[0])] == "0"  # the agent covers the Bed's letter...
    agent_lines = [line for line in lines if line.startswith("agent ")]
    assert "on Bed" in agent_lines[0]  # ...so its line says where it stands
    assert " on " not in agent_lines[1]


def test_text_symbols_stay_distinct_and_never_look_like_agents() -> None:
    # 40 affordances that all start with "A": initials clash, and digits would be misread
    # as agents of a shared town.
    class Level:
        affordance_names = tuple(f"A{i}x" for i in range(40))
        n_affordances = 40

    symbols = _symbols(Level())  # type: ignore[arg-type]
    assert len(set(symbols)) == 40
    assert not set(symbols) & set("0123456789#.@= ")


def test_ansi_shows_the_hour_on_a_day_cycle() -> None:
    env = make(level=L3)
    for _ in range(5):
        env.step([5, 5])
    assert "hour 5" in env.render().splitlines()[0]
    assert "hour" not in make(level=L1).render().splitlines()[0]


def test_rgb_array_shape_agents_and_distinct_affordance_colours() -> None:
    env = make(mode="rgb_array", town=1)
    aff = env.state.affordance_position[1].tolist()
    empty = next((x, y) for y in range(8) for x in range(8) if [x, y] not in aff)
    pos = env.state.position.clone()
    pos[1] = torch.tensor(empty)
    env.town.set_state(env.state.replace(position=pos))
    image = env.render()
    assert isinstance(image, np.ndarray)
    layout = rgb_layout(env.level, 1)
    assert image.shape == (layout.height, layout.width, 3) and image.dtype == np.uint8
    assert layout.width > 8 * CELL and layout.height > 8 * CELL  # the legend and the meter strip
    assert CELL == 16

    def colour(x: int, y: int, at: tuple[int, int] = (1, 1)) -> tuple[int, ...]:
        return tuple(int(v) for v in image[y * CELL + at[1], x * CELL + at[0]])

    centre = (CELL // 2, CELL // 2)
    aff_colours = [colour(x, y) for x, y in aff]
    assert len(set(aff_colours)) == 14  # every affordance has its own colour
    background = colour(*empty)  # the agent's cell border shows the floor
    assert background not in aff_colours
    agent = colour(*empty, at=centre)
    assert agent not in aff_colours and agent != background
    # every cell is one flat colour except the agent's
    floor = [(x, y) for y in range(8) for x in range(8) if [x, y] not in aff and (x, y) != empty]
    for x, y in floor:
        assert colour(x, y) == colour(x, y, at=centre) == background
    # the picture is of town 1, not town 0
    other = make(mode="rgb_array", town=0).render()
    assert not np.array_equal(image, other)


def test_rgb_array_shows_an_agent_standing_on_an_affordance() -> None:
    env = make(mode="rgb_array", towns=1)
    bed = env.state.affordance_position[0, 0]
    env.town.set_state(env.state.replace(position=bed[None].clone()))
    image = env.render()
    x, y = bed.tolist()
    cell = image[y * CELL : (y + 1) * CELL, x * CELL : (x + 1) * CELL]
    colours = {tuple(c) for c in cell.reshape(-1, 3).tolist()}
    assert len(colours) == 3  # the affordance, the agent's outline and the agent
    assert tuple(agent_colours(1)[0]) in colours and tuple(affordance_colours(env.level)[0]) in colours


def test_bad_render_mode_raises() -> None:
    with pytest.raises(ValueError, match="render_mode"):
        TownletVectorEnv(level=L1, num_envs=1, render_mode="human")


def test_render_without_a_mode_warns_and_returns_none() -> None:
    env = make(mode=None)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_render_before_reset_raises() -> None:
    env = TownletVectorEnv(level=L1, num_envs=1, render_mode="ansi")
    with pytest.raises(RuntimeError, match="reset"):
        env.render()


def empty_cells(env: TownletVectorEnv, n: int) -> list[tuple[int, int]]:
    aff = {tuple(p) for p in env.state.affordance_position[0].tolist()}
    return [(x, y) for y in range(8) for x in range(8) if (x, y) not in aff][:n]


def test_rgb_array_agents_have_distinct_colours_and_the_dead_are_not_drawn() -> None:
    env = make(mode="rgb_array", k=4, towns=1)
    cells = empty_cells(env, 4)
    alive = torch.tensor([True, True, False, True])
    env.town.set_state(env.state.replace(position=torch.tensor(cells), alive=alive))
    image = env.render()
    centre = CELL // 2
    seen = [tuple(int(v) for v in image[y * CELL + centre, x * CELL + centre]) for x, y in cells]
    expected = [tuple(int(v) for v in c) for c in agent_colours(4)]
    assert len(set(expected)) == 4
    assert not set(expected) & {tuple(int(v) for v in c) for c in affordance_colours(env.level)}
    assert seen[0] == expected[0] and seen[1] == expected[1] and seen[3] == expected[3]
    assert seen[2] == (235, 235, 235)  # the dead agent's cell shows the floor
    # in the meter strip, the dead agent's swatch is grey
    layout = rgb_layout(env.level, 4)
    swatch_y = layout.bar_origin(2, 0)[1]
    assert tuple(image[swatch_y + 1, 3]) == DEAD
    assert tuple(image[layout.bar_origin(1, 0)[1] + 1, 3]) == expected[1]


def test_rgb_array_has_a_legend_with_a_swatch_and_a_name_per_affordance() -> None:
    env = make(mode="rgb_array", towns=1)
    image = env.render()
    layout = rgb_layout(env.level, 1)
    palette = affordance_colours(env.level)
    for a in range(env.level.n_affordances):
        y = layout.legend_row_y(a + 2)
        swatch = image[y : y + SWATCH, layout.legend_x : layout.legend_x + SWATCH]
        assert (swatch == palette[a]).all()
        name = image[y : y + 5, layout.legend_x + SWATCH + 2 : layout.width]
        assert (name.sum(axis=2) < 100).sum() >= 5  # dark text pixels beside the swatch
    # the same name always draws the same pixels: the step row changes with the clock
    first = image[layout.legend_row_y(0) : layout.legend_row_y(1), layout.legend_x :].copy()
    env.step([5])
    later = env.render()[layout.legend_row_y(0) : layout.legend_row_y(1), layout.legend_x :]
    assert not np.array_equal(first, later)


def test_rgb_array_meter_strip_shows_each_meter_as_a_bar() -> None:
    env = make(mode="rgb_array", k=2, towns=1)
    meters = env.state.meters.clone()
    meters[0] = torch.linspace(0, 1, env.level.n_meters)
    meters[1] = 0.5
    env.town.set_state(env.state.replace(meters=meters))
    image = env.render()
    layout = rgb_layout(env.level, 2)
    for j in range(2):
        for m in range(env.level.n_meters):
            x, y = layout.bar_origin(j, m)
            row = image[y + 2, x : x + layout.bar_width]
            filled = int((row != BAR_BACK).any(axis=1).sum())
            assert filled == round(float(meters[j, m]) * layout.bar_width), (j, m)
            if float(meters[j, m]) >= 0.25:
                assert (row[:filled] == BAR_OK).all()


def test_gymnasium_record_video_writes_an_mp4(tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    import townlet_env  # noqa: F401  (registers Townlet-v0)

    env = RecordVideo(
        gym.make("Townlet-v0", render_mode="rgb_array"),
        str(tmp_path / "videos"),
        episode_trigger=lambda episode: True,
        video_length=20,
        disable_logger=True,
    )
    env.reset(seed=0)
    for _ in range(25):
        env.step(env.action_space.sample())
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000

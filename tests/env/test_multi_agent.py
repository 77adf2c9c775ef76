"""Towns of several agents: one layout and one clock per town, agents that see each other,
affordances that serve one agent at a time, newcomers that replace the dead, and towns that
regenerate when everyone has died or time runs out.

States are set up directly (`env.town.set_state(env.state.replace(...))`) so that every scenario is
exact rather than hoped for from random play.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from townlet_env import TownletVectorEnv
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import action_mask, respawn

UP, DOWN, LEFT, RIGHT, INTERACT, WAIT = range(6)
L1, L2, L3 = "L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics"


def fields(env: TownletVectorEnv) -> dict[str, slice]:
    return {name: slice(off, off + size) for name, off, size in env.observation_layout}


def waits(env: TownletVectorEnv) -> torch.Tensor:
    return torch.full((env.num_envs,), WAIT, dtype=torch.long)


def place(env: TownletVectorEnv, positions: list[tuple[int, int]]) -> None:
    env.town.set_state(env.state.replace(position=torch.tensor(positions, dtype=torch.long)))


def set_meter(env: TownletVectorEnv, slots: list[int], name: str, value: float) -> None:
    meters = env.state.meters.clone()
    meters[slots, env.meter_names.index(name)] = value
    env.town.set_state(env.state.replace(meters=meters))


def empty_cells(env: TownletVectorEnv, town: int) -> list[tuple[int, int]]:
    """Cells of a town with no affordance and no wall, in row-major order."""
    lv = env.level
    p = lv.pad
    inner = env.state.cells[town, p : p + lv.height, p : p + lv.width]
    return [(x, y) for y in range(lv.height) for x in range(lv.width) if int(inner[y, x]) == -1]


def aff_cell(env: TownletVectorEnv, town: int, name: str) -> tuple[int, int]:
    x, y = env.state.affordance_position[town, env.affordance_names.index(name)].tolist()
    return x, y


# --- one layout, one clock ----------------------------------------------------------------------


def test_town_mates_share_layout_and_clock_and_towns_differ() -> None:
    env = TownletVectorEnv(level=L1, num_envs=12, agents_per_town=3)
    obs, info = env.reset(seed=0)
    f = fields(env)
    scale = torch.tensor([7.0, 7.0])
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        obs, *_, info = env.step(torch.multinomial(info["action_mask"].float(), 1, generator=gen)[:, 0])
    # absolute affordance positions = own position + the observed offsets
    own = obs[:, f["position"]] * scale
    offsets = obs[:, f["affordances"]].view(12, 3, 14)[:, :2].transpose(1, 2) * scale  # rows dx, dy
    absolute = (own[:, None, :] + offsets).round().view(4, 3, 14, 2)
    for town in range(4):
        for j in (1, 2):
            assert torch.equal(absolute[town, 0], absolute[town, j])
        assert torch.equal(absolute[town, 0], env.state.affordance_position[town].float())
    assert not torch.equal(absolute[0, 0], absolute[1, 0])  # each town draws its own layout
    progress = obs[:, f["episode_progress"]].view(4, 3)
    assert bool((progress == 4 / 500).all())


def test_l3_town_mates_see_the_same_hour() -> None:
    env = TownletVectorEnv(level=L3, num_envs=6, agents_per_town=3)
    env.reset(seed=0)
    clock = torch.tensor([5, 13])
    env.town.set_state(env.state.replace(clock=clock))
    obs, _, _, _, info = env.step(waits(env))
    assert info["time_of_day"].tolist() == [6, 6, 6, 14, 14, 14]
    t = obs[:, fields(env)["time"]].view(2, 3, 2)
    assert torch.equal(t[:, 0], t[:, 1]) and torch.equal(t[:, 0], t[:, 2])
    assert not torch.equal(t[0, 0], t[1, 0])


# --- agents see each other ----------------------------------------------------------------------


def test_full_view_shows_town_mates_as_offsets_in_slot_order() -> None:
    env = TownletVectorEnv(level=L1, num_envs=6, agents_per_town=3)
    env.reset(seed=0)
    free0, free1 = empty_cells(env, 0), empty_cells(env, 1)
    pos = [free0[0], free0[10], free0[20], free1[3], free1[4], free1[30]]
    place(env, pos)
    obs, *_ = env.step(waits(env))  # WAIT keeps positions; the obs shows them
    # rows dx, dy, present; a column per other agent (3 reserved)
    agents = obs[:, fields(env)["agents"]].view(6, 3, 3).transpose(1, 2)
    for town in range(2):
        for j in range(3):
            slot = town * 3 + j
            others = [town * 3 + o for o in range(3) if o != j]
            for e, other in enumerate(others):
                dx = (pos[other][0] - pos[slot][0]) / 7
                dy = (pos[other][1] - pos[slot][1]) / 7
                assert agents[slot, e].tolist() == pytest.approx([dx, dy, 1.0]), (slot, e)
            # a town of 3 has only 2 others: the third entry stays empty
            assert agents[slot, 2].tolist() == [0.0, 0.0, 0.0]


def test_single_agent_towns_see_no_agents() -> None:
    env = TownletVectorEnv(level=L1, num_envs=4, agents_per_town=1)
    obs, _ = env.reset(seed=0)
    assert not bool(obs[:, fields(env)["agents"]].any())


def _window(env: TownletVectorEnv, obs: torch.Tensor) -> torch.Tensor:
    name, _, size = next(x for x in env.observation_layout if x[0] == "window")
    n_ch = len(env.affordance_names) + 2  # affordance one-hot, blocked, other agent
    w = round((size / n_ch) ** 0.5)
    return obs[:, fields(env)[name]].view(-1, w, w, n_ch)


@pytest.mark.parametrize("level", [L2, L3])
def test_partial_view_shows_a_neighbour_within_two_cells_only(level: str) -> None:
    env = TownletVectorEnv(level=level, num_envs=6, agents_per_town=3)
    env.reset(seed=0)
    # all on empty cells so the scenario does not depend on the layout
    free = set(empty_cells(env, 0)) & set(empty_cells(env, 1))
    a = next(c for c in sorted(free) if (c[0] + 2, c[1] + 1) in free and c[0] + 2 <= 7)
    b = (a[0] + 2, a[1] + 1)  # 2 right, 1 down of a: inside a's 5x5 window
    far = next(c for c in sorted(free) if max(abs(c[0] - a[0]), abs(c[1] - a[1])) >= 3
               and max(abs(c[0] - b[0]), abs(c[1] - b[1])) >= 3)  # fmt: skip
    place(env, [a, b, far, a, far, far])
    obs, *_ = env.step(waits(env))
    other = _window(env, obs)[..., -1]  # [N, 5, 5], the other-agent channel
    # slot 0 sees slot 1 at (dy, dx) = (1, 2); slot 1 sees slot 0 at (-1, -2)
    assert other[0].nonzero().tolist() == [[2 + 1, 2 + 2]]
    assert other[1].nonzero().tolist() == [[2 - 1, 2 - 2]]
    assert not bool(other[2].any())  # far from both
    # town 1: slots 4 and 5 share a cell, slot 3 is far. Co-located agents see each other on
    # their own (centre) cell; nobody counts itself.
    assert not bool(other[3].any())
    assert other[4].nonzero().tolist() == [[2, 2]] and other[5].nonzero().tolist() == [[2, 2]]
    # (slot 3 stands where slot 0 does, yet does not see town 0's slot 1: towns are separate)


# --- capacity 1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [L1, L3])
def test_two_agents_on_one_affordance_only_the_lowest_slot_may_interact(level: str) -> None:
    env = TownletVectorEnv(level=level, num_envs=6, agents_per_town=3)
    env.reset(seed=0)
    bed0, bed1 = aff_cell(env, 0, "Bed"), aff_cell(env, 1, "Bed")
    shower1 = aff_cell(env, 1, "Shower")
    # town 0: slots 0 and 1 on the Bed; town 1: slots 4 and 5 on the Bed, slot 3 on the Shower
    place(env, [bed0, bed0, empty_cells(env, 0)[0], shower1, bed1, bed1])
    mask = action_mask(env.level, env.state)
    assert mask[:, INTERACT].tolist() == [True, False, False, True, True, False]
    money = env.meter_names.index("money")
    before = env.state.meters[:, money].clone()
    _, _, _, _, info = env.step([INTERACT] * 6)
    assert info["invalid_action"].tolist() == [False, True, True, False, False, True]
    paid = before - info["meters"][:, money]
    assert bool((paid[[0, 3, 4]] > 0).all())
    assert paid[[1, 2, 5]].tolist() == [0.0, 0.0, 0.0]  # the losers ran WAIT and paid nothing


def test_multi_tick_agent_in_progress_keeps_priority_over_a_lower_slot() -> None:
    env = TownletVectorEnv(level=L3, num_envs=2, agents_per_town=2)
    env.reset(seed=0)
    bed = aff_cell(env, 0, "Bed")  # always open, 5 ticks
    beside = next(c for c in empty_cells(env, 0) if abs(c[0] - bed[0]) + abs(c[1] - bed[1]) == 1)
    step_onto = {(1, 0): LEFT, (-1, 0): RIGHT, (0, 1): UP, (0, -1): DOWN}[
        (beside[0] - bed[0], beside[1] - bed[1])
    ]
    place(env, [beside, bed])
    # tick 1: slot 1 starts sleeping while slot 0 (the lower slot) walks onto the Bed
    _, _, _, _, info = env.step([step_onto, INTERACT])
    assert info["position"][0].tolist() == list(bed)
    assert info["interaction_progress"].tolist() == [0, 1]
    assert info["action_mask"][:, INTERACT].tolist() == [False, True]
    # tick 2: both try; slot 1 keeps the Bed, slot 0 is flagged and runs WAIT
    _, _, _, _, info = env.step([INTERACT, INTERACT])
    assert info["invalid_action"].tolist() == [True, False]
    assert info["interaction_progress"].tolist() == [0, 2]
    assert info["action_mask"][:, INTERACT].tolist() == [False, True]
    # slot 1 leaves off (WAIT interrupts): the Bed is free for slot 0 again
    _, _, _, _, info = env.step([WAIT, WAIT])
    assert info["interaction_progress"].tolist() == [0, 0]
    assert info["action_mask"][:, INTERACT].tolist() == [True, False]


# --- deaths: newcomers and regenerated towns -------------------------------------------------------


def test_a_dead_agent_is_replaced_by_a_newcomer_while_town_mates_go_on() -> None:
    env = TownletVectorEnv(level=L1, num_envs=64 * 3, agents_per_town=3)
    env.reset(seed=5)
    gen = torch.Generator().manual_seed(5)
    for _ in range(7):
        mask = action_mask(env.level, env.state)
        env.step(torch.multinomial(mask.float(), 1, generator=gen)[:, 0])
    f = fields(env)
    dying = list(range(1, 192, 3))  # the middle slot of every town
    set_meter(env, dying, "energy", 0.001)
    before = env.state
    obs, _, term, trunc, info = env.step(waits(env))
    after = env.state
    expect = torch.zeros(192, dtype=torch.bool)
    expect[dying] = True
    assert torch.equal(term, expect) and not bool(trunc.any())
    assert torch.equal(info["_final_obs"], expect)
    assert torch.equal(info["final_episode_step"][dying], before.life_steps[dying] + 1)
    # the town was not regenerated: same layout, the clock went on by one
    assert torch.equal(after.affordance_position, before.affordance_position)
    assert torch.equal(after.clock, before.clock + 1)
    assert bool((obs[:, f["episode_progress"]] == 8 / 500).all())
    # town-mates continue unchanged (WAIT: same cells, one more tick lived)
    mates = [s for s in range(192) if s not in dying]
    assert torch.equal(after.position[mates], before.position[mates])
    assert torch.equal(after.life_steps[mates], before.life_steps[mates] + 1)
    # newcomers: initial meters, step 0, alive, on a free cell of their town
    initial = env.level.initial_meters
    assert torch.equal(info["meters"][dying], initial.expand(len(dying), -1))
    assert info["episode_step"][dying].tolist() == [0] * len(dying)
    assert bool(after.alive.all())
    for slot in dying:
        town = slot // 3
        cell = tuple(after.position[slot].tolist())
        aff_cells = {tuple(c) for c in after.affordance_position[town].tolist()}
        assert cell not in aff_cells, (slot, cell)  # L1 has no walls; the walled test covers them
        mates_cells = {tuple(after.position[town * 3 + j].tolist()) for j in (0, 2)}
        assert cell not in mates_cells, slot


# Regression: respawn() once overwrote a living agent's occupancy with a dead cell-mate's.
def test_newcomer_never_lands_on_a_living_agent_sharing_the_dead_ones_cell() -> None:
    # Agents may share a cell. If slot 1 dies on slot 0's cell, that cell is still taken.
    towns = 2000  # 1 free cell in ~50 is the bad one: certain to be drawn if the bug is there
    env = TownletVectorEnv(level=L1, num_envs=2 * towns, agents_per_town=2)
    env.reset(seed=0)
    pos = env.state.position.clone().view(towns, 2, 2)
    pos[:, 1] = pos[:, 0]
    env.town.set_state(env.state.replace(position=pos.view(-1, 2)))
    set_meter(env, list(range(1, 2 * towns, 2)), "energy", 0.001)
    _, _, term, _, _ = env.step(waits(env))
    assert bool(term[1::2].all()) and not bool(term[0::2].any())
    p = env.state.position.view(towns, 2, 2)
    assert int((p[:, 0] == p[:, 1]).all(dim=1).sum()) == 0


def test_core_respawn_avoids_a_living_agent_on_its_own_cell() -> None:
    # The working half of the rule above, at scale: 500 towns, each with one living agent that
    # a newcomer ignoring occupancy would hit about once in 50 draws.
    env = TownletVectorEnv(level=L1, num_envs=2 * 500, agents_per_town=2)
    env.reset(seed=1)
    alive = env.state.alive.clone()
    alive[1::2] = False
    state = env.state.replace(alive=alive)
    state = respawn(env.level, state, torch.arange(1, 1000, 2), torch.Generator().manual_seed(0))
    p = state.position.view(500, 2, 2)
    assert int((p[:, 0] == p[:, 1]).all(dim=1).sum()) == 0


def test_newcomers_avoid_walls(tmp_path: Path) -> None:
    # A walled copy of L1: every cell but a 3x3 room is a wall, so a newcomer on a wall would
    # be easy to draw if walls were not excluded.
    pack = tmp_path / "walled"
    shutil.copytree(BUILTIN_DIR / L1, pack)
    room = {(x, y) for x in range(4) for y in range(5)}
    walls = [[x, y] for y in range(8) for x in range(8) if (x, y) not in room]
    world = (pack / "world.yaml").read_text()
    (pack / "world.yaml").write_text(world + f"\nwalls: {walls}\n")
    # 20 free cells, 14 affordances: 6 cells for the agents
    env = TownletVectorEnv(level=pack, num_envs=300 * 3, agents_per_town=3)
    env.reset(seed=0)
    set_meter(env, list(range(0, 900, 3)), "energy", 0.001)
    env.step(waits(env))
    x, y = env.state.position[:, 0], env.state.position[:, 1]
    assert bool(((x < 4) & (y < 5)).all())
    # moves into walls are masked like moves off the grid
    place(env, [(3, 4)] * 900)
    mask = action_mask(env.level, env.state)
    assert not bool(mask[:, RIGHT].any()) and not bool(mask[:, DOWN].any())
    assert bool(mask[:, LEFT].all()) and bool(mask[:, UP].all())


def test_town_regenerates_when_all_its_agents_die() -> None:
    env = TownletVectorEnv(level=L1, num_envs=8 * 2, agents_per_town=2)
    env.reset(seed=3)
    for _ in range(5):
        env.step(waits(env))
    f = fields(env)
    dead_towns = [0, 3, 6]
    slots = [t * 2 + j for t in dead_towns for j in range(2)]
    set_meter(env, slots, "energy", 0.001)
    before = env.state
    obs, _, term, trunc, info = env.step(waits(env))
    after = env.state
    assert term.nonzero().flatten().tolist() == slots and not bool(trunc.any())
    for town in range(8):
        if town in dead_towns:
            assert int(after.clock[town]) == 0
            assert not torch.equal(after.affordance_position[town], before.affordance_position[town])
        else:
            assert int(after.clock[town]) == 6
            assert torch.equal(after.affordance_position[town], before.affordance_position[town])
    assert bool((obs[slots, f["episode_progress"]] == 0).all())
    assert info["episode_step"][slots].tolist() == [0] * len(slots)
    assert torch.equal(info["meters"][slots], env.level.initial_meters.expand(len(slots), -1))
    assert info["final_episode_step"][slots].tolist() == [6] * len(slots)
    # regenerated agents start on distinct empty cells of the new layout
    for town in dead_towns:
        cells = [tuple(after.position[town * 2 + j].tolist()) for j in range(2)]
        assert len(set(cells)) == 2 and set(cells) <= set(empty_cells(env, town))


def test_max_steps_truncates_the_living_and_regenerates_the_town() -> None:
    env = TownletVectorEnv(level=L1, num_envs=3 * 2, agents_per_town=3)
    env.reset(seed=0)
    clock = torch.tensor([499, 10])
    env.town.set_state(env.state.replace(clock=clock, life_steps=torch.tensor([499, 499, 40, 10, 10, 10])))
    set_meter(env, [0], "energy", 0.001)  # slot 0 dies on the last tick: terminated, not truncated
    layout = env.state.affordance_position.clone()
    obs, _, term, trunc, info = env.step(waits(env))
    assert term.tolist() == [True, False, False, False, False, False]
    assert trunc.tolist() == [False, True, True, False, False, False]
    assert info["_final_obs"].tolist() == [True, True, True, False, False, False]
    assert info["final_episode_step"][:3].tolist() == [500, 500, 41]
    assert env.state.clock.tolist() == [0, 11]
    assert not torch.equal(env.state.affordance_position[0], layout[0])
    assert torch.equal(env.state.affordance_position[1], layout[1])
    assert info["episode_step"].tolist() == [0, 0, 0, 11, 11, 11]
    assert bool((obs[:3, fields(env)["episode_progress"]] == 0).all())

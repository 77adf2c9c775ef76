"""Differential tests: the tensor core against the plain-Python reference, tick by tick.

Each tick feeds the core's current state to both implementations, runs one tick on the same
actions and compares everything a tick produces. The vector env drives the trajectories (its
autoreset brings births and regenerated towns), but the comparison is of the core `step`
before autoreset. Floats must agree within 1e-5. The only excused disagreement is a discrete
outcome that the reference reports as decided within 1e-6 of its boundary (float32 vs float64).
"""

from __future__ import annotations

import functools
import random
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet_env import TownletVectorEnv, builtin_levels, load_level
from townlet_env.config import LevelConfig
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import CompiledLevel, StepResult, TownState, action_mask, observe, step
from townlet_env.testing import reference_economy as ref_economy
from townlet_env.testing.reference import (
    RefAgent,
    RefState,
    RefStepResult,
    RefTown,
    affordance_under,
    from_tensor_state,
    holder,
    is_open,
    ref_action_mask_detail,
    ref_observe,
    ref_step_detail,
)

LEVELS = builtin_levels()
TOL = 1e-5

Policy = Callable[[random.Random, torch.Tensor, int], list[int]]


@functools.cache
def config(name: str) -> LevelConfig:
    return load_level(name)


@functools.cache
def vector_env(name: str, num_envs: int, agents_per_town: int) -> TownletVectorEnv:
    """Shared across examples (building one parses and compiles the pack); every use starts
    with set_difficulty and reset(seed), which replace all of its state."""
    return TownletVectorEnv(name, num_envs=num_envs, agents_per_town=agents_per_town)


# --- comparing one tick ------------------------------------------------------------------------


def check_tick(
    level: CompiledLevel, cfg: LevelConfig, state: TownState, actions: list[int], tally: Counter, where: str
) -> StepResult:
    before = from_tensor_state(cfg, state)
    ref = ref_step_detail(cfg, before, actions)
    new, res = step(level, state, torch.tensor(actions))
    excused = _compare_outcome(level, ref, new, res, where)
    _compare_view(level, cfg, ref, new, excused, where)
    _count(cfg, level, before, ref, tally)
    tally["excused"] += len(excused)
    return res


def _compare_outcome(
    level: CompiledLevel, ref: RefStepResult, new: TownState, res: StepResult, where: str
) -> set[int]:
    """Everything a tick produced must match, except for the slots returned: there the
    reference found the deciding value of a discrete outcome (affordability, the terminal
    check) within 1e-6 of its boundary and the core, in float32, decided the other way."""
    excused = set()
    meters = new.meters.tolist()
    pos, alive = new.position.tolist(), new.alive.tolist()
    progress, life = new.progress.tolist(), new.life_steps.tolist()
    reward = res.reward.tolist()
    # on an economy level, whether money is at 0 (the broke count) is such an outcome too
    broke = new.work[:, ref_economy.BROKE].tolist() if level.economy is not None else None
    for slot, agent in enumerate(ref.state.agents):
        at = f"{where} slot {slot}"
        assert pos[slot] == [agent.x, agent.y], f"{at}: position"
        assert life[slot] == agent.life_steps, f"{at}: life_steps"
        alike = bool(res.invalid_action[slot]) == ref.invalid[slot] and alive[slot] == agent.alive
        alike = alike and (broke is None or broke[slot] == agent.work[ref_economy.BROKE])
        if not alike and ref.near_boundary[slot]:
            excused.add(slot)
            continue
        assert bool(res.invalid_action[slot]) == ref.invalid[slot], f"{at}: invalid flag"
        assert int(res.executed[slot]) == ref.executed[slot], f"{at}: executed action"
        for m, name in enumerate(level.meter_names):
            assert abs(meters[slot][m] - agent.meters[m]) <= TOL, (
                f"{at}: meter {name} core {meters[slot][m]} reference {agent.meters[m]}"
            )
        assert alive[slot] == agent.alive, f"{at}: alive"
        assert progress[slot] == agent.progress, f"{at}: progress"
        assert abs(reward[slot] - ref.rewards[slot]) <= TOL, (
            f"{at}: reward {reward[slot]} vs {ref.rewards[slot]}"
        )
        assert bool(res.terminated[slot]) == ref.terminated[slot], f"{at}: terminated"
        assert bool(res.truncated[slot]) == ref.truncated[slot], f"{at}: truncated"
    assert new.clock.tolist() == [t.clock for t in ref.state.towns], f"{where}: clock"
    if level.social is not None:
        _compare_social(ref, new, res, excused, where)
    if level.economy is not None:
        _compare_economy(ref, new, res, excused, where)
    return excused


def _compare_economy(
    ref: RefStepResult, new: TownState, res: StepResult, excused: set[int], where: str
) -> None:
    """Exit reasons, the job side of the tick, each slot's work columns and ledger, and the
    events of every town (a tick starts none: the scheduler runs after it)."""
    assert res.exit_reason is not None and res.shift is not None
    k = new.agents_per_town
    flagged = {slot // k for slot in excused | {s for s, near in enumerate(ref.near_boundary) if near}}
    work, ledger = new.work.tolist(), new.ledger.tolist()
    for slot, agent in enumerate(ref.state.agents):
        if slot // k in flagged:
            continue
        at = f"{where} slot {slot}"
        assert int(res.exit_reason[slot]) == ref.exit_reason[slot], f"{at}: exit reason"
        assert abs(float(res.shift.wage[slot]) - ref.wage[slot]) <= TOL, f"{at}: wage"
        for name in ("on_time", "late", "absent", "fired"):
            assert bool(getattr(res.shift, name)[slot]) == getattr(ref, name)[slot], f"{at}: {name}"
        assert work[slot] == agent.work, f"{at}: work {work[slot]} vs {agent.work}"
        assert abs(ledger[slot][0] - agent.ledger) <= TOL, f"{at}: ledger {ledger[slot][0]} vs {agent.ledger}"
    for t, town in enumerate(ref.state.towns):
        assert new.event_clock[t, :, 0].tolist() == town.event_end, f"{where} town {t}: event ends"


def _compare_social(
    ref: RefStepResult, new: TownState, res: StepResult, excused: set[int], where: str
) -> None:
    """Chats, queues, ties and reward terms. A slot whose town holds an excused agent may have
    another outcome and is left to the next tick's comparison, which starts from the core."""
    assert res.chat_partner is not None and res.chat_success is not None
    k = new.agents_per_town
    flagged = {slot // k for slot in excused}
    ties = {name: getattr(new, name).tolist() for name in ("trust", "familiarity", "rivalry")}
    for slot, agent in enumerate(ref.state.agents):
        if slot // k in flagged:
            continue
        at = f"{where} slot {slot}"
        assert int(res.chat_partner[slot]) == ref.chat_partner[slot], f"{at}: chat partner"
        assert bool(res.chat_success[slot]) == ref.chat_success[slot], f"{at}: chat success"
        assert int(new.queue_key[slot]) == agent.queue_key, f"{at}: queue key"
        assert int(new.stall[slot]) == agent.stall, f"{at}: stall"
        for name, values in ties.items():
            for c, want in enumerate(getattr(agent, name)):
                assert abs(values[slot][c] - want) <= TOL, (
                    f"{at}: {name} toward {c}: {values[slot][c]} vs {want}"
                )
        for name, values in ref.reward_terms.items():
            got = float(res.reward_terms[name][slot])
            assert abs(got - values[slot]) <= TOL, f"{at}: reward term {name} {got} vs {values[slot]}"


def _compare_view(
    level: CompiledLevel, cfg: LevelConfig, ref: RefStepResult, new: TownState, excused: set[int], where: str
) -> None:
    """Post-tick mask and observation. A town with an excused agent is legitimately in another
    state than the reference's, so its rows are compared on the core's own new state."""
    core_obs, core_mask = observe(level, new), action_mask(level, new)
    assert bool(torch.isfinite(core_obs).all()), f"{where}: a non-finite observation"  # NaN compares false
    views = {False: _ref_view(cfg, ref.state)}
    if excused:
        views[True] = _ref_view(cfg, from_tensor_state(cfg, new))
    k = new.agents_per_town
    flagged = {slot // k for slot in excused}
    interact = level.interact_action
    for slot in range(new.num_slots):
        obs, mask, near = views[slot // k in flagged][slot]
        at = f"{where} slot {slot}"
        got = core_mask[slot].tolist()
        if near:  # only INTERACT's affordability was within 1e-6 of flipping
            got[interact] = mask[interact]
        assert got == mask, f"{at}: mask core {core_mask[slot].tolist()} reference {mask}"
        diff = (core_obs[slot] - torch.tensor(obs, dtype=torch.float64)).abs()
        if float(diff.max()) > TOL:
            worst = int(diff.argmax())
            name = next(f.name for f in level.layout.fields if f.offset <= worst < f.offset + f.size)
            raise AssertionError(
                f"{at}: observation field {name} (index {worst}) core {float(core_obs[slot, worst])} "
                f"reference {obs[worst]}"
            )


def _ref_view(cfg: LevelConfig, state: RefState) -> list[tuple[list[float], list[bool], bool]]:
    mask, near = ref_action_mask_detail(cfg, state)
    return list(zip(ref_observe(cfg, state), mask, near, strict=True))


def _count(
    cfg: LevelConfig, level: CompiledLevel, before: RefState, ref: RefStepResult, tally: Counter
) -> None:
    """What the tick exercised, so a test can show it did not pass vacuously."""
    tally["ticks"] += 1
    if cfg.social is not None:
        _count_social(before, ref, tally)
    if cfg.economy is not None:
        _count_economy(cfg, before, ref, tally)
    for slot, agent in enumerate(before.agents):
        tally["invalid"] += ref.invalid[slot]
        tally["used"] += ref.used[slot]
        tally["completed"] += ref.completed[slot]
        tally["deaths"] += ref.terminated[slot]
        tally["truncated"] += ref.truncated[slot]
        tally["near_boundary"] += ref.near_boundary[slot]
        tally["dead_slot_ticks"] += not agent.alive
        if agent.progress > 0 and ref.executed[slot] != level.interact_action:
            tally["interrupted"] += 1
        if not agent.alive:
            continue
        tally["on_wall"] += (agent.x, agent.y) in before.walls
        for spec in cfg.actions.actions:
            if spec.delta is not None:
                tally["facing_wall"] += (agent.x + spec.delta[0], agent.y + spec.delta[1]) in before.walls
        aff = affordance_under(before, slot)
        if aff is None:
            continue
        tally["on_affordance"] += 1
        tally["closed"] += not is_open(cfg, aff, before.towns[before.town_of(slot)].clock % 24)
        owner = holder(before, slot)
        tally["contended"] += owner != slot
        here = [j for j in before.town_slots(before.town_of(slot)) if _same_cell(before, j, slot)]
        tally["priority_by_progress"] += owner != min(j for j in here if before.agents[j].alive)
        tally["beside_the_dead"] += any(not before.agents[j].alive for j in here)


def _count_social(before: RefState, ref: RefStepResult, tally: Counter) -> None:
    for slot, agent in enumerate(ref.state.agents):
        was = before.agents[slot]
        tally["chats"] += ref.chat_partner[slot] >= 0
        tally["chat_success"] += ref.chat_success[slot]
        tally["chat_failure"] += ref.chat_partner[slot] >= 0 and not ref.chat_success[slot]
        tally["queue_joins"] += agent.queue_key >= 0 and was.queue_key < 0
        tally["queued"] += agent.queue_key >= 0
        tally["ghost_steps"] += (
            was.stall > 0 and agent.stall == 0 and agent.queue_key >= 0 and was.queue_key != agent.queue_key
        )
        tally["served_from_queue"] += was.queue_key >= 0 and ref.used[slot]
        tally["rivals"] += any(r > 0.2 for r in agent.rivalry)


def _count_economy(cfg: LevelConfig, before: RefState, ref: RefStepResult, tally: Counter) -> None:
    reasons = list(ref_economy.exit_reason_names([m.name for m in cfg.meters.meters if m.terminal]))
    for slot, agent in enumerate(before.agents):
        tally["wages"] += ref.wage[slot] > 0
        tally["on_time"] += ref.on_time[slot]
        tally["late"] += ref.late[slot]
        tally["absent"] += ref.absent[slot]
        tally["fired"] += ref.fired[slot]
        tally[reasons[ref.exit_reason[slot]]] += 1
        if not agent.alive:
            continue
        tally["priced_use"] += ref.used[slot] and ref_economy.price_here(cfg, before, slot) != 1.0
        tally["closed_here"] += ref_economy.closed_here(cfg, before, slot)
        tally["gathering_chat"] += ref.chat_success[slot] and ref_economy.boost(cfg, before, slot) != 1.0
        tally["unemployed"] += before.towns[before.town_of(slot)].clock < agent.work[ref_economy.REHIRE_AT]
    for slot, agent in enumerate(before.agents):
        town = ref.state.towns[before.town_of(slot)]
        tally["nightly"] += agent.alive and ref.state.agents[slot].alive and town.clock % 24 == 0
        tally["vacant_slot_ticks"] += not agent.alive
        tally["due_for_a_newcomer"] += not agent.alive and agent.work[ref_economy.VACANT] + 1 >= 2


def _same_cell(state: RefState, j: int, slot: int) -> bool:
    a, b = state.agents[j], state.agents[slot]
    return (a.x, a.y) == (b.x, b.y)


# --- driving trajectories ----------------------------------------------------------------------


def masked_random(invalid_rate: float) -> Policy:
    def policy(rng: random.Random, mask: torch.Tensor, interact: int) -> list[int]:
        actions = []
        for row in mask.tolist():
            legal = [a for a, ok in enumerate(row) if ok]
            illegal = [a for a, ok in enumerate(row) if not ok]
            pool = illegal if illegal and rng.random() < invalid_rate else legal
            actions.append(rng.choice(pool))
        return actions

    return policy


def interact_seeking(interrupt_rate: float, blind_rate: float = 0.0) -> Policy:
    """INTERACT whenever legal, now and then breaking off a use or trying INTERACT where it is
    masked (closed, unaffordable, taken); otherwise anything legal."""

    def policy(rng: random.Random, mask: torch.Tensor, interact: int) -> list[int]:
        actions = []
        for row in mask.tolist():
            # a blind INTERACT is masked (closed, unaffordable, taken) and must run as WAIT
            use = rng.random() >= interrupt_rate if row[interact] else rng.random() < blind_rate
            if use:
                actions.append(interact)
            else:
                actions.append(rng.choice([a for a, ok in enumerate(row) if ok and a != interact]))
        return actions

    return policy


def scramble(env: TownletVectorEnv, rng: random.Random, crowd: bool, frail: bool) -> None:
    """Start the first lives with random meters and towns at random clocks, so cascades below
    threshold, poverty, every hour, deaths and truncation all happen within a short run. With
    `crowd`, each town's agents start together on one affordance, one of them (multi-tick)
    part-way through a use, so contention and the priority of a use in progress are exercised.
    With `frail`, all but each town's last agent are nearly spent, so they die first and the
    survivor shares the town (and maybe a cell) with the dead."""
    saved = env.state_dict()
    level, tensors = env.level, saved["state"]
    for slot in range(env.num_envs):
        for m in range(level.n_meters):
            low = 0.02 if bool(level.terminal[m]) else 0.0
            tensors["meters"][slot, m] = rng.uniform(low, 1.0)
    for town in range(env.num_towns):
        tensors["clock"][town] = rng.choice(
            [0, rng.randrange(level.max_steps), level.max_steps - rng.randint(1, 40)]
        )
        slots = range(town * env.agents_per_town, (town + 1) * env.agents_per_town)
        if frail:
            for slot in slots[:-1]:
                for m in level.terminal.nonzero().flatten().tolist():
                    tensors["meters"][slot, m] = rng.uniform(0.005, 0.05)
        if not crowd:
            continue
        aff = rng.randrange(level.n_affordances)
        for slot in slots:
            tensors["position"][slot] = tensors["affordance_position"][town, aff]
        if level.multi_tick:
            tensors["progress"][rng.choice(slots)] = rng.randrange(1, int(level.aff_ticks[aff]))
    if level.economy is not None:
        scramble_economy(env, tensors, rng)
    env.load_state_dict(saved)


def scramble_economy(env: TownletVectorEnv, tensors: dict, rng: random.Random) -> None:
    """Events active at random, and work columns near every threshold: shifts half done,
    absences one short of a firing, money spent and broke counters one short of an eviction,
    firings one short of the next, agents fired a while ago. Some wages are due at once: agents
    are put on their employer's place."""
    tables = env.level.economy
    assert tables is not None
    spec = tables.spec
    for town in range(env.num_towns):
        clock = int(tensors["clock"][town])
        for e in range(tables.n_events):
            if rng.random() < 0.4:
                tensors["event_clock"][town, e, 0] = clock + rng.randint(0, 6)
                tensors["event_value"][town, e] = rng.uniform(0.5, 2.0)
            tensors["event_clock"][town, e, 1] = clock + rng.choice([0, 0, 5])
    window = 1 << spec.jobs.absence_window
    money = env.level.meter_names.index(spec.money)
    for slot in range(env.num_envs):
        work = tensors["work"][slot]
        clock = int(tensors["clock"][slot // env.agents_per_town])
        work[1] = rng.choice([0, 0, 1, 2])
        work[2] = rng.randrange(window)
        work[3] = rng.choice([0, 0, max(clock - 3, 0), clock + rng.randint(0, 5)])
        work[4] = rng.randint(0, max(spec.lifecycle.evict_firings - 1, 0))
        if rng.random() < 0.3:
            tensors["meters"][slot, money] = rng.choice([0.0, 0.0, 0.01])
            work[5] = rng.randint(0, max(spec.lifecycle.evict_broke_ticks, 1))
        if rng.random() < 0.5 and not tensors["progress"][slot]:
            town = slot // env.agents_per_town
            place = int(tables.place[int(work[0])])
            events = [e for e in range(tables.n_events) if int(tensors["event_clock"][town, e, 0]) > clock]
            if events and rng.random() < 0.5:  # where an event is on: a gathering, an outage, a spike
                place = rng.choice(tables.event_target[rng.choice(events)].nonzero().flatten().tolist())
            tensors["position"][slot] = tensors["affordance_position"][town, place]
            tensors["queue_key"][slot] = -1
            tensors["stall"][slot] = 0


def drive(
    level_name: str,
    seed: int,
    apt: int,
    towns: int,
    ticks: int,
    policy: Policy,
    autoreset: bool = True,
    crowd: bool = False,
    frail: bool = False,
) -> Counter:
    """Lockstep over one trajectory. With `autoreset` the vector env steps (births, new towns);
    without, the bare core steps, so the dead stay in their slots and towns run on around them."""
    env = vector_env(level_name, apt * towns, apt)
    rng = random.Random(seed)
    env.set_difficulty(torch.tensor([rng.uniform(0.0, 1.5) for _ in range(env.num_envs)]))
    env.reset(seed=seed)
    scramble(env, rng, crowd, frail)
    level, cfg, state = env.level, config(level_name), env.state
    tally: Counter = Counter()
    for tick in range(ticks):
        actions = policy(rng, action_mask(level, state), level.interact_action)
        where = f"{level_name} seed={seed} apt={apt} tick={tick}"
        res = check_tick(level, cfg, state, actions, tally, where)
        if autoreset:
            _, reward, terminated, truncated, _ = env.step(actions)
            # the env must hand out what the checked core tick produced
            assert torch.equal(reward, res.reward) and torch.equal(terminated, res.terminated), where
            tally["resets"] += int((terminated | truncated).sum())
            state = env.state
        else:
            state, _ = step(level, state, torch.tensor(actions))
    return tally


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level_name", LEVELS)
@settings(max_examples=max(settings().max_examples // 4, 3))  # per level; the profile sets the scale
@given(
    seed=st.integers(0, 2**31 - 1),
    apt=st.sampled_from([1, 2, 3]),
    towns=st.integers(1, 3),
    invalid_rate=st.sampled_from([0.0, 0.25]),
)
def test_core_matches_reference_in_random_play(
    level_name: str, seed: int, apt: int, towns: int, invalid_rate: float
) -> None:
    tally = drive(level_name, seed, apt, towns, ticks=40, policy=masked_random(invalid_rate))
    if invalid_rate:
        assert tally["invalid"] > 0, "masked actions were meant to be mixed in"


@pytest.mark.parametrize("level_name", LEVELS)
def test_core_matches_reference_when_seeking_affordances(level_name: str) -> None:
    tally: Counter = Counter()
    for seed in range(2):
        policy = interact_seeking(interrupt_rate=0.15)
        tally += drive(level_name, seed, apt=2, towns=3, ticks=50, policy=policy, crowd=True)
    for what in ("used", "completed", "deaths", "resets", "contended"):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"


def test_multi_tick_day_cycle_matches_reference_over_days() -> None:
    """L3 over several days: uses that span ticks, interruptions, closing hours, contention."""
    tally: Counter = Counter()
    for seed in range(2):
        policy = interact_seeking(interrupt_rate=0.2, blind_rate=0.1)
        tally += drive(
            "L3_temporal_mechanics", 100 + seed, apt=3, towns=2, ticks=72, policy=policy, crowd=True
        )
    wanted = ("used", "completed", "interrupted", "closed", "contended", "priority_by_progress", "deaths")
    for what in (*wanted, "invalid"):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"
    assert tally["used"] > tally["completed"], "multi-tick uses should take more than one tick"


@pytest.mark.parametrize("level_name", LEVELS)
def test_dead_agents_match_reference(level_name: str) -> None:
    """Without autoreset the dead keep their slots: they change nothing, may only WAIT, see no
    one, are seen by no one and hold no affordance, while the rest of their town plays on."""
    tally: Counter = Counter()
    for seed in range(2):
        # agents refused INTERACT mostly try again, so they linger (and die) on the affordance
        policy = interact_seeking(interrupt_rate=0.3, blind_rate=0.7)
        tally += drive(
            level_name,
            200 + seed,
            apt=3,
            towns=2,
            ticks=40,
            policy=policy,
            autoreset=False,
            crowd=True,
            frail=True,
        )
    for what in ("deaths", "dead_slot_ticks", "beside_the_dead", "invalid"):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"


# --- rules no built-in level uses --------------------------------------------------------------

WALLS = [[2, 2], [2, 3], [2, 4], [5, 5], [6, 5], [3, 6], [0, 7]]
VARIANTS = {
    # walls; a survival reward with a clipped bonus; a day cycle with multi-tick uses
    "walled_bonus_day": (
        "L3_temporal_mechanics",
        {
            "world.yaml": {"walls": WALLS},
            "reward.yaml": {
                "reward": {
                    "kind": "constant_plus_bonus",
                    "base": 0.1,
                    "bonus": 0.8,
                    "bonus_meters": ["energy", "health"],
                    "clip": [0.0, 0.8],
                }
            },
        },
    ),
    # walls; a clipped weighted sum; fewer other-agent entries than there are others
    "walled_full_few_others": (
        "L1_full_observability",
        {
            "world.yaml": {"walls": WALLS},
            "reward.yaml": {
                "reward": {
                    "kind": "weighted_sum",
                    "base": 0.2,
                    "centre": 0.5,
                    "weights": {"energy": 1.0, "mood": -0.5},
                    "clip": [0.0, 0.5],
                }
            },
            "observation.yaml": {"other_agents": 1},
        },
    ),
    # walls; opening hours with instant uses; a 7x7 window reaching well past the border
    "walled_wide_window_hours": (
        "L2_partial_observability",
        {
            "world.yaml": {"walls": WALLS, "day_cycle": True},
            "observation.yaml": {"window": 7, "reserve": []},
        },
    ),
}


@pytest.fixture(scope="module")
def variant_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("packs")
    for name, (base, changes) in VARIANTS.items():
        pack = root / name
        shutil.copytree(BUILTIN_DIR / base, pack)
        for file, fields in changes.items():
            data = yaml.safe_load((pack / file).read_text())
            data.update(fields)
            (pack / file).write_text(yaml.safe_dump(data))
    return root


# the economy's options L5_town leaves off: base prices, a population cap below the town's
# slots, a respawn delay, the nightly reset, quick evictions
ECONOMY_VARIANT = {
    "economy.yaml": {
        "prices": {"Bed": 1.5, "FastFood": 0.5, "Shower": 2.0},
        "lifecycle": {
            "population_cap": 4,
            "respawn_delay": 2,
            "evict_broke_ticks": 3,
            "evict_firings": 1,
            "nightly_reset": {"meters": {"energy": [0.5, 1.0], "satiation": [0.4, 0.9]}},
        },
    }
}
VARIANTS["economy_night_delay_cap"] = ("L5_town", ECONOMY_VARIANT)


def test_economy_options_match_reference(variant_dir: Path) -> None:
    pack = str(variant_dir / "economy_night_delay_cap")
    tally: Counter = Counter()
    for seed in range(3):
        policy = social_seeking(chat_rate=0.3, interact_rate=0.5)
        tally += drive(pack, 500 + seed, apt=6, towns=2, ticks=40, policy=policy, crowd=seed == 0)
    for what in (
        "nightly",
        "vacant_slot_ticks",
        "due_for_a_newcomer",
        "evicted_broke",
        "evicted_fired",
        "used",
    ):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"


@pytest.mark.parametrize("variant", [v for v in VARIANTS if not v.startswith("economy")])
def test_core_matches_reference_on_pack_variants(variant: str, variant_dir: Path) -> None:
    pack = str(variant_dir / variant)
    tally: Counter = Counter()
    for seed in range(2):
        tally += drive(pack, seed, apt=3, towns=2, ticks=40, policy=masked_random(0.25), crowd=True)
    for what in ("facing_wall", "used", "deaths", "resets"):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"
    assert tally["on_wall"] == 0, "an agent was born or walked onto a wall"


# --- the reference's own boundary flags --------------------------------------------------------


def lone_agent_on_bed(energy: float, money: float) -> tuple[LevelConfig, RefState]:
    """L0: one agent standing on the Bed (a use costs 5 x 0.01 money; energy drains 0.01)."""
    agent = RefAgent([energy, money], 1, 1, True, 0, 0, 1.0)
    return config("L0_minimal"), RefState([agent], [RefTown(0, [(1, 1)])], 1)


@pytest.mark.parametrize(
    ("money", "legal", "near"),
    [(0.05 + 5e-7, True, True), (0.05 - 5e-7, False, True), (0.06, True, False), (0.04, False, False)],
)
def test_reference_flags_affordability_only_at_its_boundary(money: float, legal: bool, near: bool) -> None:
    cfg, state = lone_agent_on_bed(energy=0.5, money=money)
    mask, flags = ref_action_mask_detail(cfg, state)
    assert mask[0][4] is legal and flags == [near]


@pytest.mark.parametrize(
    ("energy", "dies", "near"),
    [(0.01 + 5e-7, False, True), (0.01 - 5e-7, True, True), (0.011, False, False), (0.005, True, False)],
)
def test_reference_flags_the_terminal_check_only_at_its_boundary(
    energy: float, dies: bool, near: bool
) -> None:
    cfg, state = lone_agent_on_bed(energy=energy, money=0.0)
    result = ref_step_detail(cfg, state, [5])  # WAIT: only the 0.01 drain
    assert result.terminated == [dies] and result.near_boundary == [near]


# --- the social level ----------------------------------------------------------------------------


def social_seeking(chat_rate: float, interact_rate: float) -> Policy:
    """CHAT and INTERACT (which queues where taken) far more often than random play would."""

    def policy(rng: random.Random, mask: torch.Tensor, interact: int) -> list[int]:
        chat = mask.shape[1] - 1  # L4's CHAT is its last action
        actions = []
        for row in mask.tolist():
            if row[chat] and rng.random() < chat_rate:
                actions.append(chat)
            elif row[interact] and rng.random() < interact_rate:
                actions.append(interact)
            else:
                actions.append(rng.choice([a for a, ok in enumerate(row) if ok]))
        return actions

    return policy


def test_social_level_matches_reference_in_crowded_play() -> None:
    """Six agents crowded on one affordance: queues, ghost steps, handovers, chats both ways."""
    tally: Counter = Counter()
    for seed in range(3):
        policy = social_seeking(chat_rate=0.4, interact_rate=0.6)
        tally += drive("L4_social", 300 + seed, apt=6, towns=2, ticks=60, policy=policy, crowd=True)
    for what in (
        "chat_success",
        "chat_failure",
        "queue_joins",
        "ghost_steps",
        "served_from_queue",
        "used",
        "deaths",
    ):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"


@settings(max_examples=max(settings().max_examples // 4, 3))
@given(seed=st.integers(0, 2**31 - 1), apt=st.sampled_from([2, 3, 6]), towns=st.integers(1, 2))
def test_social_level_matches_reference_in_random_play(seed: int, apt: int, towns: int) -> None:
    drive("L4_social", seed, apt, towns, ticks=40, policy=social_seeking(chat_rate=0.3, interact_rate=0.3))


# --- the economy level ---------------------------------------------------------------------------


def test_economy_level_matches_reference_in_crowded_play() -> None:
    """L5_town crowded, with events, shifts and money near every threshold: wages, arrivals on
    time and late, absences, firings, both evictions, deaths, spiked prices, closed affordances
    and chats at a gathering."""
    tally: Counter = Counter()
    for seed in range(4):
        policy = social_seeking(chat_rate=0.4, interact_rate=0.6)
        tally += drive("L5_town", 400 + seed, apt=6, towns=2, ticks=48, policy=policy, crowd=seed % 2 == 0)
    for what in (
        "wages",
        "on_time",
        "late",
        "absent",
        "fired",
        "evicted_broke",
        "evicted_fired",
        "priced_use",
        "closed_here",
        "gathering_chat",
        "unemployed",
        "chat_success",
        "queue_joins",
        "used",
    ):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"


@settings(max_examples=max(settings().max_examples // 4, 3))
@given(seed=st.integers(0, 2**31 - 1), apt=st.sampled_from([2, 3, 6]), towns=st.integers(1, 2))
def test_economy_level_matches_reference_in_random_play(seed: int, apt: int, towns: int) -> None:
    drive("L5_town", seed, apt, towns, ticks=40, policy=social_seeking(chat_rate=0.3, interact_rate=0.3))

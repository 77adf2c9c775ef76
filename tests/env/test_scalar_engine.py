"""The scalar engine (`core.scalar`, what gym.make and PettingZoo step) against the tensor core.

Two towns of one level start from the same state: one steps through the tensor core
(`Town.step`), the other through the scalar engine (`Town.step_scalar`). After every tick
everything must be equal bit for bit (the raw bytes of every float, so even a zero's sign):
executed actions, invalid flags, rewards, terminations, truncations, chat partners and success,
reward terms, observations, masks and the whole state. Play is random, and crowded: agents start
together on one affordance, one part-way through a use, at random clocks, some nearly spent, so
contention, queues, ghost steps, handovers, chats that fail and deaths all happen.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet_env import builtin_levels
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import CompiledLevel, compile_level
from townlet_env.core.outputs import StepOutput
from townlet_env.core.scalar_base import unsupported
from townlet_env.core.town import Town

LEVELS = builtin_levels()
SOCIAL = ("L4_social", "L5_town")


def test_the_engine_replays_every_built_in_level() -> None:
    """No built-in level falls back to the tensor core (the economy of L5_town included)."""
    assert [name for name in LEVELS if unsupported(compile_level(name)) is not None] == []


def same_bits(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> bool:
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    b = b.numpy() if isinstance(b, torch.Tensor) else b
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def floats(values: list[float]) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


def crowd(town: Town, rng: random.Random, frail: bool) -> None:
    """Every agent on one affordance (one part-way through a multi-tick use), random meters and
    clock, queue places and ties; with `frail`, all but the last agent nearly spent."""
    level, state = town.level, town.state
    k = town.agents_per_town
    meters = torch.tensor(
        [
            [rng.uniform(0.02 if bool(level.terminal[m]) else 0.0, 1.0) for m in range(level.n_meters)]
            for _ in range(k)
        ]
    )
    if frail:
        for slot in range(k - 1):
            for m in level.terminal.nonzero().flatten().tolist():
                meters[slot, m] = rng.uniform(0.005, 0.05)
    aff = rng.randrange(level.n_affordances)
    position = state.affordance_position[0, aff].long().expand(k, 2).clone()
    progress = torch.zeros(k, dtype=torch.long)
    if level.multi_tick and int(level.aff_ticks[aff]) > 1:
        progress[rng.randrange(k)] = rng.randrange(1, int(level.aff_ticks[aff]))
    clock = rng.choice([0, rng.randrange(level.max_steps), level.max_steps - rng.randint(1, 40)])
    changes = {
        "meters": meters,
        "position": position,
        "progress": progress,
        "clock": torch.tensor([clock]),
    }
    if level.social is not None:
        ties = torch.tensor([[rng.uniform(-0.3, 0.9) for _ in range(k)] for _ in range(k)])
        changes["trust"] = ties
        changes["familiarity"] = ties.abs().clamp(max=1.0)
        changes["rivalry"] = (ties.flip(0).abs() * 0.9).clamp(max=1.0)
        changes["queue_key"] = torch.tensor(
            [rng.choice([-1, -1, max(clock - rng.randint(0, 5), 0)]) for _ in range(k)]
        ).masked_fill((progress > 0) | ~state.alive, -1)  # not part-way through a use, nor dead
    if level.economy is not None:
        tensors = {name: value.clone() for name, value in state.replace(**changes).tensors().items()}
        scramble_economy(town, tensors, rng)
        changes = tensors
    town.set_state(state.replace(**changes))


def scramble_economy(town: Town, tensors: dict, rng: random.Random) -> None:
    """Events on at random (some ending within a few ticks, some cooled down), work columns next
    to every threshold (shifts half done, absences and firings one short, money spent and the
    broke count one short of an eviction, agents fired a while ago), and half the agents on their
    employer's place or an event's target (in half the runs), so that wages, arrivals, absences, firings,
    evictions, spiked prices, outages and gatherings all happen."""
    tables = town.level.economy
    assert tables is not None
    spec = tables.spec
    clock = int(tensors["clock"][0])
    for e in range(tables.n_events):
        if rng.random() < 0.4:
            tensors["event_clock"][0, e, 0] = clock + rng.randint(0, 6)
            tensors["event_value"][0, e] = rng.uniform(0.5, 2.0)
        tensors["event_clock"][0, e, 1] = clock + rng.choice([0, 0, 5])
    money = town.level.meter_names.index(spec.money)
    on = [e for e in range(tables.n_events) if int(tensors["event_clock"][0, e, 0]) > clock]
    move = rng.random() < 0.5  # else the crowd stays together (queues, ghost steps, handovers)
    for slot in range(town.num_slots):
        work = tensors["work"][slot]
        work[1] = rng.choice([0, 0, 1, 2])
        work[2] = rng.randrange(1 << spec.jobs.absence_window)
        work[3] = rng.choice([0, 0, max(clock - 3, 0), clock + rng.randint(0, 5)])
        work[4] = rng.randint(0, max(spec.lifecycle.evict_firings - 1, 0))
        if rng.random() < 0.3:
            tensors["meters"][slot, money] = rng.choice([0.0, 0.0, 0.01])
            work[5] = rng.randint(0, max(spec.lifecycle.evict_broke_ticks, 1))
        if move and rng.random() < 0.5 and not tensors["progress"][slot]:
            place = int(tables.place[int(work[0])])
            if on and rng.random() < 0.5:
                place = rng.choice(tables.event_target[rng.choice(on)].nonzero().flatten().tolist())
            tensors["position"][slot] = tensors["affordance_position"][0, place]
            tensors["queue_key"][slot] = -1
            tensors["stall"][slot] = 0


def policy(rng: random.Random, mask: list[list[bool]], interact: int, chat: int, eager: float) -> list[int]:
    """Anything legal; INTERACT and CHAT more often than that with `eager`; now and then a
    masked action (which must run as WAIT)."""
    actions = []
    for row in mask:
        if rng.random() < 0.05:
            actions.append(rng.randrange(len(row)))
        elif chat >= 0 and row[chat] and rng.random() < eager:
            actions.append(chat)
        elif interact >= 0 and rng.random() < eager:
            actions.append(interact)
        else:
            actions.append(rng.choice([a for a, ok in enumerate(row) if ok]))
    return actions


def lockstep(level: str, k: int, seed: int, ticks: int, crowded: bool, frail: bool = False) -> Counter:
    tensor = Town(level, k, k, autoreset=False)
    scalar = Town(level, k, k, autoreset=False, scalar=True)
    rng = random.Random(seed)
    difficulty = torch.tensor([rng.uniform(0.0, 1.5) for _ in range(k)])
    for town in (tensor, scalar):
        town.set_difficulty(difficulty)
        town.reset(seed)
    if crowded:
        crowd(tensor, rng, frail)
        scalar.set_state(tensor.state)
    lv = tensor.level
    chat = -1 if lv.social is None else lv.social.chat_action
    out = np.zeros((k, lv.layout.size), dtype=np.float32)
    mask = tensor.observe().mask
    tally: Counter = Counter()
    for tick in range(ticks):
        where = f"{level} k={k} seed={seed} tick={tick}"
        actions = policy(rng, mask.tolist(), lv.interact_action, chat, 0.5 if crowded else 0.1)
        want = tensor.step(torch.tensor(actions))
        got = scalar.step_scalar(actions)
        mask = want.mask
        assert got.executed == want.executed.tolist(), where
        assert got.invalid == want.invalid_action.tolist(), where
        assert got.terminated == want.terminated.tolist(), where
        assert got.truncated == want.truncated.tolist(), where
        assert floats(got.reward) == want.reward.numpy().tobytes(), (where, got.reward, want.reward)
        if lv.social is not None:
            assert want.chat_partner is not None and want.chat_success is not None
            assert got.chat_partner == want.chat_partner.tolist(), where
            assert got.chat_success == want.chat_success.tolist(), where
            assert sorted(got.reward_terms) == sorted(want.reward_terms), where
            for name, values in want.reward_terms.items():
                assert floats(got.reward_terms[name]) == values.numpy().tobytes(), (where, name)
            phase = scalar.engine.social.last  # type: ignore[union-attr]
            tally["ghost_steps"] += phase.ghosts
            tally["handovers"] += phase.handovers
            tally["chats"] += sum(p >= 0 for p in got.chat_partner)
            tally["chat_failures"] += sum(
                p >= 0 and not s for p, s in zip(got.chat_partner, got.chat_success, strict=True)
            )
        assert same_bits(scalar.engine.observe(out), want.obs), (
            where,
            np.argwhere(out != want.obs.numpy())[:4],
        )
        assert scalar.engine.mask() == want.mask.tolist(), where
        assert sorted(got.economy) == sorted(want.economy), where
        for name, values in want.economy.items():
            if values.dtype == torch.float32:
                assert floats(got.economy[name]) == values.numpy().tobytes(), (where, name)
            else:
                assert got.economy[name] == values.tolist(), (where, name)
        if lv.economy is not None:
            tally += economy_tally(lv, tensor, want)
        before = scalar.engine.meters
        for name, value in tensor.state.tensors().items():
            assert same_bits(getattr(scalar.state, name), value), (where, name)
        assert scalar.engine.meters is before, "reading the state leaves the engine running"
        tally["deaths"] += sum(got.terminated)
        tally["invalid"] += sum(got.invalid)
        tally["uses"] += sum(a == lv.interact_action for a in got.executed)
        if lv.social is not None:
            queue = tensor.state.queue_key
            tally["queued"] += int((queue >= 0).sum())
            tally["ties_moved"] += int((tensor.state.rivalry > 0.3).sum())
        if any(got.truncated) or not any(tensor.state.alive.tolist()):
            break
    return tally


def economy_tally(level: CompiledLevel, town: Town, out: StepOutput) -> Counter:
    """What the economy did this tick (from the tensor town)."""
    tables = level.economy
    assert tables is not None
    tally: Counter = Counter()
    for code in out.economy["exit_reason"].tolist():
        tally[tables.exit_reasons[code]] += code > 0
    tally["wages"] += int((out.economy["wage"] > 0).sum())
    for name in ("arrived_on_time", "arrived_late", "absent", "fired"):
        tally[name] += int(out.economy[name].sum())
    info = town.economy_info()
    tally["unemployed"] += int((~info["employed"]).sum())
    for e, name in enumerate(tables.event_names):
        tally[name] += int(info["events"][0, e])
    tally["ledger_moved"] += int((town.state.ledger != 0).sum())
    state = town.state
    morning = int(state.clock[0]) % 24 == 0 and bool(state.alive.any())
    tally["nights"] += morning and tables.spec.lifecycle.nightly_reset is not None
    return tally


@pytest.mark.parametrize("level", LEVELS)
@settings(max_examples=max(settings().max_examples // 4, 3), deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.sampled_from([1, 2, 3, 6]))
def test_scalar_engine_equals_the_core_in_random_play(level: str, seed: int, k: int) -> None:
    lockstep(level, k, seed, ticks=60, crowded=False)


@pytest.mark.parametrize("level", LEVELS)
def test_scalar_engine_equals_the_core_in_crowded_play(level: str) -> None:
    tally: Counter = Counter()
    for seed in range(8 if level == "L5_town" else 4):  # the economy moves half the crowd away
        k = 6 if level in SOCIAL else 3
        tally += lockstep(level, k, seed, ticks=80, crowded=True, frail=seed % 2 == 1)
    for what in ("deaths", "invalid", "uses"):
        assert tally[what] > 0, f"no {what} in {dict(tally)}"
    if level in SOCIAL:
        for what in ("chats", "chat_failures", "queued", "ties_moved", "ghost_steps", "handovers"):
            assert tally[what] > 0, f"no {what} in {dict(tally)}"
    if level == "L5_town":
        for what in ECONOMY_EVENTS:
            assert tally[what] > 0, f"no {what} in {dict(tally)}"


ECONOMY_EVENTS = (
    "wages",
    "arrived_on_time",
    "arrived_late",
    "absent",
    "fired",
    "unemployed",
    "evicted_broke",
    "evicted_fired",
    "ledger_moved",
    "food_price_spike",
    "water_outage",
    "park_gathering",
)


def test_scalar_engine_equals_the_core_with_walls_hours_and_clipped_rewards(tmp_path: Path) -> None:
    """Rules no built-in level combines: walls, opening hours with instant uses, a wide window,
    a clipped weighted-sum reward."""
    pack = tmp_path / "variant"
    shutil.copytree(BUILTIN_DIR / "L2_partial_observability", pack)
    changes = {
        "world.yaml": {"walls": [[2, 2], [2, 3], [2, 4], [5, 5], [6, 5], [3, 6], [0, 7]], "day_cycle": True},
        "observation.yaml": {"window": 7, "reserve": []},
        "reward.yaml": {
            "reward": {
                "kind": "weighted_sum",
                "base": 0.2,
                "centre": 0.5,
                "weights": {"energy": 1.0, "mood": -0.5, "health": 0.25},
                "clip": [0.0, 0.5],
            }
        },
    }
    for file, fields in changes.items():
        data = yaml.safe_load((pack / file).read_text())
        data.update(fields)
        (pack / file).write_text(yaml.safe_dump(data))
    tally: Counter = Counter()
    for seed in range(3):
        tally += lockstep(str(pack), 3, seed, ticks=80, crowded=True, frail=seed == 1)
    assert tally["deaths"] > 0 and tally["uses"] > 0, dict(tally)


@pytest.mark.parametrize(("level", "k"), [("L3_temporal_mechanics", 2), ("L5_town", 6)])
def test_a_scalar_town_hands_over_to_the_tensor_path_and_back(level: str, k: int) -> None:
    """Mixed use stays exact: a scalar step, a tensor step, a state set in between (on L5 the
    scheduler's draws too: both paths draw from the same generator)."""
    a = Town(level, k, k, autoreset=False)
    b = Town(level, k, k, autoreset=False, scalar=True)
    a.reset(3)
    b.reset(3)
    rng = random.Random(0)
    chat = -1 if a.level.social is None else a.level.social.chat_action
    for tick in range(40):
        actions = policy(rng, a.observe().mask.tolist(), a.level.interact_action, chat, 0.3)
        a.step(torch.tensor(actions))
        if tick % 3 == 0:
            b.step(torch.tensor(actions))
        else:
            b.step_scalar(actions)
        if tick == 20:
            a.set_difficulty(0.5)
            b.set_difficulty(0.5)
        for name, value in a.state.tensors().items():
            assert same_bits(getattr(b.state, name), value), (tick, name)


def test_the_scalar_engine_runs_one_town_on_the_cpu_without_autoreset() -> None:
    with pytest.raises(ValueError, match="one town"):
        Town("L0_minimal", 2, 1, autoreset=False, scalar=True)
    with pytest.raises(ValueError, match="one town"):
        Town("L0_minimal", 1, 1, scalar=True)
    with pytest.raises(RuntimeError, match="scalar=True"):
        _ = Town("L0_minimal", 1, 1).engine


def test_a_level_the_engine_cannot_replay_runs_on_the_tensor_core(tmp_path: Path) -> None:
    """Three cascades onto one meter in one stage sum in the BLAS library's order: the engine
    refuses such a level with a one-line notice, and gym.make's env steps it with the tensor
    core instead, with the same results as a tensor town."""
    import gymnasium as gym

    import townlet_env  # noqa: F401  (registers Townlet-v0)

    pack = tmp_path / "three_onto_energy"
    shutil.copytree(BUILTIN_DIR / "L1_full_observability", pack)
    cascades = yaml.safe_load((pack / "cascades.yaml").read_text())
    cascades["groups"][0]["cascades"].append({"source": "hygiene", "target": "energy", "strength": 0.002})
    (pack / "cascades.yaml").write_text(yaml.safe_dump(cascades))
    with pytest.warns(UserWarning, match="cannot replay"):
        env = gym.make("Townlet-v0", level=str(pack))
    tensor = Town(str(pack), 1, 1, autoreset=False)
    obs, info = env.reset(seed=4)
    rng = random.Random(0)
    tensor.set_state(env.unwrapped.town.state)  # type: ignore[attr-defined]
    for _ in range(50):
        action = rng.choice([a for a, ok in enumerate(info["action_mask"].tolist()) if ok])
        obs, reward, terminated, truncated, info = env.step(action)
        want = tensor.step(torch.tensor([action]))
        assert same_bits(obs, want.obs[0]) and reward == float(want.reward[0])
        if terminated or truncated:
            break


def test_a_mechanic_the_engine_does_not_know_is_never_stepped_by_it() -> None:
    """A new mechanic adds a compiled table or state tensors: until it joins the engine, a level
    that uses it runs on the tensor core, and a state that carries it is refused."""
    import dataclasses

    from townlet_env.core import CompiledLevel, TownState
    from townlet_env.core.scalar_base import unknown_state

    level = compile_level("L1_full_observability")
    extended = dataclasses.make_dataclass(
        "Extended", [("plague", object, None)], bases=(CompiledLevel,), frozen=True
    )
    tables = {f.name: getattr(level, f.name) for f in dataclasses.fields(level)}
    assert "plague" in (unsupported(extended(**tables, plague=object())) or "")
    assert unsupported(extended(**tables)) is None
    state_type = dataclasses.make_dataclass(
        "State", [("wallet", torch.Tensor)], bases=(TownState,), frozen=True
    )
    town = Town(level, 1, 1, autoreset=False, scalar=True)
    town.reset(0)
    assert unknown_state(state_type(**town.state.tensors(), wallet=torch.ones(1))) == ["wallet"]
    assert unknown_state(state_type(**town.state.tensors(), wallet=torch.zeros(1, 0))) == []
    with pytest.raises(RuntimeError, match="wallet"):
        town.engine.load(state_type(**town.state.tensors(), wallet=torch.ones(1)))  # type: ignore[union-attr]

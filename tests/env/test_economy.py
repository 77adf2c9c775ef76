"""The economy of L5_town (docs/economy.md): properties on random play, the scheduler and the
arrivals against the plain-Python reference, hand-made scenes, the strict config and the reward
terms. The tick-by-tick comparison with the reference is in test_differential.py."""

from __future__ import annotations

import functools
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet_env import ConfigError, Town, TownletVectorEnv, load_level
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import affordance_at, economy, events, lifecycle
from townlet_env.core.economy import EMPLOYER, END, REHIRE_AT, VACANT
from townlet_env.testing import reference_economy as ref_economy
from townlet_env.testing.reference import from_tensor_state

LEVEL = "L5_town"
K = 6


@functools.cache
def config(level: str = LEVEL):  # type: ignore[no-untyped-def]
    return load_level(level)


def random_actions(rng: random.Random, mask: torch.Tensor) -> torch.Tensor:
    return torch.tensor([rng.choice([a for a, ok in enumerate(row) if ok]) for row in mask.tolist()])


def play(town: Town, rng: random.Random, ticks: int, check) -> Counter:  # type: ignore[no-untyped-def]
    """Random legal play; `check(before_state, out, after_state, tally)` after every tick."""
    tally: Counter = Counter()
    mask = town.observe().mask
    for _ in range(ticks):
        before = town.state
        out = town.step(random_actions(rng, mask))
        check(before, out, town.state, tally)
        mask = out.mask
    return tally


# --- properties on random play -------------------------------------------------------------------


@settings(max_examples=max(settings().max_examples // 8, 3), deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_wages_only_on_site_during_a_shift(seed: int) -> None:
    t = Town(LEVEL, 4 * K)
    t.reset(seed=seed)
    tables = t.level.economy
    assert tables is not None

    def check(before, out, after, tally) -> None:  # type: ignore[no-untyped-def]
        wage = out.economy["wage"]
        hour = before.per_slot(before.clock) % 24
        employer = before.work[:, EMPLOYER]
        aff = affordance_at(t.level, before)  # the state before the tick is what counts
        place = tables.place[employer]
        shift = (hour >= tables.shift_start[employer]) & (hour < tables.shift_end[employer])
        hired = before.per_slot(before.clock) >= before.work[:, REHIRE_AT]
        paid = wage > 0
        assert bool((~paid | (before.alive & (aff == place) & shift & hired)).all())
        assert torch.equal(wage[paid], tables.wage[employer][paid])
        tally["paid"] += int(paid.sum())

    # agents walk at random: put everyone on its workplace now and then so that wages happen
    tally = Counter()
    rng = random.Random(seed)
    for _ in range(4):
        s = t.state
        place = tables.place[s.work[:, EMPLOYER]]
        xy = s.affordance_position[s.town, place].long()
        t.set_state(
            s.replace(
                position=torch.where(s.alive[:, None], xy, s.position),
                progress=s.progress * 0,
                queue_key=torch.full_like(s.queue_key, -1),
                stall=s.stall * 0,
            )
        )
        tally += play(t, rng, 24, check)
    assert tally["paid"] > 0


def quiet_town(slots: int, seed: int) -> Town:
    """A town whose scheduler starts nothing by itself (every event on a long cooldown), so that
    only triggered events run."""
    t = Town(LEVEL, slots)
    t.reset(seed=seed)
    s = t.state
    ev = s.event_clock.clone()
    ev[..., 1] = 10_000
    t.set_state(s.replace(event_clock=ev))
    return t


def test_an_events_effect_ends_when_the_event_ends() -> None:
    t = quiet_town(2 * K, 1)
    tables = t.level.economy
    assert tables is not None
    meal = t.level.affordance_names.index("HomeMeal")
    shower = t.level.affordance_names.index("Shower")
    t.trigger_event(0, "food_price_spike", duration=3, value=1.5)
    t.trigger_event(0, "water_outage", duration=2)
    rng = random.Random(0)
    seen = []
    for _ in range(5):
        mkt = economy.market(tables, t.state, torch.full((t.num_slots,), -1))
        seen.append((float(mkt.price[0, meal]), bool(mkt.closed[0, shower]), float(mkt.price[1, meal])))
        t.step(random_actions(rng, t.observe().mask))
    assert [p for p, _, _ in seen] == pytest.approx([1.5, 1.5, 1.5, 1.0, 1.0])
    assert [c for _, c, _ in seen] == [True, True, False, False, False]
    assert [p for _, _, p in seen] == [1.0] * 5, "the other town never had the spike"


def test_a_closed_affordance_serves_no_one() -> None:
    t = quiet_town(2 * K, 2)
    shower = t.level.affordance_names.index("Shower")
    s = t.state
    xy = s.affordance_position[s.town, shower].long()
    t.set_state(s.replace(position=xy))  # every agent on its town's Shower
    interact = t.level.interact_action
    t.step(torch.full((t.num_slots,), interact))  # the holders start a use, the others queue
    town0 = torch.arange(t.num_slots) < K
    assert bool((t.state.progress[town0] > 0).any()) and bool((t.state.queue_key[town0] >= 0).any())
    t.trigger_event(0, "water_outage", duration=4)
    assert not bool((t.state.progress[town0] > 0).any()), "the occupant is released"
    assert not bool((t.state.queue_key[town0] >= 0).any()), "the queue is dropped"
    served_elsewhere = 0
    for tick in range(4):  # closed for the four ticks from the trigger's
        out = t.step(torch.full((t.num_slots,), interact))
        assert not bool((t.state.progress[town0] > 0).any()), "no one is served"
        assert bool(out.mask[town0, interact].any()) == (tick == 3), "INTERACT is masked while closed"
        served_elsewhere += int((t.state.progress[~town0] > 0).sum())
    assert served_elsewhere > 0, "the Shower of the other town stays open"
    t.step(torch.full((t.num_slots,), interact))  # the outage is over: served again
    assert bool((t.state.progress[town0] > 0).any())


@settings(max_examples=max(settings().max_examples // 8, 3), deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cap=st.integers(1, 5), delay=st.integers(0, 3))
def test_the_population_never_exceeds_the_cap(tmp_path_factory, seed: int, cap: int, delay: int) -> None:  # type: ignore[no-untyped-def]
    pack = variant(
        tmp_path_factory.mktemp("cap"),
        {
            "lifecycle": {
                "population_cap": cap,
                "respawn_delay": delay,
                "evict_broke_ticks": 2,
                "evict_firings": 1,
            }
        },
    )
    t = Town(str(pack), 3 * K)
    t.reset(seed=seed)
    rng = random.Random(seed)

    def check(before, out, after, tally) -> None:  # type: ignore[no-untyped-def]
        living = after.alive.view(-1, K).sum(dim=1)
        assert int(living.max()) <= cap
        tally["exits"] += int(out.terminated.sum())
        arrived = after.alive & ~before.alive & (after.clock[after.town] > 0)
        # a newcomer takes a slot only after it has been empty for the delay (the tick it left
        # counts as 0, each later tick one more)
        left = out.terminated & arrived
        assert delay == 0 or not bool(left.any())
        assert bool((before.work[arrived & ~out.terminated, VACANT] + 1 >= delay).all())

    s = t.state
    money = t.level.meter_names.index("money")
    meters = s.meters.clone()
    meters[:, money] = 0.0  # broke at once: evictions start on the second tick
    t.set_state(s.replace(meters=meters))
    tally = play(t, rng, 30, check)
    assert tally["exits"] > 0


def test_same_seed_same_schedule_and_play() -> None:
    def run(seed: int) -> list[torch.Tensor]:
        env = TownletVectorEnv(LEVEL, num_envs=4 * K)
        obs, info = env.reset(seed=seed)
        rng = torch.Generator().manual_seed(5)
        history = [obs]
        for _ in range(200):
            actions = torch.multinomial(info["action_mask"].float(), 1, generator=rng).squeeze(1)
            obs, reward, _, _, info = env.step(actions)
            history += [obs, reward, info["events"], info["exit_reason"], env.state.event_clock.clone()]
        return history

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    assert any(bool(h.any()) for h in a[3::5]), "events happened"


# --- the scheduler and the arrivals against the reference ---------------------------------------


@settings(max_examples=max(settings().max_examples // 4, 5), deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_scheduler_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    t = Town(LEVEL, 8 * 2, agents_per_town=2)
    t.reset(seed=seed)
    s = t.state
    clock = torch.tensor([rng.randrange(400) for _ in range(s.num_towns)])
    ev = s.event_clock.clone()
    for town in range(s.num_towns):
        for e in range(ev.shape[1]):
            ev[town, e, END] = int(clock[town]) + rng.choice([-5, 0, 0, 3])
            ev[town, e, 1] = int(clock[town]) + rng.choice([-3, 0, 0, 2])
    s = s.replace(clock=clock, event_clock=ev.clamp(min=0))
    u = torch.rand(s.num_towns, ev.shape[1], 3, generator=torch.Generator().manual_seed(seed))
    u[..., 0] *= rng.choice([1.0, 0.05])  # often every event wants to start: the cap decides
    core = events.schedule(t.level, s, u)
    ref = from_tensor_state(config(), s)
    ref_economy.schedule(config(), ref, u.tolist())
    for town, rt in enumerate(ref.towns):
        assert core.event_clock[town, :, END].tolist() == rt.event_end
        assert core.event_clock[town, :, 1].tolist() == rt.event_ready
        assert core.event_value[town].tolist() == pytest.approx(rt.event_value, abs=1e-6)
    for slot, agent in enumerate(ref.agents):
        assert int(core.progress[slot]) == agent.progress and int(core.queue_key[slot]) == agent.queue_key


@settings(max_examples=max(settings().max_examples // 4, 5), deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cap=st.integers(1, 6), delay=st.integers(0, 3))
def test_arrivals_match_reference(seed: int, cap: int, delay: int) -> None:
    rng = random.Random(seed)
    t = Town(LEVEL, 4 * K)
    t.reset(seed=seed)
    tables = t.level.economy
    assert tables is not None
    spec = tables.spec.model_copy(
        update={
            "lifecycle": tables.spec.lifecycle.model_copy(
                update={"population_cap": cap, "respawn_delay": delay}
            )
        }
    )
    import dataclasses

    tables = dataclasses.replace(tables, spec=spec)
    s = t.state
    alive = torch.tensor([rng.random() < 0.5 for _ in range(s.num_slots)])
    work = s.work.clone()
    work[:, VACANT] = torch.tensor([rng.randrange(5) for _ in range(s.num_slots)])
    s = s.replace(alive=alive, work=work)
    ended = torch.tensor([rng.random() < 0.2 for _ in range(s.num_towns)])
    got = lifecycle.arrivals(tables, s, ended).tolist()
    cfg = dataclasses.replace(config(), economy=spec)
    want = ref_economy.arrivals(cfg, from_tensor_state(cfg, s), set(ended.nonzero().flatten().tolist()))
    assert got == want


# --- hand-made scenes ------------------------------------------------------------------------------


def test_a_shift_on_time_late_and_absent_and_a_firing() -> None:
    t = quiet_town(K, 0)
    tables = t.level.economy
    assert tables is not None
    spec = tables.spec.jobs
    s = t.state
    work = s.work.clone()
    work[:, EMPLOYER] = 0  # everyone at the Job, shift 9-17
    work[:, 2] = 0b11  # two absences already
    start, end = spec.employers[0].shift
    site = s.affordance_position[0, tables.place[0]].long()
    position = s.position.clone()
    position[0] = site
    t.set_state(s.replace(clock=torch.tensor([start]), position=position, work=work))
    wait = torch.full((K,), t.level.wait_action)
    money = t.level.meter_names.index("money")

    out = t.step(wait)  # hour 9: slot 0 on site, on time
    assert out.economy["arrived_on_time"].tolist() == [True] + [False] * 5
    assert float(out.economy["wage"][0]) == pytest.approx(spec.employers[0].wage)
    assert float(out.economy["wage"][1:].abs().sum()) == 0.0
    assert float(out.reward_terms["punctuality"][0]) == pytest.approx(0.1)

    s = t.state
    position = s.position.clone()
    position[1] = site
    before = float(s.meters[1, money])
    t.set_state(s.replace(position=position))
    out = t.step(wait)  # hour 10: slot 1 arrives late, docked, and paid for the tick
    assert bool(out.economy["arrived_late"][1]) and not bool(out.economy["arrived_on_time"][1])
    assert float(t.state.meters[1, money]) == pytest.approx(
        before + spec.employers[0].wage - spec.late_penalty
    )
    assert float(out.reward_terms["punctuality"][1]) == pytest.approx(-0.05)

    s = t.state
    t.set_state(s.replace(clock=torch.tensor([end - 1])))
    out = t.step(wait)  # the shift's last hour: slots 2-5 never came: absent, third absence, fired
    assert out.economy["absent"].tolist() == [False, False, True, True, True, True]
    assert out.economy["fired"].tolist() == [False, False, True, True, True, True]
    assert t.state.work[2:, REHIRE_AT].tolist() == [end + spec.rehire_cooldown] * 4
    assert t.economy_info()["employed"].tolist() == [True, True, False, False, False, False]
    assert float(out.reward_terms["punctuality"][2]) == pytest.approx(-0.2)
    assert t.state.work[:, 1].tolist() == [0] * 6, "a new shift starts with no one arrived"


def test_eviction_when_broke_for_too_long_and_its_exit_reason() -> None:
    env = TownletVectorEnv(LEVEL, num_envs=K)
    env.reset(seed=0)
    s = env.state
    money = env.level.meter_names.index("money")
    meters = s.meters.clone()
    meters[0, money] = 0.0
    work = s.work.clone()
    work[0, economy.BROKE] = 23  # one tick short of L5's 24
    env.town.set_state(s.replace(meters=meters, work=work))
    _, reward, terminated, _, info = env.step(torch.full((K,), env.level.wait_action))
    assert bool(terminated[0]) and env.exit_reasons[int(info["exit_reason"][0])] == "evicted_broke"
    assert float(info["reward_terms"]["terminal"][0]) == -1.0 and float(reward[0]) == -1.0
    assert int(info["exit_reason"][1:].abs().sum()) == 0
    assert bool(env.state.alive[0]), "a newcomer took the slot (respawn delay 0)"


def test_trigger_and_cancel_an_event() -> None:
    t = Town(LEVEL, K)
    t.reset(seed=0)
    e = t.event_names.index("rent_spike")
    t.trigger_event(0, "rent_spike", duration=5, value=1.7)
    assert int(t.state.event_clock[0, e, END]) == int(t.state.clock[0]) + 5
    assert bool(t.economy_info()["events"][:, e].all())
    bed = t.level.affordance_names.index("Bed")
    mkt = economy.market(t.level.economy, t.state, torch.full((K,), bed))  # type: ignore[arg-type]
    assert float(mkt.price_here[0]) == pytest.approx(1.7)
    t.cancel_event(0, "rent_spike")
    assert not bool(t.economy_info()["events"][:, e].any())
    with pytest.raises(ValueError, match="unknown event 'fire'"):
        t.trigger_event(0, "fire")
    with pytest.raises(ValueError, match="town 3"):
        t.cancel_event(3, "rent_spike")


def test_info_and_names() -> None:
    env = TownletVectorEnv(LEVEL, num_envs=2 * K)
    _, info = env.reset(seed=0)
    assert env.event_names == [e.name for e in config().economy.events.catalogue]  # type: ignore[union-attr]
    assert env.exit_reasons[0] == "none" and "evicted_fired" in env.exit_reasons
    assert info["events"].shape == (2 * K, len(env.event_names)) and info["events"].dtype == torch.bool
    assert info["exit_reason"].shape == (2 * K,) and info["exit_reason"].dtype == torch.long
    _, _, _, _, info = env.step(torch.full((2 * K,), env.level.wait_action))
    assert set(info["reward_terms"]) == {"needs", "survival", "chat", "wage", "punctuality", "terminal"}
    assert info["exit_reason"].dtype == torch.long


def test_state_round_trips_with_the_economy() -> None:
    a = TownletVectorEnv(LEVEL, num_envs=2 * K)
    a.reset(seed=0)
    a.town.trigger_event(1, "power_outage")
    saved = a.state_dict()
    b = TownletVectorEnv(LEVEL, num_envs=2 * K)
    b.load_state_dict(saved)
    actions = torch.full((2 * K,), a.level.wait_action)
    for _ in range(30):
        oa, ra, *_ = a.step(actions)
        ob, rb, *_ = b.step(actions)
        assert torch.equal(oa, ob) and torch.equal(ra, rb)


# --- the reward terms --------------------------------------------------------------------------


def test_every_term_moves_the_reward_inside_its_clip_at_typical_meters() -> None:
    """The earlier Townlet's needs penalty saturated its clip. Here, at meters of 0.5 and the
    largest value each term takes in one tick, the sum stays strictly inside the per-tick clip
    with each term on its own and with all of them at once (a terminal tick stands alone)."""
    cfg = config()
    social, econ = cfg.social, cfg.economy
    assert social is not None and econ is not None
    low, high = social.reward.clip
    needs = 0.5 * 0.5 * (social.reward.needs or 0.0)  # energy x health at 0.5
    chat = social.reward.chat
    assert chat is not None
    typical = {
        "needs": needs,
        "survival": social.reward.survival or 0.0,
        "chat": 2 * (chat.base + 0.5 * chat.trust + 0.5 * chat.familiarity),  # two chats, ties 0.5
        "wage": (econ.reward.wage or 0.0) * max(j.wage for j in econ.jobs.employers),
        "punctuality": (econ.reward.punctuality.on_time if econ.reward.punctuality else 0.0),
    }
    worst = {"punctuality": -(econ.reward.punctuality.absent if econ.reward.punctuality else 0.0)}
    base = needs
    for name, value in {**typical, **{f"{k}_worst": v for k, v in worst.items()}}.items():
        assert value != 0.0, f"term {name} cannot move the reward"
        total = base + value if name != "needs" else value
        assert low < total < high, f"term {name} saturates the clip"
    assert low < sum(typical.values()) < high
    for reason, penalty in econ.reward.terminal.items():
        assert low <= penalty < 0, f"terminal {reason} is outside the clip"
    # the episode clip bounds a runaway return, not an ordinary life: a whole episode of typical
    # ticks stays inside it
    lo, hi = econ.reward.episode_clip
    assert lo < min(econ.reward.terminal.values()) and sum(typical.values()) * cfg.world.max_steps < hi


# --- the strict config -------------------------------------------------------------------------


def variant(root: Path, changes: dict) -> Path:
    pack = root / "economy_pack"
    if pack.exists():
        shutil.rmtree(pack)
    shutil.copytree(BUILTIN_DIR / LEVEL, pack)
    data = yaml.safe_load((pack / "economy.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    (pack / "economy.yaml").write_text(yaml.safe_dump(data))
    return pack


def _set(pack: Path, path: list, value: object) -> None:
    data = yaml.safe_load((pack / "economy.yaml").read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (pack / "economy.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["events", "catalogue", 0, "targets", 1], "Fridge", r"targets\[1\]: unknown affordance 'Fridge'"),
        (["events", "catalogue", 2, "targets"], ["Showr"], "did you mean 'Shower'"),
        (["jobs", "employers", 0, "place"], "Office", r"employers\[0\]\.place: unknown affordance"),
        (["jobs", "employers", 0, "shift"], [17, 9], "low < high"),
        (["jobs", "employers", 0, "wage"], "0.02", "valid number"),
        (["jobs", "absences_to_fire"], 9, "cannot exceed absence_window"),
        (["events", "catalogue", 0, "kind"], "tornado", "price_spike"),
        (["events", "catalogue", 0, "multiplier"], [1.8, 1.2], "low <= high"),
        (["events", "catalogue", 1, "name"], "food_price_spike", "duplicate event name"),
        (["reward", "terminal", "death_by_boredom"], -1.0, "unknown exit reason"),
        (["lifecycle", "nightly_reset"], {"meters": {"hunger": [0.5, 1.0]}}, "unknown meter 'hunger'"),
        (["prices"], {"Bedd": 1.1}, r"prices\.Bedd: unknown affordance"),
        (["lifecycle", "population_cap"], 0, r"population_cap: 0 is out of range \(allowed: 1 <="),
        (["salary"], 1, "salary"),
    ],
)
def test_bad_economy_settings_are_refused(tmp_path: Path, path: list, value: object, message: str) -> None:
    pack = variant(tmp_path, {})
    _set(pack, path, value)
    with pytest.raises(ConfigError, match=message) as caught:
        load_level(pack)
    assert "\n" not in str(caught.value), "one line"


def test_an_economy_needs_the_social_layer(tmp_path: Path) -> None:
    pack = variant(tmp_path, {})
    (pack / "social.yaml").unlink()
    (pack / "actions.yaml").write_text((BUILTIN_DIR / "L3_temporal_mechanics" / "actions.yaml").read_text())
    with pytest.raises(ConfigError, match=r"economy\.yaml: an economy needs the social layer"):
        load_level(pack)


def test_gym_make_runs_the_town() -> None:
    import gymnasium as gym

    env = gym.make("Townlet-v0", level=LEVEL)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    for _ in range(30):
        _, _, terminated, truncated, _ = env.step(int(env.unwrapped.town.level.wait_action))
        if terminated or truncated:
            break
    vec = gym.make_vec("Townlet-v0", num_envs=2 * K, level=LEVEL)
    vec.reset(seed=0)
    _, _, _, _, info = vec.step(torch.full((2 * K,), vec.unwrapped.level.wait_action))
    assert info["events"].shape == (2 * K, 5) and info["exit_reason"].shape == (2 * K,)


def test_view_carries_ties_jobs_and_events() -> None:
    t = Town(LEVEL, 3 * K)
    t.reset(seed=0)
    t.trigger_event(2, "park_gathering", duration=3)
    view = t.view([0, 2])
    assert view.trust is not None and view.trust.shape == (2, K, K)
    assert view.employer is not None and view.employer.shape == (2, K)
    assert view.employed is not None and bool(view.employed.all())
    assert view.events is not None and view.events.shape == (2, 5)
    e = t.event_names.index("park_gathering")
    assert bool(view.events[1, e]) and not bool(view.events[0, e])
    view.trust.add_(1.0)  # a copy: the town is untouched
    assert float(t.state.trust.abs().sum()) == 0.0
    plain = Town("L1_full_observability", 2)
    plain.reset(seed=0)
    assert plain.view().trust is None and plain.view().events is None

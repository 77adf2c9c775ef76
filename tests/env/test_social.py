"""The social layer of L4_social (docs/social.md): properties on random play, hand-made scenes of
each rule, the strict config and the state's persistence. The tick-by-tick comparison with the
plain-Python reference is in test_differential.py."""

from __future__ import annotations

import functools
import random
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet_env import ConfigError, Town, TownletVectorEnv, load_level
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import (
    CompiledLevel,
    TownState,
    action_mask,
    affordance_at,
    observe,
    step,
)
from townlet_env.core.pairs import Pairs

LEVEL = "L4_social"
K = 6


@functools.cache
def town(num_towns: int) -> Town:
    return Town(LEVEL, num_towns * K)


def social_actions(rng: random.Random, mask: torch.Tensor, chat: int, interact: int) -> torch.Tensor:
    actions = []
    for row in mask.tolist():
        if row[chat] and rng.random() < 0.4:
            actions.append(chat)
        elif row[interact] and rng.random() < 0.5:
            actions.append(interact)
        else:
            actions.append(rng.choice([a for a, ok in enumerate(row) if ok]))
    return torch.tensor(actions)


def crowd(t: Town, rng: random.Random) -> None:
    """Every town's agents on one affordance, so queues form at once."""
    s = t.state
    position = s.position.clone()
    for town_index in range(s.num_towns):
        a = rng.randrange(t.level.n_affordances)
        position[town_index * K : (town_index + 1) * K] = s.affordance_position[town_index, a].long()
    t.set_state(s.replace(position=position))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), towns=st.integers(1, 3), crowded=st.booleans())
def test_social_invariants_in_random_play(seed: int, towns: int, crowded: bool) -> None:
    t = town(towns)
    now = t.reset(seed=seed)
    rng = random.Random(seed)
    if crowded:
        crowd(t, rng)
        now = t.observe()
    level = t.level
    chat = level.action_names.index("CHAT")
    for _ in range(60):
        before = t.state
        actions = social_actions(rng, now.mask, chat, level.interact_action)
        out = t.step(actions)
        after_tick, _ = step(level, before, actions)  # the tick before any autoreset
        _check_tick(level, before, after_tick, out.executed)
        _check_ranges(t.state)
        now = out


def _check_tick(level: CompiledLevel, before: TownState, after: TownState, executed: torch.Tensor) -> None:
    aff = affordance_at(level, before)
    served = (executed == level.interact_action) & (after.queue_key < 0) & before.alive
    bucket = before.town * level.n_affordances + aff
    counts = torch.bincount(bucket[served], minlength=before.num_towns * level.n_affordances)
    assert int(counts.max()) <= 1, "a queue served two agents at once"
    busy = after.progress > 0
    spots = after.town * level.n_affordances + affordance_at(level, after)
    occupied = torch.bincount(spots[busy], minlength=after.num_towns * level.n_affordances)
    assert int(occupied.max()) <= 1, "two agents part-way through uses of one affordance"
    assert not bool(((after.queue_key >= 0) & (after.progress > 0)).any()), "queued and using"
    assert not bool(((after.queue_key >= 0) & ~after.alive).any()), "the dead stay queued"
    joined = (executed == level.interact_action) & ~served & after.alive
    assert bool((after.queue_key[joined] >= 0).all()), "an INTERACT that was not a use must queue"


def _check_ranges(state: TownState) -> None:
    assert bool(((state.trust >= -1) & (state.trust <= 1)).all())
    for tie in (state.familiarity, state.rivalry, state.personality):
        assert bool(((tie >= 0) & (tie <= 1)).all())
    eye = torch.eye(K, dtype=torch.bool).repeat(state.num_towns, 1)
    for tie in (state.trust, state.familiarity, state.rivalry):
        assert bool(tie[eye].eq(0).all()), "an agent has a tie to itself"


def test_same_seed_same_social_history() -> None:
    runs = []
    for _ in range(2):
        env = TownletVectorEnv(LEVEL, num_envs=12)
        _, info = env.reset(seed=5)
        rng = random.Random(1)
        chat = env.action_names.index("CHAT")
        for _ in range(40):
            actions = social_actions(rng, info["action_mask"], chat, env.level.interact_action)
            _, _, _, _, info = env.step(actions)
        runs.append(env.state)
    for name, value in runs[0].tensors().items():
        assert torch.equal(value, getattr(runs[1], name)), name


# --- scenes ----------------------------------------------------------------------------------------


def scene(**edits: torch.Tensor) -> Town:
    """One town of six, all on one cell (agents 2-5 on the far corner, out of reach)."""
    t = Town(LEVEL, K, autoreset=False)
    t.reset(seed=0)
    s = t.state
    position = torch.tensor([[0, 0], [0, 0], [7, 7], [7, 7], [7, 7], [7, 7]])
    changes = {"position": position, "personality": torch.full((K, 3), 0.5)}
    changes.update(edits)
    t.set_state(s.replace(**changes))
    return t


def act(t: Town, **by_slot: int) -> object:
    wait = t.level.wait_action
    actions = [wait] * K
    for slot, action in by_slot.items():
        actions[int(slot[1:])] = t.level.action_names.index(action) if isinstance(action, str) else action
    return t.step(actions)


def test_a_successful_chat_is_symmetric_between_equal_personalities() -> None:
    t = scene()
    out = act(t, s0="CHAT")
    s = t.state
    assert int(out.chat_partner[0]) == 1 and bool(out.chat_success[0])
    assert float(s.trust[0, 1]) == float(s.trust[1, 0]) > 0
    assert float(s.familiarity[0, 1]) == float(s.familiarity[1, 0]) > 0
    social = t.level.meter_names.index("social")
    assert float(s.meters[0, social]) == float(s.meters[1, social])
    assert float(out.reward_terms["chat"][0]) == float(out.reward_terms["chat"][1]) > 0


def test_a_rival_refuses_and_only_the_speaker_is_hurt() -> None:
    rivalry = torch.zeros(K, K)
    rivalry[1, 0] = 0.9  # agent 1 cannot stand agent 0
    t = scene(rivalry=rivalry)
    out = act(t, s0="CHAT")
    s = t.state
    assert int(out.chat_partner[0]) == 1 and not bool(out.chat_success[0])
    assert float(s.rivalry[0, 1]) > 0 and float(s.familiarity[0, 1]) == 0
    assert float(s.trust[1, 0]) == 0 and float(out.reward_terms["chat"].abs().sum()) == 0


def test_the_partner_is_the_best_tie_then_the_lowest_slot() -> None:
    position = torch.tensor([[3, 3], [3, 3], [4, 3], [3, 4], [7, 7], [7, 7]])
    trust = torch.zeros(K, K)
    trust[0, 3] = 0.4
    t = scene(position=position, trust=trust)
    assert int(act(t, s0="CHAT").chat_partner[0]) == 3
    t = scene(position=position)
    assert int(act(t, s0="CHAT").chat_partner[0]) == 1


def test_chat_is_masked_without_a_neighbour() -> None:
    t = scene(position=torch.tensor([[0, 0], [2, 0], [7, 7], [7, 7], [7, 7], [5, 5]]))
    chat = t.level.action_names.index("CHAT")
    mask = t.observe().mask
    assert not bool(mask[0, chat]) and not bool(mask[1, chat]) and bool(mask[2, chat])


def _on_bed(t: Town, **edits: torch.Tensor) -> Town:
    bed = t.state.affordance_position[0, 0].long()
    position = torch.tensor([[7, 7]] * K)
    position[:3] = bed
    t.set_state(t.state.replace(position=position, **edits))
    return t


def test_queue_serves_in_order_and_an_occupant_hands_over() -> None:
    t = _on_bed(scene())
    act(t, s0="INTERACT", s1="INTERACT", s2="INTERACT")  # 0 starts, then 1 and 2 queue
    s = t.state
    assert int(s.progress[0]) == 1 and s.queue_key[:3].tolist() == [-1, 0, 0]
    assert t.social_info()["queue_position"][:3].tolist() == [-1, 0, 1]
    for _ in range(4):  # the Bed takes five ticks
        out = act(t, s0="INTERACT", s1="INTERACT", s2="INTERACT")
    assert int(t.state.progress[0]) == 0 and float(t.state.trust[0, 1]) > 0  # handover to 1
    act(t, s0="INTERACT", s1="INTERACT", s2="INTERACT")
    s = t.state
    assert int(s.progress[1]) == 1, "the first in line is served next"
    assert s.queue_key[:3].tolist()[2] == 0 and int(s.queue_key[0]) >= 0, "the old occupant queued"
    del out


def test_a_stalling_holder_is_sent_to_the_back() -> None:
    t = scene()
    meters = t.state.meters.clone()
    meters[0, t.level.meter_names.index("money")] = 0.0  # cannot pay for the Bed
    queue_key = torch.tensor([0, 1, -1, -1, -1, -1])  # 0 first in line, 1 behind it
    t = _on_bed(t, meters=meters, queue_key=queue_key)
    for _ in range(3):  # ticks 0, 1, 2: three stalls, released on tick 2
        act(t, s1="INTERACT")
    s = t.state
    assert int(s.queue_key[0]) == 2 and float(s.rivalry[1, 0]) > 0 and float(s.rivalry[0, 1]) > 0
    act(t, s1="INTERACT")
    assert int(t.state.progress[1]) == 1, "the one behind is served once the staller is gone"


def test_moving_leaves_the_queue() -> None:
    t = _on_bed(scene(), queue_key=torch.tensor([-1, 0, -1, -1, -1, -1]))
    act(t, s1="RIGHT" if int(t.state.position[1, 0]) < 7 else "LEFT")
    assert int(t.state.queue_key[1]) == -1


def test_a_newcomer_starts_with_neutral_ties_both_ways() -> None:
    t = Town(LEVEL, 2 * K)
    t.reset(seed=3)
    s = t.state
    meters = s.meters.clone()
    meters[2, t.level.meter_names.index("energy")] = 0.0001  # slot 2 dies this tick
    trust = torch.full_like(s.trust, 0.5)
    t.set_state(s.replace(meters=meters, trust=trust, familiarity=trust.clone(), rivalry=trust.clone()))
    before = t.state.personality.clone()
    out = t.step([t.level.wait_action] * (2 * K))
    assert bool(out.terminated[2])
    s = t.state
    for tie in (s.trust, s.familiarity, s.rivalry):
        assert bool(tie[2].eq(0).all()) and bool(tie[:K, 2].eq(0).all())
        assert float(tie[0, 1]) > 0.4 and float(tie[K, 2]) > 0.4  # other pairs keep theirs
    assert not torch.equal(s.personality[2], before[2]) and torch.equal(s.personality[3], before[3])


# --- env, info, persistence ------------------------------------------------------------------------


def test_info_carries_the_social_numbers() -> None:
    env = TownletVectorEnv(LEVEL, num_envs=12)
    assert env.agents_per_town == K
    _, info = env.reset(seed=0)
    for key in ("trust", "familiarity", "rivalry"):
        assert info[key].shape == (12, K)
    assert info["queue_position"].shape == (12,) and info["chat_partner"].eq(-1).all()
    _, reward, _, _, info = env.step(torch.full((12,), env.level.wait_action))
    total = sum(info["reward_terms"].values())
    assert set(info["reward_terms"]) == {"needs", "survival", "chat"}
    assert torch.allclose(reward, total.clamp(-1.0, 1.5))


def test_social_state_round_trips_and_old_saves_still_load() -> None:
    env = TownletVectorEnv(LEVEL, num_envs=6)
    env.reset(seed=0)
    env.step(torch.full((6,), env.action_names.index("CHAT")))
    saved = env.state_dict()
    other = TownletVectorEnv(LEVEL, num_envs=6)
    other.load_state_dict(saved)
    assert torch.equal(other.state.trust, env.state.trust)
    bad = {**saved, "state": {**saved["state"], "trust": saved["state"]["trust"] + 5}}
    with pytest.raises(ValueError, match="trust"):
        other.load_state_dict(bad)
    # agents are born off the affordances, so none of them can be queued
    lost = {**saved, "state": {**saved["state"], "queue_key": torch.full((6,), 0)}}
    with pytest.raises(ValueError, match="queue_key"):
        other.load_state_dict(lost)
    l1 = TownletVectorEnv("L1_full_observability", num_envs=2)
    l1.reset(seed=0)
    old = l1.state_dict()
    older = {**old, "format": 2, "state": dict(old["state"])}
    for name in ("trust", "familiarity", "rivalry", "personality", "queue_key", "stall"):
        del older["state"][name]
    for name in ("work", "ledger", "event_clock", "event_value"):
        del older["state"][name]
    l1.load_state_dict(older)  # a save from before the social layer (and the economy)
    before_economy = {**old, "format": 3, "state": dict(old["state"])}
    for name in ("work", "ledger", "event_clock", "event_value"):
        del before_economy["state"][name]
    l1.load_state_dict(before_economy)  # a save from before the economy
    social = env.state_dict()
    social = {**social, "format": 3, "state": dict(social["state"])}
    for name in ("work", "ledger", "event_clock", "event_value"):
        del social["state"][name]
    other.load_state_dict(social)  # L4 saved before the economy existed
    assert torch.equal(other.state.trust, env.state.trust)


# --- the config --------------------------------------------------------------------------------------


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    target = tmp_path / "social_pack"
    shutil.copytree(BUILTIN_DIR / LEVEL, target)
    return target


def _edit(pack: Path, path: list[str], value: object) -> None:
    data = yaml.safe_load((pack / "social.yaml").read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (pack / "social.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["chat", "social_gain"], "0.1", "valid number"),
        (["chat", "social_gain"], True, "valid number"),
        (["chat", "social_gain"], 1.5, "out of range"),
        (["chat", "avoid_rivalry"], float("nan"), "finite"),
        (["queue", "ghost_ticks"], 0, "out of range"),
        (["personality", "ambition"], [0.8, 0.2], "low <= high"),
        (["reward", "clip"], [1.0, -1.0], "low < high"),
        (["chat", "gossip"], 0.1, "gossip"),
        (["meter"], "gossip", "unknown meter"),
    ],
)
def test_bad_social_settings_are_refused(pack: Path, path: list[str], value: object, message: str) -> None:
    _edit(pack, path, value)
    with pytest.raises(ConfigError, match=message):
        load_level(pack)


def test_chat_needs_a_social_pack(tmp_path: Path) -> None:
    pack = tmp_path / "chatty"
    shutil.copytree(BUILTIN_DIR / LEVEL, pack)
    (pack / "social.yaml").unlink()
    with pytest.raises(ConfigError, match=r"needs a social\.yaml"):
        load_level(pack)


def test_social_settings_change_the_hash(pack: Path) -> None:
    before = load_level(pack).content_hash()
    _edit(pack, ["chat", "social_gain"], 0.09)
    assert load_level(pack).content_hash() != before


def test_make_vec_runs_whole_social_towns() -> None:
    import gymnasium as gym

    env = gym.make_vec("Townlet-v0", num_envs=12, level=LEVEL)
    obs, info = env.reset(seed=0)
    assert env.unwrapped.agents_per_town == K and obs.shape == (12, env.unwrapped.level.layout.size)
    _, _, _, _, info = env.step(torch.full((12,), env.unwrapped.level.wait_action))
    assert info["trust"].shape == (12, K)


def test_trust_stays_symmetric_between_equal_personalities(pack: Path) -> None:
    """Every rule that moves trust moves it both ways by the same amount (a successful chat, a
    handover), scaled by each agent's own traits: with equal traits the trust matrix of every
    town stays symmetric through random play."""
    for trait in ("extroversion", "forgiveness", "ambition"):
        _edit(pack, ["personality", trait], [0.5, 0.5])
    env = TownletVectorEnv(pack, num_envs=3 * K)
    _, info = env.reset(seed=4)
    rng = random.Random(4)
    crowd(env.town, rng)
    _, info = env.observe()
    chat = env.action_names.index("CHAT")
    successes = 0
    for _ in range(150):
        actions = social_actions(rng, info["action_mask"], chat, env.level.interact_action)
        _, _, _, _, info = env.step(actions)
        successes += int(info["chat_success"].sum())
        trust = info["trust"].view(-1, K, K)
        assert torch.allclose(trust, trust.transpose(1, 2), atol=1e-6)
    assert successes > 0 and float(info["trust"].abs().max()) > 0


def test_a_population_that_cannot_fit_its_world_is_a_config_error(tmp_path: Path) -> None:
    pack = tmp_path / "crowded"
    shutil.copytree(BUILTIN_DIR / "L4_social", pack)
    social = pack / "social.yaml"
    social.write_text(social.read_text().replace("population: 6", "population: 60", 1))
    with pytest.raises(ConfigError, match=r"social\.yaml: population: 60 agents .* free cells"):
        load_level(pack)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), towns=st.integers(1, 4))
def test_the_facts_a_town_keeps_between_calls_describe_its_state(seed: int, towns: int) -> None:
    """`Town` computes the pairwise facts of a state once, for its observation, mask, `info` and
    the step from it, and patches those of the towns an autoreset replaced: everything must be
    what the core functions compute from the state alone."""
    t = Town(LEVEL, towns * K)
    t.set_difficulty(8.0)  # deaths, so that autoresets replace agents and towns
    now = t.reset(seed=seed)
    rng = random.Random(seed)
    crowd(t, rng)
    now = t.observe()
    level = t.level
    chat = level.action_names.index("CHAT")
    resets = 0
    for _ in range(80):
        before = t.state
        actions = social_actions(rng, now.mask, chat, level.interact_action)
        alone_state, alone = step(level, before, actions)
        out = t.step(actions)
        assert torch.equal(out.reward, alone.reward) and torch.equal(out.chat_success, alone.chat_success)
        assert torch.equal(out.final_obs[out.done], observe(level, alone_state)[out.done])
        resets += int(out.done.any())
        state = t.state
        same = (~out.done.view(-1, K).any(dim=1)).repeat_interleave(K)  # towns the autoreset left
        for name in ("trust", "familiarity", "rivalry", "queue_key", "stall", "meters", "position"):
            assert torch.equal(getattr(state, name)[same], getattr(alone_state, name)[same]), name
        assert torch.equal(out.obs, observe(level, state)), "the observation"
        assert torch.equal(out.mask, action_mask(level, state)), "the mask"
        aff = affordance_at(level, state)
        fresh = Pairs(state, aff, level.max_steps).queue_position
        assert torch.equal(t.social_info()["queue_position"], fresh), "info's queue positions"
        now = out
    assert resets > 0

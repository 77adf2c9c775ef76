"""Every way a level pack can be wrong gives one readable ConfigError.

Each case copies a built-in pack, breaks one thing and checks that the message names the file,
the field path and what is allowed: the user must be able to fix the pack from the message
alone. Edits go through the parsed YAML where possible, so comment or layout changes in the
built-in packs do not break these tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from townlet_env import ConfigError, TownletVectorEnv, builtin_levels, compile_level, load_level
from townlet_env.config.loader import BUILTIN_DIR

Edit = Callable[[Any], Any]


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    path = tmp_path / "pack"
    shutil.copytree(BUILTIN_DIR / "L1_full_observability", path)
    return path


def rewrite(pack: Path, file: str, edit: Edit) -> None:
    """Change the parsed file in place with `edit` (its return value is ignored), write it back."""
    data = yaml.safe_load((pack / file).read_text())
    edit(data)
    (pack / file).write_text(yaml.safe_dump(data, sort_keys=False))


def error_of(level: str | Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_level(level)
    message = str(info.value)
    assert "Traceback" not in message
    assert 1 <= len(message.splitlines()) <= 6, message
    # `from None`: a user's terminal must not show pydantic's or PyYAML's exception underneath.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


def meter(i: int) -> Callable[[Any], dict[str, Any]]:
    return lambda d: d["meters"][i]


def affordance(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda d: next(a for a in d["affordances"] if a["name"] == name)


def put(get: Callable[[Any], dict[str, Any]], key: str, value: Any) -> Edit:
    def edit(data: Any) -> None:
        get(data)[key] = value

    return edit


def rename_key(get: Callable[[Any], dict[str, Any]], old: str, new: str) -> Edit:
    def edit(data: Any) -> None:
        target = get(data)
        target[new] = target.pop(old)

    return edit


ALL_METERS = "meters: energy, hygiene, satiation, money, mood, social, health, fitness"

# (file, edit, substrings the message must contain)
CASES: dict[str, tuple[str, Edit, list[str]]] = {
    "misspelt meter key": (
        "meters.yaml",
        rename_key(meter(0), "drain", "drian"),
        ["meters[0].drian", "unknown field", "allowed: name, initial, drain, terminal", "'drain'?"],
    ),
    "misspelt key in a reward (discriminated union)": (
        "reward.yaml",
        rename_key(lambda d: d["reward"], "meters", "meter"),
        ["reward.meter:", "unknown field", "allowed: clip, kind, meters", "reward.meters: required"],
    ),
    "unknown reward kind": (
        "reward.yaml",
        put(lambda d: d["reward"], "kind", "products"),
        ["reward.kind", "'products'", "allowed: product, weighted_sum, constant_plus_bonus"],
    ),
    "reward kind missing": (
        "reward.yaml",
        lambda d: d["reward"].pop("kind"),
        ["reward.kind: required field missing", "product, weighted_sum, constant_plus_bonus"],
    ),
    "reward is not a mapping": (
        "reward.yaml",
        put(lambda d: d, "reward", "product"),
        ["reward:", "mapping", "'product'"],
    ),
    "wrong type: text for a number": (
        "meters.yaml",
        put(meter(0), "initial", "high"),
        ["meters[0].initial", "number", "'high'"],
    ),
    "wrong type: number for a list": (
        "meters.yaml",
        put(lambda d: d, "meters", 3),
        ["meters:", "list", "got 3"],
    ),
    "wrong type: hours as text": (
        "affordances.yaml",
        put(affordance("Bed"), "hours", "sometimes"),
        ["affordances[0].hours", "'always' or [open, close]", "'sometimes'"],
    ),
    "drain above 1": (
        "meters.yaml",
        put(meter(0), "drain", 2.0),
        ["meters[0].drain", "2.0", "allowed: 0 <= drain <= 1"],
    ),
    "initial below 0": (
        "meters.yaml",
        put(meter(1), "initial", -0.1),
        ["meters[1].initial", "-0.1", "allowed: 0 <= initial <= 1"],
    ),
    "affordance effect above 1": (
        "affordances.yaml",
        put(affordance("Bed"), "effects", {"energy": 1.5}),
        ["affordances[0].effects.energy", "1.5", "allowed: -1 <= energy <= 1"],
    ),
    "negative cost": (
        "affordances.yaml",
        put(affordance("Bed"), "cost", {"money": -0.01}),
        ["affordances[0].cost", "costs are amounts paid, >= 0"],
    ),
    "unknown meter in a cascade": (
        "cascades.yaml",
        put(lambda d: d["groups"][0]["cascades"][0], "source", "satiaton"),
        ["groups[0].cascades[0].source", "unknown meter 'satiaton'", ALL_METERS, "'satiation'?"],
    ),
    "unknown meter in a modulation": (
        "cascades.yaml",
        put(lambda d: d["modulations"][0], "target", "heath"),
        ["modulations[0].target", "unknown meter 'heath'", ALL_METERS],
    ),
    "unknown meter in an affordance cost": (
        "affordances.yaml",
        put(affordance("Bed"), "cost", {"mony": 0.01}),
        ["affordances[0].cost.mony", "unknown meter 'mony'", ALL_METERS, "'money'?"],
    ),
    "unknown meter in affordance effects": (
        "affordances.yaml",
        put(affordance("Shower"), "effects", {"hygeine": 0.1}),
        ["affordances[2].effects.hygeine", "unknown meter 'hygeine'", ALL_METERS],
    ),
    "unknown meter in a completion bonus": (
        "affordances.yaml",
        put(affordance("Park"), "completion", {"joy": 0.1}),
        ["affordances[13].completion.joy", "unknown meter 'joy'", ALL_METERS],
    ),
    "unknown meter in an action": (
        "actions.yaml",
        put(lambda d: d["actions"][7], "effects", {"moood": 0.02}),
        ["actions[7].effects.moood", "unknown meter 'moood'", ALL_METERS],
    ),
    "unknown meter in a product reward": (
        "reward.yaml",
        put(lambda d: d["reward"], "meters", ["energy", "helth"]),
        ["reward.meters[1]", "unknown meter 'helth'", ALL_METERS, "'health'?"],
    ),
    "unknown meter in a weighted-sum reward": (
        "reward.yaml",
        put(lambda d: d, "reward", {"kind": "weighted_sum", "weights": {"energy": 1.0, "helth": 1.0}}),
        ["reward.weights.helth", "unknown meter 'helth'", ALL_METERS],
    ),
    "unknown meter in a bonus reward": (
        "reward.yaml",
        put(lambda d: d, "reward", {"kind": "constant_plus_bonus", "base": 1.0, "bonus_meters": ["zest"]}),
        ["reward.bonus_meters[0]", "unknown meter 'zest'", ALL_METERS],
    ),
    "clip low >= high": (
        "reward.yaml",
        put(lambda d: d["reward"], "clip", [1.0, 0.0]),
        ["reward.clip", "low < high"],
    ),
    "misspelt affordance in affordance_channels": (
        "observation.yaml",
        lambda d: d["affordance_channels"].__setitem__(13, "Prak"),
        ["affordance_channels", "'Park' (affordances[13]) has no channel", "is 'Prak' a misspelling?"],
    ),
    "affordance without a channel": (
        "observation.yaml",
        lambda d: d["affordance_channels"].remove("Park"),
        ["affordance_channels", "'Park'", "has no channel", "channels: Bed, LuxuryBed"],
    ),
    "hours close past 48": (
        "affordances.yaml",
        put(affordance("Bar"), "hours", [18, 49]),
        ["affordances[9].hours", "[18, 49]", "open < close <= 48"],
    ),
    "hours open before 0": (
        "affordances.yaml",
        put(affordance("Doctor"), "hours", [-1, 8]),
        ["affordances[5].hours", "[-1, 8]", "0 <= open < 24"],
    ),
    "hours open after close": (
        "affordances.yaml",
        put(affordance("Doctor"), "hours", [18, 8]),
        ["affordances[5].hours", "[18, 8]", "open < close"],
    ),
    "hours open equals close": (
        "affordances.yaml",
        put(affordance("Doctor"), "hours", [12, 12]),
        ["affordances[5].hours", "[12, 12]", "open < close"],
    ),
    "self-cascade": (
        "cascades.yaml",
        put(lambda d: d["groups"][1]["cascades"][0], "target", "hygiene"),
        ["cascades.yaml", "groups[1].cascades[0]", "cannot cascade into itself ('hygiene')"],
    ),
    "duplicate meter names": (
        "meters.yaml",
        put(meter(1), "name", "energy"),
        ["meters:", "duplicate meter name 'energy' at meters[0] and meters[1]", "unique"],
    ),
    "duplicate affordance names": (
        "affordances.yaml",
        put(affordance("LuxuryBed"), "name", "Bed"),
        ["affordances:", "duplicate affordance name 'Bed' at affordances[0] and affordances[1]"],
    ),
    "duplicate action names": (
        "actions.yaml",
        put(lambda d: d["actions"][7], "name", "REST"),
        ["actions:", "duplicate action name 'REST' at actions[6] and actions[7]"],
    ),
    "no terminal meter": (
        "meters.yaml",
        lambda d: [m.pop("terminal", None) for m in d["meters"]],
        ["meters:", "at least one meter must have terminal: true"],
    ),
    "wall off the grid": (
        "world.yaml",
        put(lambda d: d, "walls", [[2, 2], [8, 1]]),
        ["walls", "[8, 1] (walls[1])", "off the 8x8 grid", "allowed: 0 <= x < 8, 0 <= y < 8"],
    ),
    "walls cut the grid in two": (
        "world.yaml",
        put(lambda d: d, "walls", [[3, y] for y in range(8)]),
        ["walls", "cell [4, 0] cannot be reached from [0, 0]", "must be connected"],
    ),
    "misspelt world key": (
        "world.yaml",
        rename_key(lambda d: d, "max_steps", "max_step"),
        ["max_step:", "unknown field", "width, height, walls, max_steps", "max_steps: required field"],
    ),
    "unknown interaction mode": (
        "world.yaml",
        put(lambda d: d, "interaction", "instnat"),
        ["interaction", "'instnat'", "allowed: 'instant' or 'multi_tick'"],
    ),
    "even window": (
        "observation.yaml",
        put(lambda d: d, "window", 4),
        ["observation.yaml: window:", "must be odd", "got 4"],
    ),
    "reserve without the encoding": (
        "observation.yaml",
        put(lambda d: d, "reserve", ["partial"]),
        ["reserve", "must include the encoding 'full'"],
    ),
    "move action without delta": (
        "actions.yaml",
        lambda d: d["actions"][0].pop("delta"),
        ["actions[0].delta", "move action 'UP' needs a non-zero delta [dx, dy]"],
    ),
    "move action delta too long": (
        "actions.yaml",
        put(lambda d: d["actions"][0], "delta", [0, -2]),
        ["actions[0].delta", "[0, -2]", "within one cell"],
    ),
    "delta on a non-move action": (
        "actions.yaml",
        put(lambda d: d["actions"][5], "delta", [0, 1]),
        ["actions[5].delta", "only move actions take a delta", "'WAIT'"],
    ),
    "unknown action kind": (
        "actions.yaml",
        put(lambda d: d["actions"][0], "kind", "teleport"),
        ["actions[0].kind", "'teleport'", "'move', 'interact', 'wait', 'self' or 'chat'"],
    ),
    "two wait actions": (
        "actions.yaml",
        put(lambda d: d["actions"][6], "kind", "wait"),
        ["actions:", "exactly one action must be of kind 'wait'", "found 2"],
    ),
    "name with a dash": (
        "meters.yaml",
        put(meter(1), "name", "hy-giene"),
        ["meters[1].name", "'hy-giene'", "letters, digits and _"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_pack_names_file_field_and_allowed(pack: Path, case: str) -> None:
    file, edit, expected = CASES[case]
    rewrite(pack, file, edit)
    message = error_of(pack)
    assert message.startswith(str(pack / file) + ": "), message
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_union_tag_is_not_shown_as_a_key(pack: Path) -> None:
    # pydantic puts the member tag in the error location ("reward.product.meter"); the file
    # has no key called 'product', so the path must not mention it.
    rewrite(pack, "reward.yaml", rename_key(lambda d: d["reward"], "meters", "meter"))
    assert "reward.product" not in error_of(pack)


def test_extra_affordance_channel_is_reserved_and_stays_zero(pack: Path) -> None:
    # Documented behaviour (docs/config-reference.md): a channel for an affordance the level
    # lacks keeps a layout shared with a bigger level; it must widen the layout, not fail.
    rewrite(pack, "observation.yaml", lambda d: d["affordance_channels"].append("Casino"))
    level = compile_level(pack)
    assert level.layout.channels[-1] == "Casino" and level.layout["affordances"].shape == (3, 15)
    env = TownletVectorEnv(pack)
    obs, _ = env.reset(seed=0)
    casino = obs[0, level.layout["affordances"].slice].view(3, 15)[:, 14]
    assert casino.abs().sum() == 0


def test_cascade_cycle_shows_the_cycle(pack: Path) -> None:
    cycle = [("mood", "social"), ("social", "hygiene"), ("hygiene", "mood")]
    groups = [{"name": "loop", "cascades": [{"source": s, "target": t, "strength": 0.001} for s, t in cycle]}]
    (pack / "cascades.yaml").write_text(yaml.safe_dump({"modulations": [], "groups": groups}))
    message = error_of(pack)
    assert message.startswith(str(pack / "cascades.yaml"))
    assert "cycle: mood -> social -> hygiene -> mood" in message


def test_cycle_through_a_modulation_and_another_group(pack: Path) -> None:
    # The built-in pack has fitness -> health (modulation); health -> fitness closes a loop.
    rewrite(
        pack,
        "cascades.yaml",
        lambda d: d["groups"][2]["cascades"].append(
            {"source": "health", "target": "fitness", "strength": 0.001}
        ),
    )
    message = error_of(pack)
    assert "cycle" in message and "fitness -> health -> fitness" in message


def test_many_problems_are_capped_to_a_few_lines(pack: Path) -> None:
    rewrite(pack, "meters.yaml", lambda d: [m.update(initial=5.0) for m in d["meters"]])
    message = error_of(pack)  # 8 bad meters; error_of checks <= 6 lines
    assert "meters[0].initial" in message and "more problems" in message


# --- files, YAML and level names -------------------------------------------------------------


def test_unknown_yaml_file(pack: Path) -> None:
    (pack / "meter.yaml").write_text("meters: []\n")
    message = error_of(pack)
    assert message.startswith(str(pack / "meter.yaml"))
    assert "unknown file" in message and "'meters.yaml'?" in message
    assert "meters.yaml, cascades.yaml, affordances.yaml, world.yaml, actions.yaml" in message


def test_other_files_in_a_pack_are_fine(pack: Path) -> None:
    (pack / "NOTES.txt").write_text("design notes\n")
    assert load_level(pack).name == "pack"


def test_missing_file(pack: Path) -> None:
    (pack / "reward.yaml").unlink()
    message = error_of(pack)
    assert message.startswith(str(pack / "reward.yaml") + ": missing")
    assert "meters.yaml, cascades.yaml" in message


def test_invalid_yaml_syntax_is_one_line_with_position(pack: Path) -> None:
    (pack / "world.yaml").write_text("width: [8\nheight: 8\nmax_steps: 500\n")
    message = error_of(pack)
    assert message.startswith(str(pack / "world.yaml") + ": not valid YAML: line 2, column 7")
    assert len(message.splitlines()) == 1


def test_duplicate_yaml_key_is_rejected(pack: Path) -> None:
    # Plain YAML keeps the last of two equal keys: a silently ignored setting.
    (pack / "world.yaml").write_text("width: 8\nheight: 8\nmax_steps: 500\nwidth: 6\n")
    message = error_of(pack)
    assert message.startswith(str(pack / "world.yaml")) and "duplicate key 'width'" in message
    assert "line 4" in message


@pytest.mark.parametrize(
    ("text", "got"),
    [("- 8\n- 8\n", "got a list"), ("just words\n", "got a string"), ("42\n", "got a number")],
)
def test_top_level_not_a_mapping(pack: Path, text: str, got: str) -> None:
    (pack / "world.yaml").write_text(text)
    message = error_of(pack)
    assert message.startswith(str(pack / "world.yaml"))
    assert "expected a mapping" in message and got in message
    assert "width, height, walls, max_steps, day_cycle, interaction" in message


def test_empty_file(pack: Path) -> None:
    (pack / "reward.yaml").write_text("# nothing yet\n")
    message = error_of(pack)
    assert message.startswith(str(pack / "reward.yaml") + ": empty file") and "reward" in message


def test_level_that_is_neither_dir_nor_builtin() -> None:
    message = error_of("L1_full_observabilty")
    assert "'L1_full_observabilty' is neither a pack directory nor a built-in level" in message
    assert "built-in: " + ", ".join(builtin_levels()) in message
    assert "did you mean 'L1_full_observability'?" in message


def test_too_few_free_cells(tmp_path: Path) -> None:
    pack = tmp_path / "tiny"
    shutil.copytree(BUILTIN_DIR / "L0_minimal", pack)
    rewrite(pack, "world.yaml", put(lambda d: d, "walls", [[x, y] for x in range(3) for y in range(3)][1:]))
    message = error_of(pack)
    assert (
        message.startswith(str(pack / "world.yaml")) and "1 free cells cannot hold 1 affordances" in message
    )


# --- the vector env's own arguments ----------------------------------------------------------


@pytest.fixture
def walled_pack(tmp_path: Path) -> Path:
    """L0_minimal with a wall in the middle: 8 free cells, one of them the Bed's."""
    pack = tmp_path / "walled"
    shutil.copytree(BUILTIN_DIR / "L0_minimal", pack)
    rewrite(pack, "world.yaml", put(lambda d: d, "walls", [[1, 1]]))
    return pack


def test_num_envs_must_be_a_multiple_of_agents_per_town() -> None:
    with pytest.raises(
        ValueError, match=r"num_envs \(3\) must be a positive multiple of agents_per_town \(2\)"
    ):
        TownletVectorEnv("L0_minimal", num_envs=3, agents_per_town=2)


def test_too_many_agents_for_the_free_cells(walled_pack: Path) -> None:
    # Whether the env refuses at construction or at reset, it must refuse before any step.
    with pytest.raises(ValueError, match=r"8 free cells, too few for 1 affordances and agents_per_town=8"):
        TownletVectorEnv(walled_pack, num_envs=8, agents_per_town=8).reset(seed=0)


def test_as_many_agents_as_fit_get_distinct_free_cells(walled_pack: Path) -> None:
    env = TownletVectorEnv(walled_pack, num_envs=7, agents_per_town=7)
    _, info = env.reset(seed=0)
    cells = {tuple(p) for p in info["position"].tolist()}
    assert len(cells) == 7 and (1, 1) not in cells
    bed = tuple(env.state.affordance_position[0, 0].tolist())
    assert bed not in cells and bed != (1, 1)


def test_bad_render_mode() -> None:
    with pytest.raises(ValueError, match=r"render_mode 'human' is not one of None, 'ansi', 'rgb_array'"):
        TownletVectorEnv("L0_minimal", render_mode="human")


def test_env_with_unknown_level_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="built-in: L0_5_dual_resource"):
        TownletVectorEnv("no_such_level")


# --- the built-in packs ----------------------------------------------------------------------


def test_the_seven_builtin_levels_exist() -> None:
    assert builtin_levels() == [
        "L0_5_dual_resource",
        "L0_minimal",
        "L1_full_observability",
        "L2_partial_observability",
        "L3_temporal_mechanics",
        "L4_social",
        "L5_town",
    ]


@pytest.mark.parametrize("name", builtin_levels())
def test_builtin_pack_validates_and_compiles(name: str) -> None:
    level = compile_level(name)
    assert level.name == name and level.layout.size > 0
    assert load_level(name).content_hash() == level.content_hash


FAMILY = ["L1_full_observability", "L2_partial_observability", "L3_temporal_mechanics"]


@pytest.mark.parametrize("part", ["meters", "cascades", "affordances", "actions", "reward"])
def test_l1_l2_l3_share_the_rules(part: str) -> None:
    # A network (and its curriculum) moves between these levels: same needs, prices and actions.
    dumps = [getattr(load_level(name), part).model_dump() for name in FAMILY]
    assert dumps[0] == dumps[1] == dumps[2]


def test_l1_l2_l3_share_the_observation_layout() -> None:
    levels = [compile_level(name) for name in FAMILY]
    layouts = [lv.layout for lv in levels]
    assert layouts[0].fields == layouts[1].fields == layouts[2].fields
    assert layouts[0].channels == layouts[1].channels == layouts[2].channels
    assert levels[0].action_names == levels[1].action_names == levels[2].action_names
    # ... while the levels themselves differ: otherwise this test would prove nothing.
    assert len({lv.content_hash for lv in levels}) == 3


# --- strict, finite and bounded values (issue 12) ----------------------------------------------

REWARD_FIELDS = {  # a reward of each kind, and the float fields it has
    "weighted_sum": ({"kind": "weighted_sum", "weights": {"energy": 0.5}}, ["base", "centre", "weights"]),
    "constant_plus_bonus": ({"kind": "constant_plus_bonus", "base": 1.0}, ["base", "bonus"]),
    "product": ({"kind": "product", "meters": ["energy"]}, []),
}
NOT_FINITE = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf", "1e308": "1.0e+308"}


@pytest.mark.parametrize("kind", list(REWARD_FIELDS))
@pytest.mark.parametrize("value", list(NOT_FINITE))
def test_reward_floats_must_be_finite_and_in_range(pack: Path, kind: str, value: str) -> None:
    # Before issue 12 each of these validated, and every step's reward was NaN or inf.
    reward, fields = REWARD_FIELDS[kind]
    for field in [*fields, "clip"]:
        bad = dict(reward)
        text = NOT_FINITE[value]
        bad[field] = {"energy": text} if field == "weights" else [0, text] if field == "clip" else text
        flow = ", ".join(f"{k}: {_flow(v)}" for k, v in bad.items())
        (pack / "reward.yaml").write_text(f"reward: {{{flow}}}\n")
        message = error_of(pack)
        where = {"weights": "reward.weights.energy", "clip": "reward.clip[1]"}.get(field, f"reward.{field}")
        assert message.startswith(f"{pack / 'reward.yaml'}: {where}: "), message
        problem = "is out of range" if value == "1e308" else "is not a finite number"
        assert problem in message and "allowed: " in message, message


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return str(value)


@pytest.mark.parametrize(
    ("file", "edit", "where"),
    [
        ("meters.yaml", put(meter(0), "initial", float("nan")), "meters[0].initial"),
        ("meters.yaml", put(meter(0), "drain", float("inf")), "meters[0].drain"),
        ("cascades.yaml", put(lambda d: d["groups"][0]["cascades"][0], "strength", float("nan")), "strength"),
        ("cascades.yaml", put(lambda d: d["modulations"][0], "scale", float("inf")), "modulations[0].scale"),
        ("affordances.yaml", put(affordance("Bed"), "effects", {"energy": float("nan")}), "effects.energy"),
        (
            "actions.yaml",
            put(lambda d: d["actions"][0], "effects", {"energy": float("-inf")}),
            "effects.energy",
        ),
    ],
)
def test_every_float_rejects_nan_and_inf(pack: Path, file: str, edit: Edit, where: str) -> None:
    rewrite(pack, file, edit)
    message = error_of(pack)
    assert message.startswith(str(pack / file)) and where in message
    assert "is not a finite number (allowed: " in message


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "world.yaml",
            "width: 8\nheight: 8\nmax_steps: true\n",
            "max_steps: Input should be a valid integer",
        ),
        ("world.yaml", "width: 8\nheight: 8\nmax_steps: yes\n", "max_steps: Input should be a valid integer"),
        (
            "world.yaml",
            "width: 8\nheight: 8\nmax_steps: '500'\n",
            "max_steps: Input should be a valid integer",
        ),
        (
            "world.yaml",
            "width: 8\nheight: 8\nmax_steps: 500.0\n",
            "max_steps: Input should be a valid integer",
        ),
        (
            "world.yaml",
            "width: 8\nheight: 8\nmax_steps: 500\nday_cycle: yes\n",
            "day_cycle: Input should be true",
        ),
        ("world.yaml", "width: 8\nheight: 8\nmax_steps: 500\nday_cycle: 'true'\n", "day_cycle: Input should"),
        (
            "world.yaml",
            "width: 8\nheight: 8\nmax_steps: 500\nwalls: [[1, true]]\n",
            "walls[0][1]: Input should",
        ),
        (
            "meters.yaml",
            "meters:\n- {name: energy, initial: '0.5', terminal: true}\n",
            "meters[0].initial: Input",
        ),
        ("meters.yaml", "meters:\n- {name: energy, initial: 1, terminal: no}\n", "meters[0].terminal: Input"),
        ("meters.yaml", "meters:\n- {name: energy, initial: 1, terminal: 1}\n", "meters[0].terminal: Input"),
        ("reward.yaml", "reward: {kind: constant_plus_bonus, base: '1'}\n", "reward.base: Input should be"),
        ("observation.yaml", "encoding: full\nwindow: '5'\n", "window: Input should be a valid integer"),
    ],
)
def test_no_silent_coercion(tmp_path: Path, file: str, text: str, expected: str) -> None:
    # Quoted numbers, YAML 1.1's yes/no and booleans for numbers used to be converted quietly.
    pack = tmp_path / "pack"
    shutil.copytree(BUILTIN_DIR / "L0_minimal", pack)
    (pack / file).write_text(text)
    message = error_of(pack)
    assert message.startswith(f"{pack / file}: {expected}"), message
    assert "(got " in message


def test_an_int_is_a_float(pack: Path) -> None:
    # `1` for `1.0` is ordinary YAML; strictness must not refuse it.
    rewrite(pack, "meters.yaml", lambda d: [m.update(initial=1) for m in d["meters"]])
    rewrite(pack, "reward.yaml", put(lambda d: d, "reward", {"kind": "constant_plus_bonus", "base": 1}))
    level = load_level(pack)
    assert level.meters.meters[0].initial == 1.0 and isinstance(level.meters.meters[0].initial, float)


def test_huge_values_are_shown_as_a_short_preview(pack: Path) -> None:
    # The message of a value a megabyte long must be short, and fast to build.
    long_list = "[" + ", ".join(["0.5"] * 40_000) + "]"
    hostile = {
        "meters.yaml": f"meters:\n- {{name: energy, initial: {long_list}, terminal: true}}\n",
        "world.yaml": "width: 8\nheight: 8\nmax_steps: 500\n? " + "k" * 200_000 + "\n: 1\n",
        "observation.yaml": f"encoding: full\nreserve: [{', '.join(['partial'] * 20_000)}]\n",
        "affordances.yaml": f"affordances:\n- {{name: Bed, ticks: 5, hours: {long_list}}}\n",
    }
    for file, text in hostile.items():
        original = (pack / file).read_text()
        (pack / file).write_text(text)
        message = error_of(pack)
        assert message.startswith(str(pack / file)) and len(message) < len(str(pack / file)) + 300, message
        assert "..." in message
        (pack / file).write_text(original)

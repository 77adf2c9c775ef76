"""Training configs are strict: a misspelt or out-of-range setting is an error that names the
file, the field and what is allowed (an earlier implementation silently ignored unknown keys)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from townlet_env.config import ConfigError
from townlet_train.config import CONFIG_DIR, TrainConfig, builtin_config, load_config

from .helpers import write_yaml


def error_of(path: Path | None = None, **overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, **overrides)
    message = str(info.value)
    assert "Traceback" not in message and "pydantic" not in message.lower(), message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


def test_defaults_validate_and_every_builtin_config_loads() -> None:
    TrainConfig()
    shipped = sorted(CONFIG_DIR.glob("*.yaml"))
    for path in shipped:
        cfg = load_config(path)
        assert cfg.level == path.stem
        assert load_config(None, level=path.stem) == cfg  # level alone picks the built-in file


@pytest.mark.parametrize(
    ("section", "key", "allowed"),
    [
        ("algorithm", "gama", "gamma"),
        ("replay", "capacityy", "capacity"),
        ("exploration", "epsilonn", "epsilon"),
        ("curriculum", "windw", "window"),
        ("checkpoint", "include_replays", "include_replay"),
    ],
)
def test_misspelt_key_names_file_field_and_allowed_fields(
    tmp_path: Path, section: str, key: str, allowed: str
) -> None:
    path = write_yaml(tmp_path / "train.yaml", {"level": "L0_minimal", section: {key: 1}})
    message = error_of(path)
    assert str(path) in message
    assert f"{section}.{key}" in message
    assert "unknown field" in message
    assert "allowed: " in message and allowed in message


def test_misspelt_top_level_and_nested_keys(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "t.yaml", {"levle": "L0_minimal"})
    message = error_of(path)
    assert "levle" in message and "level" in message and str(path) in message
    path = write_yaml(tmp_path / "t.yaml", {"exploration": {"rnd": {"wieght_start": 0.5}}})
    message = error_of(path)
    assert "exploration.rnd.wieght_start" in message and "weight_start" in message


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"algorithm__gamma": 1.0}, "algorithm.gamma"),
        ({"algorithm__gamma": 0.0}, "algorithm.gamma"),
        ({"algorithm__lr": -1e-3}, "algorithm.lr"),
        ({"algorithm__n_step": 0}, "algorithm.n_step"),
        ({"env__num_envs": 0}, "env.num_envs"),
        ({"replay__alpha": 1.5}, "replay.alpha"),
        ({"exploration__epsilon__start": 1.2}, "exploration.epsilon.start"),
        ({"curriculum__stages": []}, "curriculum.stages"),
        ({"checkpoint__keep": 0}, "checkpoint.keep"),
        ({"algorithm__target": {"kind": "polyak", "tau": 0.0}}, "algorithm.target.polyak.tau"),
    ],
)
def test_out_of_range_values_are_rejected(override: dict, field: str) -> None:
    # the DQN recipe: its algorithm has every field named here (the default L0 config is DAgger)
    message = error_of(CONFIG_DIR / "recipes" / "L0_minimal_dqn.yaml", **override)
    assert "unknown field" not in message, message
    assert field.split(".")[-1] in message, message
    assert field.rsplit(".", 1)[0].split(".")[0] in message
    # the message says where the bad value came from
    assert "L0_minimal_dqn.yaml" in message and "overrides" in message


def test_wrong_literal_lists_choices() -> None:
    message = error_of(None, network__kind="transformer")
    assert "network.kind" in message and "mlp" in message and "dueling" in message and "lstm" in message


def test_lstm_replays_windows_without_being_told_twice() -> None:
    """network.kind lstm says that DQN replays windows: replay.kind need not say it again (its
    older spelling 'sequence' still loads); windows are not prioritized, and a feed-forward
    network has none."""
    for kind in ("uniform", "sequence"):
        assert load_config(None, network__kind="lstm", replay__kind=kind).network.kind == "lstm"
    assert "prioritized" in error_of(None, network__kind="lstm", replay__kind="prioritized")
    message = error_of(None, network__kind="dueling", replay__kind="sequence")
    assert "sequence" in message and "lstm" in message


def test_cross_field_rules() -> None:
    message = error_of(None, env__num_envs=10, env__agents_per_town=4)
    assert "agents_per_town" in message
    message = error_of(None, curriculum__retreat_survival=0.8, curriculum__advance_survival=0.7)
    assert "retreat_survival" in message


def test_overrides_apply_on_top_of_a_file(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path / "t.yaml",
        {"level": "L0_minimal", "env": {"num_envs": 32, "agents_per_town": 1}, "algorithm": {"gamma": 0.9}},
    )
    cfg = load_config(path, env__num_envs=64, total_steps=123, algorithm__n_step=5, seed=None)
    assert cfg.env.num_envs == 64  # overridden
    assert cfg.total_steps == 123
    assert cfg.algorithm.n_step == 5
    assert cfg.algorithm.gamma == 0.9  # the file's value survives a sibling override
    assert cfg.seed == 0  # None means "not given"
    assert cfg.level == "L0_minimal"


def test_target_without_kind_is_a_hard_target() -> None:
    cfg = load_config(None, algorithm__target={"every": 7})
    assert cfg.algorithm.target.kind == "hard" and cfg.algorithm.target.every == 7
    cfg = load_config(None, algorithm__target={"kind": "polyak", "tau": 0.1})
    assert cfg.algorithm.target.kind == "polyak" and cfg.algorithm.target.tau == 0.1
    message = error_of(None, algorithm__target={"kind": "soft"})
    assert "hard" in message and "polyak" in message


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    assert "no such" in error_of(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: [unclosed\n")
    assert "YAML" in error_of(bad)
    bad.write_text("- a\n- list\n")
    assert "mapping" in error_of(bad)
    bad.write_text(yaml.safe_dump({"env": 5}))
    assert "env" in error_of(bad, env__num_envs=8)


def test_builtin_config_only_for_plain_names() -> None:
    assert builtin_config("L0_minimal") is not None
    assert builtin_config("no_such_level") is None
    # a pack directory given as a level must never be joined onto the config folder
    assert builtin_config("/tmp/L0_minimal") is None
    assert builtin_config("packs/L0_minimal") is None


def test_config_is_frozen() -> None:
    cfg = load_config(None)
    with pytest.raises(ValidationError):
        cfg.seed = 3  # type: ignore[misc]


# --- bounded, strict input (issue 12) ---------------------------------------------------------


def test_duplicate_key_is_rejected(tmp_path: Path) -> None:
    # Plain YAML keeps the last one: `seed: 1` then `seed: 2` trained with seed 2.
    path = tmp_path / "t.yaml"
    path.write_text("level: L0_minimal\nseed: 1\nseed: 2\n")
    message = error_of(path)
    assert message.startswith(f"{path}: not valid YAML: line 3, column 1: duplicate key 'seed'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("algorithm: {grad_clip: .inf}\n", "algorithm.grad_clip: inf is not a finite number (allowed: 0 < "),
        ("algorithm: {grad_clip: 1.0e+300}\n", "algorithm.grad_clip: 1e+300 is out of range"),
        ("algorithm: {lr: .nan}\n", "algorithm.lr: nan is not a finite number"),
        (
            "algorithm: {batch_size: '256'}\n",
            "algorithm.batch_size: Input should be a valid integer (got '256')",
        ),
        (
            "algorithm: {batch_size: true}\n",
            "algorithm.batch_size: Input should be a valid integer (got True)",
        ),
        ("algorithm: {gamma: '0.9'}\n", "algorithm.gamma: Input should be a valid number (got '0.9')"),
        ("algorithm: {double: yes}\n", "algorithm.double: Input should be true or false (got 'yes')"),
        ("curriculum: {stages: [0.2, .nan]}\n", "curriculum.stages[1]: nan is not a finite number"),
        ("exploration: {rnd: {weight_start: .inf}}\n", "exploration.rnd.weight_start: inf is not a finite"),
        (
            "curriculum: {advance_entropy: 1.0e+9}\n",
            "curriculum.advance_entropy: 1000000000.0 is out of range",
        ),
        ("seed: 1.0e+30\n", "seed: Input should be a valid integer"),
        ("seed: 99999999999999999999\n", "seed: 99999999999999999999 is out of range"),
    ],
)
def test_values_are_strict_finite_and_bounded(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    message = error_of(path)
    assert message.startswith(f"{path}: {expected}"), message


def test_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("algorithm: [unclosed\nseed: 1\n")
    message = error_of(path)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: not valid YAML: line 2, column 5: ")


def test_billion_laughs_training_config_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join([*lines, "curriculum: {stages: *a8}", ""]))
    assert "more than 50,000 values, aliases expanded" in error_of(path)


def test_the_yaml_1_1_spellings_keep_their_meaning_where_they_are_unambiguous(tmp_path: Path) -> None:
    # 1e-3 is a float here (PyYAML alone reads a string), and an int is a float.
    path = tmp_path / "t.yaml"
    path.write_text("algorithm: {lr: 1e-3, grad_clip: 5}\n")
    cfg = load_config(path)
    assert cfg.algorithm.lr == 0.001 and cfg.algorithm.grad_clip == 5.0


def test_training_config_shares_the_env_strict_base_model() -> None:
    from townlet_env.config import StrictModel
    from townlet_train import config

    models = [v for v in vars(config).values() if isinstance(v, type) and v.__module__ == config.__name__]
    assert len(models) >= 12 and all(issubclass(m, StrictModel) for m in models)
    assert not hasattr(config, "Strict")  # the old second base model is gone


def test_algorithm_kind_defaults_to_dqn_and_recipes_load() -> None:
    assert TrainConfig().algorithm.kind == "dqn"
    assert TrainConfig.model_validate({"algorithm": {"gamma": 0.9}}).dqn.gamma == 0.9
    recipes = sorted((Path(__file__).parents[2] / "configs" / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        named = [word for word in path.stem.split("_") if word in ("dqn", "dagger", "ppo", "bc")]
        assert load_config(path).algorithm.kind == named[0], path  # <level>_<kind>[_from_<kind>]
    # each level's default config is its best recipe measured so far (docs/results.md)
    for level in ("L0_minimal", "L0_5_dual_resource", "L1_full_observability"):
        assert load_config(None, level=level).algorithm.kind == "dagger"
    for level in ("L2_partial_observability", "L3_temporal_mechanics"):  # the map student
        cfg = load_config(None, level=level)
        assert (cfg.algorithm.kind, cfg.network.kind) == ("dagger", "map")
        assert cfg.algorithm.teacher_knows == "student_map"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="lr"):
        load_config(None, algorithm={"kind": "dagger", "lr": float("nan")})
    with pytest.raises(ConfigError, match="recurrent"):  # dagger and ppo have one, bc not
        load_config(None, algorithm={"kind": "bc"}, network__kind="lstm", replay__kind="sequence")
    assert load_config(None, algorithm={"kind": "ppo"}, network__kind="lstm").network.kind == "lstm"


# --- the older layout (before the learners were split) ----------------------------------------

OLD_DQN_LSTM = """
level: L2_partial_observability
network: {kind: lstm, hidden: [32], lstm_hidden: 16}
algorithm: {gamma: 0.9, batch_size: 64}
replay: {kind: sequence, capacity: 5000, sequence_length: 12, burn_in: 3}
exploration:
  epsilon: {start: 0.5, end: 0.1, decay_steps: 1000}
  rnd: {enabled: false}
"""


def test_an_older_dqn_config_is_read_in_the_new_layout_with_one_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_DQN_LSTM)
    cfg = load_config(path)
    dqn = cfg.dqn
    assert (dqn.replay.kind, dqn.replay.capacity, dqn.gamma, dqn.batch_size) == ("uniform", 5000, 0.9, 64)
    assert (dqn.epsilon.start, dqn.epsilon.end, dqn.epsilon.decay_steps) == (0.5, 0.1, 1000)
    assert cfg.window() == (12, 3) and (cfg.network.sequence_length, cfg.network.burn_in) == (12, 3)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"notice: {path}: older layout")
    assert "replay -> algorithm.replay" in err[0] and "exploration.epsilon -> algorithm.epsilon" in err[0]
    # the same config in the new layout: no notice, the same settings
    new = tmp_path / "new.yaml"
    new.write_text(
        "level: L2_partial_observability\n"
        "network: {kind: lstm, hidden: [32], lstm_hidden: 16, sequence_length: 12, burn_in: 3}\n"
        "algorithm: {gamma: 0.9, batch_size: 64, replay: {capacity: 5000},\n"
        "            epsilon: {start: 0.5, end: 0.1, decay_steps: 1000}}\n"
    )
    assert load_config(new) == cfg
    assert capsys.readouterr().err == ""


def test_an_older_dagger_config_moves_its_window_and_drops_what_dagger_never_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = load_config(
        None,
        level="L2_partial_observability",
        network__kind="lstm",
        algorithm={"kind": "dagger", "sequence_length": 16, "burn_in": 4},
        replay={"kind": "uniform", "capacity": 10, "sequence_length": 99},
        exploration={"epsilon": {"start": 0.3}},
    )
    assert old.window() == (16, 4) and old.algorithm.kind == "dagger"
    assert "algorithm.sequence_length -> network.sequence_length" in capsys.readouterr().err
    assert load_config(
        None, level="L2_partial_observability", network__kind="lstm", algorithm={"kind": "dagger"}
    ).window() == (32, 8)


def test_older_keys_without_a_place_in_the_new_layout_are_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("network: {kind: dueling}\nreplay: {kind: sequence}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: replay.kind: 'sequence'") and "algorithm.replay.kind" in message
    assert "\n" not in message
    message = error_of(None, algorithm={"kind": "dqn", "burn_in": 2})
    assert "algorithm.burn_in" in message and "network.burn_in" in message
    assert "prioritized" in error_of(None, network__kind="lstm", algorithm__replay__kind="prioritized")


def test_every_shipped_config_is_in_the_new_layout(capsys: pytest.CaptureFixture[str]) -> None:
    for path in sorted([*CONFIG_DIR.glob("*.yaml"), *CONFIG_DIR.glob("recipes/*.yaml")]):
        load_config(path)
        assert capsys.readouterr().err == "", path


def test_a_run_directory_written_in_the_older_layout_resumes(tmp_path: Path) -> None:
    """A run's config.yaml as the code before the split wrote it (every section, the DQN-only
    ones at the top) resumes; the checkpoint's recorded config is compared in the new layout."""
    import yaml

    from townlet_train import cli

    from .helpers import tiny_config, write_yaml

    run_dir = tmp_path / "run"
    cfg = tiny_config(total_steps=256)
    config = write_yaml(tmp_path / "c.yaml", cfg.model_dump(mode="json"))
    assert cli.main(["train", "--config", str(config), "--run-dir", str(run_dir), "--no-progress"]) == 0
    data = yaml.safe_load((run_dir / "config.yaml").read_text())
    algorithm, network = data["algorithm"], data["network"]
    data["replay"] = {**algorithm.pop("replay"), "sequence_length": 16, "burn_in": 8}
    data["exploration"]["epsilon"] = algorithm.pop("epsilon")
    network.pop("sequence_length"), network.pop("burn_in")
    write_yaml(run_dir / "config.yaml", data)
    assert cli.main(["train", "--resume", str(run_dir), "--total-steps", "512"]) == 0

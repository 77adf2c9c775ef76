"""The YAML reader of packs and training configs is bounded: a hostile file ends in one ConfigError
line that names the file, quickly, and never in a hang, a RecursionError or a flood of text.

These are the files a hostile user sent (issue 12): a "billion laughs" of nested aliases, 10,000
nested `[`, a file far larger than any pack. Each check runs the real limits, not lowered ones.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

from townlet_env import ConfigError, TownletVectorEnv, load_level
from townlet_env.cli import main
from townlet_env.config.bounded_yaml import MAX_BYTES, MAX_DEPTH, MAX_VALUES, read_yaml
from townlet_env.config.loader import BUILTIN_DIR

ROOT = Path(__file__).resolve().parents[2]


def billion_laughs(levels: int = 9) -> str:
    """Nine aliases of nine aliases of ...: under 500 bytes that stand for 9**levels values."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"reward: *a{levels - 1}", ""])


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    path = tmp_path / "pack"
    shutil.copytree(BUILTIN_DIR / "L0_minimal", path)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and len(message.splitlines()) == 1, message
    assert len(message) < len(str(path)) + 400, message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the hostile files --------------------------------------------------------------------------


def test_billion_laughs_is_refused_while_parsing(tmp_path: Path) -> None:
    path = write(tmp_path / "reward.yaml", billion_laughs(levels=30))  # 9**30 values
    started = time.perf_counter()
    message = error_of(path)
    assert time.perf_counter() - started < 1.0  # refused by counting, not by expanding
    assert f"more than {MAX_VALUES:,} values, aliases expanded" in message


def test_billion_laughs_in_a_pack_fails_fast_everywhere(pack: Path) -> None:
    write(pack / "reward.yaml", billion_laughs())
    assert len((pack / "reward.yaml").read_bytes()) < 500
    for load in (load_level, TownletVectorEnv, lambda p: gym.make("Townlet-v0", level=p)):
        started = time.perf_counter()
        with pytest.raises(ConfigError, match=r"reward\.yaml: line \d+, column \d+: more than 50,000 values"):
            load(pack)
        assert time.perf_counter() - started < 5.0


def test_billion_laughs_validate_exits_2_with_one_line_in_a_subprocess(pack: Path) -> None:
    # A subprocess with a timeout: before the fix this hung for good, formatting the expansion.
    write(pack / "reward.yaml", billion_laughs())
    done = subprocess.run(
        [sys.executable, "-m", "townlet_env.cli", "validate", str(pack)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {pack / 'reward.yaml'}: line ")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_validate_cli_prints_one_error_line_for_each_hostile_file(
    pack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = {
        "reward.yaml": billion_laughs(),
        "world.yaml": "width: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "meters.yaml": "# " + "x" * MAX_BYTES + "\n",
        "cascades.yaml": "groups: &g [*g]\n",
    }
    for file, text in hostile.items():
        original = (pack / file).read_text()
        write(pack / file, text)
        code = main(["validate", str(pack)])
        out, err = capsys.readouterr()
        assert code == 2 and out == "", file
        assert err.startswith(f"error: {pack / file}: ") and len(err.splitlines()) == 1, err
        write(pack / file, original)


def test_deep_flow_nesting_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    message = error_of(write(tmp_path / "world.yaml", "width: " + "[" * 10_000 + "]" * 10_000 + "\n"))
    # Refused at the first value too deep: the 32nd `[` (the mapping around it is one level).
    assert f"line 1, column {len('width: ') + MAX_DEPTH}: values nested more than {MAX_DEPTH} deep" in message


def test_deep_block_nesting_is_refused(tmp_path: Path) -> None:
    text = "".join(" " * i + "a:\n" for i in range(200)) + " " * 200 + "b: 1\n"
    assert f"nested more than {MAX_DEPTH} deep" in error_of(write(tmp_path / "deep.yaml", text))


def test_aliases_count_towards_depth(tmp_path: Path) -> None:
    # Each alias is shallow where it is written, but stands for everything nested inside it.
    text = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 40))
    assert f"nested more than {MAX_DEPTH} deep" in error_of(write(tmp_path / "chain.yaml", text))


def test_the_depth_limit_is_exact(tmp_path: Path) -> None:
    # The top-level mapping is one level, each `[` one more, and the innermost value one more.
    lists = MAX_DEPTH - 2
    assert read_yaml(write(tmp_path / "ok.yaml", "a: " + "[" * lists + "1" + "]" * lists))
    lists += 1
    assert "nested more than" in error_of(
        write(tmp_path / "deep.yaml", "a: " + "[" * lists + "1" + "]" * lists)
    )


def test_oversized_file_names_size_and_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "big.yaml", "# padding\n" * 30_000)  # 300,000 bytes
    message = error_of(path)
    assert f"300,000 bytes is too large for a settings file (limit: {MAX_BYTES:,} bytes)" in message


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    text = "a: 1\n"
    path = write(tmp_path / "edge.yaml", text + "#" * (MAX_BYTES - len(text) - 1) + "\n")
    assert path.stat().st_size == MAX_BYTES and read_yaml(path) == {"a": 1}


def test_many_values_without_aliases_are_refused(tmp_path: Path) -> None:
    text = "walls: [" + "1," * (MAX_VALUES + 10) + "]\n"
    assert f"more than {MAX_VALUES:,} values" in error_of(write(tmp_path / "w.yaml", text))


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    message = error_of(write(tmp_path / "loop.yaml", "a: &a {b: *a}\n"))
    assert "line 1, column 11: alias *a is used inside the value it names" in message


# --- one line for every YAML problem -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [unclosed\n", "not valid YAML: line 2, column 1: expected ',' or ']'"),
        ("a: 1\na: 2\n", "line 2, column 1: duplicate key 'a' (each key may appear once)"),
        ("a:\n\t- 1\n", "line 2, column 1: found character '\\t' that cannot start any token"),
        ("a: 1\nb: \x00\n", "line 2, column 4: character #x0000 is not allowed in YAML"),
        ("a: *nowhere\n", "line 1, column 4: found undefined alias 'nowhere'"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
        ("a: !!python/object:os.system x\n", "could not determine a constructor"),
        ("a: " + "9" * 5000 + "\n", "is not an integer (or has more than 4,300 digits)"),
    ],
)
def test_yaml_problems_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(write(tmp_path / "bad.yaml", text))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    assert error_of(path).endswith(": not UTF-8 text")


def test_a_huge_key_written_twice_gives_a_short_message(tmp_path: Path) -> None:
    key = "k" * 100_000
    # A key over 1024 characters must be written `? key` then `: value`.
    message = error_of(write(tmp_path / "dup.yaml", f"? {key}\n: 1\n? {key}\n: 2\n"))
    assert "duplicate key 'kkkk" in message


# --- what a value is ---------------------------------------------------------------------------


def test_scalars_follow_the_yaml_1_2_core_schema(tmp_path: Path) -> None:
    text = (
        "yes_: yes\nno_: no\non_: on\ntrue_: true\nfalse_: False\nnull_: ~\nempty:\n"
        "exp: 1e-3\nexp_dot: 1.0e5\nleading_zero: 010\noctal: 0o17\nhex: 0x1F\nhalf: .5\n"
        "inf: -.inf\ndate: 2024-01-31\nclock: 1:30\n"
    )
    assert read_yaml(write(tmp_path / "s.yaml", text)) == {
        "yes_": "yes",  # a string, so `terminal: yes` is an error instead of a guess
        "no_": "no",
        "on_": "on",
        "true_": True,
        "false_": False,
        "null_": None,
        "empty": None,
        "exp": 0.001,  # YAML 1.1 (PyYAML's default) reads 1e-3 as a string
        "exp_dot": 100000.0,
        "leading_zero": 10,
        "octal": 15,
        "hex": 31,
        "half": 0.5,
        "inf": float("-inf"),
        "date": "2024-01-31",
        "clock": "1:30",
    }


def test_merge_keys_work(tmp_path: Path) -> None:
    text = "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n"
    assert read_yaml(write(tmp_path / "m.yaml", text))["c"] == {"x": 1, "y": 3}


def test_every_shipped_file_reads_as_pyyaml_reads_it() -> None:
    # The core schema and the limits must not change the meaning of any real file.
    patterns = ["packages/*/src/*/levels/*/*.yaml", "packages/*/src/*/configs/*.yaml", "configs/*.yaml"]
    files = [Path(f) for pattern in patterns for f in glob.glob(str(ROOT / pattern))]
    assert len(files) >= 40
    for file in files:
        assert read_yaml(file) == yaml.safe_load(file.read_text()), file

"""The `townlet-env` command line: called through `main([...])`, plus one run of the script."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from townlet_env import builtin_levels, compile_level, load_level
from townlet_env.cli import choose_actions, main
from townlet_env.config.loader import BUILTIN_DIR


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def broken_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "broken"
    shutil.copytree(BUILTIN_DIR / "L0_minimal", pack)
    data = yaml.safe_load((pack / "meters.yaml").read_text())
    data["meters"][0]["drain"] = 2.0
    (pack / "meters.yaml").write_text(yaml.safe_dump(data))
    return pack


def test_levels_lists_all_seven_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "levels")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == builtin_levels()
    assert len(lines) == 7
    for line in lines:
        description = line.split(maxsplit=1)[1]
        assert len(description) > 10 and not description.startswith("#"), line
    assert "Credit assignment on a 3x3 grid" in out  # L0_minimal's README, after its title


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", "L0_minimal")
    assert code == 0 and err == ""
    digest = load_level("L0_minimal").content_hash()[:12]
    assert out == (
        f"ok: L0_minimal: 2 meters, 1 affordances, 6 actions, observation 12 floats, hash {digest}\n"
    )


def test_validate_a_pack_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pack = tmp_path / "my_level"
    shutil.copytree(BUILTIN_DIR / "L1_full_observability", pack)
    code, out, _ = run(capsys, "validate", str(pack))
    size = compile_level("L1_full_observability").layout.size
    assert code == 0
    summary = f"ok: my_level: 8 meters, 14 affordances, 8 actions, observation {size} floats"
    assert re.fullmatch(rf"{summary}, hash [0-9a-f]{{12}}\n", out)


def test_validate_failing_pack_exits_2_with_one_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pack = broken_pack(tmp_path)
    code, out, err = run(capsys, "validate", str(pack))
    assert code == 2 and out == ""
    assert err.startswith(f"error: {pack / 'meters.yaml'}: meters[0].drain: 2.0 is out of range")
    assert "0 <= drain <= 1" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["validate", "L9_nowhere"], "neither a pack directory nor a built-in level"),
        (["simulate", "--level", "L9_nowhere"], "built-in: L0_5_dual_resource"),
        (["simulate", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
        (["simulate", "--steps", "ten"], "argument --steps: expected a whole number, got 'ten'"),
        (["simulate", "--seed", "-1"], "argument --seed: must be >= 0"),
        (["simulate", "--every", "0"], "argument --every: must be >= 1"),
        (["simulate", "--policy", "greedy"], "invalid choice: 'greedy'"),
        (["simulate", "--agents-per-town", "9"], "9 free cells, too few"),  # L0 is 3x3 with a Bed
        (["inspect"], "required: PACK"),
        (["teleport"], "invalid choice: 'teleport'"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_arguments_give_one_clean_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and expected in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "simulate", "--help")
    assert code == 0 and "--agents-per-town" in out and "--policy" in out


def test_inspect_text_shows_rules_and_layout_with_offsets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "L3_temporal_mechanics")
    assert code == 0
    layout = compile_level("L3_temporal_mechanics").layout
    lines = out.splitlines()
    for field in layout.fields:
        shape = "x".join(map(str, field.shape))
        row = rf"^\s+{field.name}\s+{field.offset}\s+{field.size}\s+{shape}\s+\S"
        assert any(re.match(row, line) for line in lines), f"no layout row for {field.name}"
    assert f"observation: {layout.size} floats" in out
    for expected in ("energy", "fitness -> health", "satiation -> health", "MEDITATE", "multi_tick"):
        assert expected in out
    assert "Bar          hours 18-28 (18:00-04:00), 2 ticks" in out  # wraps past midnight


@pytest.mark.parametrize("name", ["L0_minimal", "L2_partial_observability"])
def test_inspect_json_round_trips_and_layout_is_contiguous(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, _ = run(capsys, "inspect", name, "--json")
    assert code == 0
    info = json.loads(out)
    level = compile_level(name)
    assert info["name"] == name and info["hash"] == level.content_hash
    fields = info["observation_layout"]
    offset = 0
    for field in fields:
        assert set(field) >= {"name", "offset", "size", "shape"}
        assert field["offset"] == offset and field["size"] == math.prod(field["shape"])
        offset += field["size"]
    assert offset == info["observation_size"] == level.layout.size
    assert [f["name"] for f in fields] == level.layout.names
    assert [m["name"] for m in info["meters"]] == list(level.meter_names)
    assert [a["name"] for a in info["affordances"]] == list(level.affordance_names)
    assert [a["name"] for a in info["actions"]] == list(level.action_names)
    assert {"world", "reward", "modulations", "cascade_groups", "observation"} <= set(info)


def test_inspect_json_per_use_matches_the_compiled_level(capsys: pytest.CaptureFixture[str]) -> None:
    # The instant Bed of levels.md: 5 x (0.075 energy - 0.01 money) + completion.
    info = json.loads(run(capsys, "inspect", "L1_full_observability", "--json")[1])
    bed = next(a for a in info["affordances"] if a["name"] == "Bed")
    assert bed["per_use"] == pytest.approx({"energy": 0.5, "money": -0.05, "health": 0.02})


def test_simulate_prints_the_grid_and_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--level", "L1_full_observability", "--steps", "12", "--every", "5", "--seed", "7"]
    code, first, err = run(capsys, *argv)
    assert code == 0 and err == ""
    # drawn at the start, at steps 5 and 10, and at the end (12)
    assert first.count("legend: ") == 4
    assert "town 0  step 0/500" in first and "town 0  step 12/500" in first
    grid_rows = [line for line in first.splitlines() if re.fullmatch(r"[.#@A-Za-z0-9]{8}", line)]
    assert len(grid_rows) == 4 * 8
    assert sum(row.count("@") for row in grid_rows) == 4  # one agent, shown in every picture
    assert re.search(r"^step 12: reward \d\.\d\d, return \d+\.\d\d, deaths so far \d+$", first, re.M)
    assert first.rstrip().splitlines()[-1].startswith("done: 12 steps")

    assert run(capsys, *argv)[1] == first
    assert run(capsys, *argv[:-1], "8")[1] != first


def test_simulate_leaves_the_global_torch_rng_alone(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(capsys, "simulate", "--steps", "3")
    assert torch.equal(torch.rand(3), expected)


def test_simulate_reports_deaths(capsys: pytest.CaptureFixture[str]) -> None:
    # Without a Bed use, L0's energy (0.01 drain + 0.005 per move) lasts well under 100 steps.
    code, out, _ = run(capsys, "simulate", "--steps", "150", "--every", "200", "--seed", "1")
    assert code == 0
    died = re.findall(r"^step \d+: agent 0 died \(energy at 0\)$", out, re.M)
    final = re.search(r"^step 150: .* deaths so far (\d+)", out, re.M)
    assert died and final and int(final.group(1)) == len(died)


def test_choose_actions_only_picks_legal_ones() -> None:
    generator = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, False, True, False], [False, False, False, True], [True, True, True, True]])
    for _ in range(20):
        picks = choose_actions(mask, "random", interact=2, generator=generator)
        assert bool(mask[torch.arange(3), picks].all())
    interact = choose_actions(mask, "interact", interact=2, generator=generator)
    assert interact[0] == 2 and interact[1] == 3 and interact[2] == 2  # slot 1 cannot interact


def test_simulate_interact_policy_spends_the_money(capsys: pytest.CaptureFixture[str]) -> None:
    # L0: 0.25 money buys five Bed uses; an agent that always interacts on the Bed spends it all.
    out = run(capsys, "simulate", "--policy", "interact", "--steps", "40", "--every", "40")[1]
    agent_lines = re.findall(r"^agent 0 \(.*$", out, re.M)
    assert "money=0.25" in agent_lines[0] and "money=0.00" in agent_lines[-1]


def test_installed_script_validates(tmp_path: Path) -> None:
    script = shutil.which("townlet-env") or str(Path(sys.executable).parent / "townlet-env")
    assert Path(script).exists(), "run `pip install -e packages/townlet-env` to create the script"
    done = subprocess.run([script, "validate", "L0_minimal"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: L0_minimal: 2 meters, 1 affordances, 6 actions")

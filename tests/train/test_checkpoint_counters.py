"""Checkpoint counters under hostile edits (issue 23, finding 5): anyone who can write a
checkpoint can re-sign it, so the digest proves nothing about its values. Counters get the
same value checks as the env state: finite, whole where whole, non-negative, within what the
run could reach; a checkpoint that fails is refused in one line naming the file and field."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from townlet_train import cli
from townlet_train.run.checkpoint import MAX_COUNT, CheckpointError, load_checkpoint, save_checkpoint

from .helpers import checkpoint_steps, config_file, one_error


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("counters")
    config = config_file(
        base / "train.yaml", checkpoint__every_steps=256, checkpoint__keep=1, total_steps=256
    )
    assert cli.main(["train", "--config", str(config), "--run-dir", str(base / "run"), "--no-progress"]) == 0
    assert checkpoint_steps(base / "run") == [256]
    return base / "run"


def resigned(run: Path, tmp_path: Path, edit: Any) -> tuple[Path, Path]:
    """A copy of the run whose only checkpoint was edited and signed again."""
    run_dir = Path(shutil.copytree(run, tmp_path / "run"))
    path = run_dir / "checkpoints" / "step_000000000256.pt"
    payload = load_checkpoint(path)
    edit(payload)
    payload.pop("format_version")
    save_checkpoint(payload, path.parent, path.stem, keep=1)
    return run_dir, path


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda p: p["counters"].update(agent_steps=-1), "counters.agent_steps is -1"),
        (lambda p: p.update(update_debt=math.inf), "update_debt is inf"),
        (lambda p: p.update(update_debt=math.nan), "update_debt is nan"),
        (lambda p: p.update(update_debt=5.0), "update_debt is 5.0, expected a number in [0, 1)"),
        (lambda p: p["counters"].update(episodes=1e30), "counters.episodes is 1e+30"),
        (lambda p: p["counters"].update(episodes=10**6), "counters.episodes is 1000000, more than"),
        (lambda p: p["counters"].update(agent_steps=10**12), "beyond total_steps 256"),
        (lambda p: p.update(updates=-3), "updates is -3"),
        (lambda p: p.update(updates=2.5), "updates is 2.5, expected a whole number"),
        (lambda p: p.update(counters=[1, 2]), "counters is list"),
    ],
)
def test_an_edited_counter_is_refused_in_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, field: str
) -> None:
    run_dir, path = resigned(run, tmp_path, edit)
    metrics = (run_dir / "metrics.db").read_bytes()
    message = one_error(["train", "--resume", str(run_dir), "--total-steps", "512", "--no-progress"], capsys)
    assert path.name in message and field in message, message
    assert (run_dir / "metrics.db").read_bytes() == metrics  # no row was wiped
    capsys.readouterr()
    message = one_error(
        ["eval", "--checkpoint", str(path.with_name(path.name + ".unverified")), "--episodes", "2"], capsys
    )
    assert "no such checkpoint" in message or field in message


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
)


@FUZZ
@given(
    field=st.sampled_from(
        [
            "counters.agent_steps",
            "counters.env_steps",
            "counters.episodes",
            "counters.next_checkpoint",
            "update_debt",
            "updates",
            "recent_survival",
            "timestamp",
        ]
    ),
    value=VALUES,
)
def test_fuzzed_counters_are_refused_or_sane(
    run: Path, tmp_path_factory: pytest.TempPathFactory, field: str, value: Any
) -> None:
    source = run / "checkpoints" / "step_000000000256.pt"
    payload = load_checkpoint(source)
    payload.pop("format_version")
    parent, _, key = field.rpartition(".")
    (payload[parent] if parent else payload)[key] = value
    directory = tmp_path_factory.mktemp("fuzz")
    path = save_checkpoint(payload, directory, "step_000000000256", keep=1)
    try:
        loaded = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        return
    counters = loaded["counters"]
    assert all(
        isinstance(v, int) and 0 <= v <= MAX_COUNT for v in counters.values() if not isinstance(v, bool)
    )
    assert 0 <= loaded["update_debt"] < 1 and counters["episodes"] <= counters["agent_steps"] <= 256 + 16
    assert isinstance(loaded["updates"], int) and loaded["updates"] >= 0

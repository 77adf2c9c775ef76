"""`townlet-train eval --record DIR` writes the evaluated batch as one recording that replays, and
`townlet-env record --policy checkpoint` records a trained agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from townlet_env import cli as env_cli
from townlet_env.recording import load_recording, verify_recording
from townlet_train import cli
from townlet_train.checkpoint import latest_checkpoint


def test_eval_record_writes_a_recording_that_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--policy", "random", "--level", "L0_minimal", "--episodes", "5", "--json"]
    code = cli.main([*argv, "--record", str(tmp_path / "recs")])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    path = Path(result["recording"])
    assert path.parent == tmp_path / "recs" and path.is_file()
    recording = load_recording(path)
    assert recording.num_towns == 5 and recording.header["policy"] == "random"
    assert 0 < recording.ticks <= result["max_steps"]  # until the last of the 5 episodes ended
    summary = verify_recording(path)
    assert summary.ticks == recording.ticks and summary.towns == 5


def test_a_trained_agent_is_recorded_and_replayed(
    cli_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = latest_checkpoint(cli_run["dir"] / "checkpoints")
    assert checkpoint is not None
    path = tmp_path / "agent.townlet"
    argv = [
        "record",
        "--policy",
        "checkpoint",
        "--checkpoint",
        str(checkpoint),
        "--level",
        str(cli_run["level"]),
    ]
    code = env_cli.main([*argv, "--towns", "4", "--ticks", "60", "-o", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "policy checkpoint" in out
    assert verify_recording(path).ticks == 60
    code = cli.main(
        ["eval", "--checkpoint", str(checkpoint), "--episodes", "3", "--json", "--record", str(tmp_path)]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert verify_recording(json.loads(out)["recording"]).towns == 3

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


def test_a_recurrent_agent_is_recorded_acting_as_eval_plays_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The recording carries the LSTM's state through the ticks and zeroes it for each new life,
    as the policy protocol does: its actions are those of `ModelPolicy`."""
    import numpy as np

    from townlet_env.core import Town
    from townlet_env.recording import load_recording
    from townlet_train.checkpoint import load_checkpoint, save_checkpoint
    from townlet_train.policy import ModelPolicy, load_network
    from townlet_train.trainers import make_trainer

    from .helpers import short_level, tiny_config

    level = short_level(tmp_path, max_steps=20, base="L2_partial_observability")
    dagger = {"kind": "dagger", "learning_starts": 10**6, "sequence_length": 4, "burn_in": 2}
    cfg = tiny_config(level=str(level), total_steps=64, algorithm=dagger, network__kind="lstm")
    make_trainer(cfg, tmp_path / "run").run()
    untrained = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert untrained is not None
    # a network whose memory outlasts a life (forget gates open) and decides its actions (logits
    # far from uniform), so that a recording that forgot the reset would act otherwise
    payload = load_checkpoint(untrained)
    net = payload["network"]
    width = net["lstm.bias_ih_l0"].shape[0] // 4
    net["lstm.bias_ih_l0"][width : 2 * width] += 4.0
    net["logits.weight"].mul_(100.0)
    net["logits.bias"].zero_()
    checkpoint = save_checkpoint(payload, tmp_path / "strong", "step_000000000064", keep=1)
    path = tmp_path / "agent.townlet"
    argv = ["record", "--policy", "checkpoint", "--checkpoint", str(checkpoint), "--level", str(level)]
    assert env_cli.main([*argv, "--towns", "3", "--ticks", "50", "--seed", "4", "-o", str(path)]) == 0
    capsys.readouterr()

    def play(reset: bool) -> np.ndarray:
        policy = ModelPolicy(load_network(checkpoint, "cpu")[0])
        town = Town(str(level), 3, 1)
        now = town.reset(seed=4)
        state, actions = policy.initial_state(3, town.device), []
        for _ in range(50):  # episodes of 20 ticks: two new lives per slot
            action, state = policy.act(now.obs, now.mask, state)
            actions.append(action.numpy())
            now = town.step(action)
            state = policy.reset(state, now.done) if reset else state
        return np.stack(actions).astype(np.uint8)

    recorded = load_recording(path).actions
    assert np.array_equal(recorded, play(reset=True))
    assert not np.array_equal(recorded, play(reset=False)), "the memory must matter to this network"

"""`townlet-train eval --record DIR` writes the evaluated batch as one recording that replays: the
way to record a trained agent (townlet-env never imports townlet-train). Recordings are written
atomically, are named after the checkpoint, and replace nothing unless --force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from townlet_env.recording import load_recording, verify_recording
from townlet_train import cli
from townlet_train.run.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


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


def test_eval_record_never_replaces_a_recording_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--policy", "random", "--level", "L0_minimal", "--episodes", "2", "--json"]
    argv += ["--record", str(tmp_path)]
    assert cli.main(argv) == 0
    path = Path(json.loads(capsys.readouterr().out)["recording"])
    first = path.read_bytes()
    assert cli.main([*argv, "--seed", "12345"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists; give --force" in err[0]
    assert path.read_bytes() == first
    assert cli.main([*argv, "--force"]) == 0
    assert verify_recording(path).towns == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_checkpoints_record_two_files(
    cli_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trained agent is recorded with eval --record (townlet-env record plays no checkpoint); the
    default name carries the checkpoint's stem and digest, so the second never replaces the first."""
    newest = latest_checkpoint(cli_run["dir"] / "checkpoints")
    assert newest is not None
    other = tmp_path / "other" / newest.name  # the same file name from another run
    other.parent.mkdir()
    payload = load_checkpoint(newest)
    payload["agent_steps"] = int(payload.get("agent_steps", 0)) + 1
    other = save_checkpoint(payload, other.parent, newest.stem, keep=1)
    written = []
    for checkpoint in (newest, other):
        argv = ["eval", "--checkpoint", str(checkpoint), "--episodes", "3", "--json"]
        assert cli.main([*argv, "--record", str(tmp_path / "recs")]) == 0, capsys.readouterr().err
        written.append(Path(json.loads(capsys.readouterr().out)["recording"]))
    assert written[0] != written[1] and all(newest.stem in p.name for p in written)
    assert [verify_recording(p).towns for p in written] == [3, 3]


def test_eval_record_on_a_full_disk_keeps_the_old_recording(
    small_fs: Path, filled: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--policy", "random", "--level", "L1_full_observability", "--episodes", "32"]
    argv += ["--record", str(small_fs), "--json"]
    assert cli.main(argv) == 0
    path = Path(json.loads(capsys.readouterr().out)["recording"])
    old = path.read_bytes()
    filled(small_fs, leave=4 << 10)
    assert cli.main([*argv, "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "nothing was replaced" in err[0]
    assert path.read_bytes() == old
    assert sorted(p.name for p in small_fs.iterdir()) == [".filler", path.name]


def test_a_recurrent_agent_is_recorded_acting_as_eval_plays_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """eval --record of an LSTM checkpoint holds exactly the actions of `ModelPolicy`
    carried through the recorded ticks and reset for each new life, replayed tick by tick."""
    import numpy as np

    from townlet_env.recording import Replayer, load_recording
    from townlet_train.policy import ModelPolicy, load_network
    from townlet_train.run.checkpoint import load_checkpoint, save_checkpoint
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
    # a high drain: slots die early and act on with a new life while the others finish
    argv = ["eval", "--checkpoint", str(checkpoint), "--level", str(level), "--episodes", "3"]
    argv += ["--seed", "4", "--difficulty", "6", "--json", "--record", str(tmp_path / "recs")]
    assert cli.main(argv) == 0
    recording = load_recording(json.loads(capsys.readouterr().out)["recording"])

    def play(reset: bool) -> np.ndarray:
        """The actions of ModelPolicy on the recorded ticks (the replay supplies the
        observations and whether a slot began a new life)."""
        policy = ModelPolicy(load_network(checkpoint, "cpu")[0])
        replayer = Replayer(recording)
        now = replayer.town.observe()
        state, actions = policy.initial_state(3, replayer.town.device), []
        for _ in range(recording.ticks):
            action, state = policy.act(now.obs, now.mask, state)
            actions.append(action.numpy())
            now = replayer.step()
            state = policy.reset(state, now.done) if reset else state
        return np.stack(actions).astype(np.uint8)

    assert np.array_equal(recording.actions, play(reset=True))

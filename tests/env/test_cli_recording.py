"""`townlet-env record`, `replay` and `video`: exit 0 and the files, or one `error:` line and exit 2."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet_env.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "run.townlet"
    argv = ["record", "--level", "L1_full_observability", "--towns", "3", "--agents-per-town", "2"]
    assert main([*argv, "--ticks", "120", "--seed", "3", "--every", "25", "-o", str(path)]) == 0
    return path


def test_record_then_replay(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert recorded.is_file()
    code, out, err = run(capsys, "replay", str(recorded))
    assert code == 0 and err == ""
    assert out == (
        f"ok: {recorded}: L1_full_observability, 120 ticks, 3 towns x 2 agents, 6 checksums verified\n"
    )


def test_record_is_deterministic(recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    again = tmp_path / "again.townlet"
    argv = ["record", "--level", "L1_full_observability", "--towns", "3", "--agents-per-town", "2"]
    code, out, _ = run(capsys, *argv, "--ticks", "120", "--seed", "3", "--every", "25", "-o", str(again))
    assert code == 0 and out.startswith(f"recorded {again}: L1_full_observability, 120 ticks")
    with np.load(recorded) as a, np.load(again) as b:
        assert np.array_equal(a["actions"], b["actions"]) and np.array_equal(a["checksums"], b["checksums"])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video(recorded: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("imageio")
    pytest.importorskip("imageio_ffmpeg")
    out_file = tmp_path / f"town{suffix}"
    code, out, err = run(capsys, "video", str(recorded), "-o", str(out_file), "--town", "2", "--fps", "12")
    assert code == 0, err
    assert out == f"wrote {out_file}: 121 frames of town 2 at 12 fps\n"
    assert out_file.stat().st_size > 1000


def test_record_with_the_scripted_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("townlet_train")
    path = tmp_path / "s.townlet"
    code, out, err = run(capsys, "record", "--level", "L1_full_observability", "--policy", "scripted",
                         "--towns", "2", "--ticks", "60", "-o", str(path))  # fmt: skip
    assert code == 0, err
    assert "policy scripted" in out
    assert run(capsys, "replay", str(path))[0] == 0


def test_record_works_without_the_trainer_and_sends_checkpoints_to_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_trainer(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("townlet_train"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_trainer)
    for module in [m for m in sys.modules if m.startswith("townlet_train")]:
        monkeypatch.delitem(sys.modules, module)
    # the scripted baseline is part of townlet-env; only a trained checkpoint needs the trainer
    code, _, err = run(capsys, "record", "--level", "L0_minimal", "--policy", "scripted", "--ticks", "20",
                         "-o", str(tmp_path / "scripted.townlet"))  # fmt: skip
    assert code == 0, err
    # a trained agent is recorded by townlet-train eval --record: townlet-env never imports the trainer
    for argv in (["--policy", "checkpoint"], ["--checkpoint", str(tmp_path / "c.pt")]):
        message = one_error(capsys, "record", "--level", "L0_minimal", *argv, "-o", str(tmp_path / "x"))
        assert "townlet-train eval --checkpoint PATH --record DIR" in message
    assert not [m for m in sys.modules if m.startswith("townlet_train")]


def test_missing_imageio_is_one_error(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    message = one_error(capsys, "video", str(recorded), "-o", str(tmp_path / "v.mp4"))
    assert "pip install 'townlet-env[video]'" in message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["replay", "{missing}"], "cannot read the file"),
        (["replay", "{bad}"], "truncated or corrupt"),
        (["record", "--level", "L9_nowhere", "-o", "{out}"], "L9_nowhere"),
        (["record", "--level", "L0_minimal", "--policy", "checkpoint", "-o", "{out}"], "townlet-train eval"),
        (["record", "--level", "L0_minimal", "--policy", "nobody", "-o", "{out}"], "choose from random"),
        (["record", "--level", "L0_minimal", "--checkpoint", "{missing}", "-o", "{out}"], "--record DIR"),
        (["record", "--level", "L0_minimal", "--ticks", "100001", "-o", "{out}"], "at most 100,000"),
        (["record", "--level", "L0_minimal", "-o", "{recorded}"], "exists; give --force"),
        (["record", "--level", "L0_minimal", "-o", "{dir}"], "not a regular file"),
        (["video", "{recorded}", "-o", "{recorded}.gif"], "exists; give --force"),
        (["record", "--level", "L0_minimal", "--ticks", "0", "-o", "{out}"], "--ticks: must be >= 1"),
        (["record", "--level", "L0_minimal"], "required: -o/--output"),
        (["record", "-o", "{out}"], "give --level"),
        (["video", "{recorded}", "-o", "{dir}/v.avi"], "must end in .mp4 or .gif"),
        (["video", "{recorded}", "-o", "{dir}/v.gif", "--town", "3"], "town 3 is not in [0, 3)"),
        (["video", "{recorded}", "-o", "{dir}/v.gif", "--fps", "0"], "fps must be > 0"),
    ],
)
def test_errors_are_one_line(
    argv: list[str], expected: str, recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.townlet").write_bytes(b"PK\x03\x04 not really a zip")
    Path(f"{recorded}.gif").touch()
    names = {
        "missing": str(tmp_path / "missing.townlet"),
        "bad": str(tmp_path / "bad.townlet"),
        "out": str(tmp_path / "out.townlet"),
        "recorded": str(recorded),
        "dir": str(tmp_path),
    }
    message = one_error(capsys, *[a.format(**names) for a in argv])
    assert expected in message


def test_record_defaults_to_the_level_population_and_l5_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --agents-per-town a town holds the level's population (six on L5, as `serve`);
    the flag still overrides it. An L5 recording (jobs, events, evictions) replays verified."""
    path = tmp_path / "l5.townlet"
    code, out, err = run(capsys, "record", "--level", "L5_town", "--towns", "2", "--ticks", "120",
                         "--policy", "scripted", "-o", str(path))  # fmt: skip
    assert code == 0 and "2 towns x 6 agents" in out, err
    code, out, err = run(capsys, "replay", str(path))
    assert code == 0 and out.startswith(f"ok: {path}: L5_town, 120 ticks, 2 towns x 6 agents"), err
    small = tmp_path / "l5-small.townlet"
    code, out, _ = run(capsys, "record", "--level", "L5_town", "--agents-per-town", "2", "--ticks", "5",
                       "-o", str(small))  # fmt: skip
    assert code == 0 and "1 towns x 2 agents" in out

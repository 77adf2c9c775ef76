"""`townlet-env serve` from the command line: one `error:` line for bad input, and a real run."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

from townlet_env.cli import main
from townlet_env.core import Town
from townlet_env.observer.cli import make_policy

from .conftest import TIMEOUT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--level", "nope"], "neither a pack directory nor a built-in level"),
        (["--towns", "0"], "--towns: must be >= 1"),
        (["--speed", "-1"], "--speed must be in [0, 1000]"),
        (["--policy", "smart"], "invalid choice: 'smart'"),
        (["--host", "256.0.0.1", "--insecure"], "cannot listen on 256.0.0.1:"),
        (["--host", "0.0.0.0"], "TOWNLET_VIEWER_TOKEN is not set"),
        (["--audit-log", "/"], "cannot open the audit log"),
    ],
)
def test_bad_input_is_one_error_line(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", "--port", "0", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_a_port_in_use_is_one_error_line(capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_scripted_policy_acts_legally() -> None:
    pytest.importorskip("townlet_train", reason="townlet-train is not installed")
    town = Town("L1_full_observability", 4, 2)
    now = town.reset(seed=0)
    actions = make_policy("scripted", town, 0)(now)
    assert actions.shape == (4,) and bool(now.mask.gather(1, actions[:, None]).all())
    assert torch.equal(make_policy("random", town, 3)(now), make_policy("random", town, 3)(now))


def test_serve_runs_until_stopped(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TOWNLET_ADMIN_TOKEN": ""}
    audit = tmp_path / "audit.jsonl"
    cmd = [sys.executable, "-m", "townlet_env.cli", "serve", "--port", "0", "--audit-log", str(audit)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            assert found, line
            with urllib.request.urlopen(f"http://127.0.0.1:{found.group(1)}/health", timeout=TIMEOUT) as r:
                assert json.load(r)["source"] == "live"
            assert str(audit) in line
        finally:
            proc.terminate()
            proc.wait(TIMEOUT)


@pytest.mark.parametrize(
    ("level", "flag", "expected"),
    [
        ("L4_social", [], 6),
        ("L5_town", [], 6),
        ("L1_full_observability", [], 1),
        ("L5_town", ["--agents-per-town", "2"], 2),
    ],
)
def test_serve_defaults_to_the_level_population(level: str, flag: list[str], expected: int) -> None:
    """A town built for six shows six agents unless the flag says otherwise."""
    from townlet_env.cli import build_parser
    from townlet_env.observer.cli import live_source

    args = build_parser().parse_args(["serve", "--level", level, "--towns", "2", *flag])
    source = live_source(args)
    assert source.town.agents_per_town == expected and source.town.num_towns == 2

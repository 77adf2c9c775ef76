"""The one-line `error:` contract, the same in both command lines because they share its helper
(townlet_env/cli_errors.py): one line on stderr, status 2, nothing on stdout."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from townlet_env import cli as env_cli
from townlet_env.cli_errors import USAGE_ERROR, ArgumentParser, fail
from townlet_train import cli as train_cli

MAINS: dict[str, Callable[[list[str]], int]] = {"townlet-env": env_cli.main, "townlet-train": train_cli.main}


@pytest.mark.parametrize("prog", MAINS)
@pytest.mark.parametrize("argv", [["nosuchcommand"], ["--nosuchflag"], []])
def test_a_bad_argument_is_one_error_line(
    prog: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert MAINS[prog](argv) == USAGE_ERROR == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {prog}: ")
    assert err.endswith(f"(see '{prog} --help')\n")


def test_both_parsers_are_the_shared_one() -> None:
    assert isinstance(env_cli.build_parser(), ArgumentParser)
    assert isinstance(train_cli._parser(), ArgumentParser)


def test_fail_prints_one_line_and_returns_the_usage_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail(ValueError("x.yaml: bad")) == 2
    assert capsys.readouterr().err == "error: x.yaml: bad\n"

"""The one-line `error:` contract that `townlet-env` and `townlet-train` share.

Bad input of any kind prints one line, `error: <what, where, and what is allowed>`, to stderr and
exits with status 2 (argparse's own status for bad arguments), never a traceback and never
argparse's usage block. Each command line keeps its own list of the exceptions that count as bad
input; this module is what they print and return, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad arguments, raised where argparse would print its usage block and exit."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad argument raised as one UsageError line instead of the usage block.

    Subparsers made with `add_subparsers().add_parser` are of this class too (argparse makes
    them with the parent's class).
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def fail(message: object) -> int:
    """Print the one `error:` line and return the status to exit with."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR

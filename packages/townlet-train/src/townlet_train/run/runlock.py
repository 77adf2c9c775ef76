"""One trainer per run directory: an OS file lock held for the life of the run.

Two trainers writing one run directory would interleave their episode rows and overwrite each
other's checkpoints. The lock is `flock` on `<run dir>/trainer.lock`, so the operating system
releases it when the process ends, however it ends (a SIGKILL leaves no stale lock behind).
The file holds the owner's pid, for the message the second trainer prints.

On platforms without `fcntl` (Windows) there is no lock: the run directory is not protected
against a second trainer there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "trainer.lock"

# Reentrant within a process: the CLI holds the lock from before it writes config.yaml, and
# Trainer.run takes it again for programs that call it directly. A second flock from the same
# process on a new descriptor would be refused, as if another trainer held it.
_held: dict[Path, int] = {}


class RunDirectoryInUse(ValueError):
    """Another process is training into this run directory."""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    key = run_dir.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, run_dir)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(fd: int, run_dir: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
        raise RunDirectoryInUse(
            f"{run_dir} is in use by another trainer (pid {owner or 'unknown'}); "
            "wait for it to finish or stop it (Ctrl-C or SIGTERM saves a checkpoint), then --resume"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

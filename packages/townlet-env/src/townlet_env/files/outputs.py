"""Output files written so that nothing is lost: a temporary file, fsync, then a rename.

    with atomic_output(Path("run.townlet"), force=False) as tmp:
        write_everything_to(tmp)          # any failure here leaves `run.townlet` as it was

The temporary file sits next to the target (same filesystem, so the rename is atomic) with a
hidden name ending in the target's suffix (writers that pick a format by suffix still work).
Without `force` the rename is a hard link, which fails if the target appeared meanwhile: an
existing file is never replaced unless asked. A full disk, a missing permission or any other
`OSError` becomes one `OutputError` naming the file; the old file is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputError(ValueError):
    """An output file that cannot be written, or that exists and may not be replaced."""


def check_output(path: Path, force: bool) -> None:
    """Refuse early (before any work) a target that exists and may not be replaced, or that is
    not a regular file (a directory, a FIFO, a device)."""
    if path.is_symlink() or path.exists():
        if not path.is_file() or path.is_symlink():
            raise OutputError(f"{path}: exists and is not a regular file; give another output path")
        if not force:
            raise OutputError(f"{path}: exists; give --force to replace it")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot sync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _describe(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    first = (str(exc).strip().splitlines() or [""])[0]
    return first[:200]


def _link(tmp: Path, path: Path) -> None:
    """Move `tmp` to `path` unless `path` exists (a hard link fails then; a filesystem without
    hard links gets a check and a rename instead)."""
    try:
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: Path | str, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success sync it and move it to `path`."""
    path = Path(path)
    check_output(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
        if hasattr(os, "fchmod"):  # mkstemp's 0600 would follow the file after the rename
            os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({_describe(exc)})") from None
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        if force:
            os.replace(tmp, path)
        else:
            _link(tmp, path)
        _fsync_dir(path.parent)
    except FileExistsError:
        raise OutputError(f"{path}: exists; give --force to replace it") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({_describe(exc)}); nothing was replaced") from None
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["OutputError", "atomic_output", "check_output"]

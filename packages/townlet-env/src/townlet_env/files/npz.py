"""Reading an untrusted `.npz` (a zip of `.npy` members) without letting it exhaust the machine.

`numpy.load` trusts the archive: it inflates any member, of any declared shape, and a header
that declares 2^40 elements is an allocation attempt. Here every size is checked before the
bytes exist in memory:

- the input must be a regular file (a FIFO or a device would block or never end) no larger
  than the caller's cap;
- every member must be one the caller expects (an unknown one is refused, not skipped), stored
  or deflated (other methods and encryption are refused), and declare an inflated size within
  the caller's cap for it; the declared sizes together stay within a total cap;
- a member is inflated only up to its declared size, and its `.npy` header (shape and dtype)
  must describe exactly the bytes it holds, of a plain numeric dtype (no objects, no pickle).

Any problem is one `ArchiveError` naming the file and the member.
"""

from __future__ import annotations

import io
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

# zipfile raises all of these for damaged archives (NotImplementedError: an unknown compression
# method or flag; OverflowError / struct errors: absurd offsets)
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    NotImplementedError,
    OverflowError,
    RuntimeError,
    IndexError,
)
NPY_HEADER_BYTES = 10_000  # numpy's own default limit on a .npy header
PLAIN_KINDS = "biuf"  # bool, int, unsigned, float: nothing that unpickles or holds pointers


def brief(exc: BaseException, limit: int = 160) -> str:
    """`Type: first line` of an exception, cut to `limit` characters: libraries' messages can
    run to pages or quote the damaged bytes, and an error is one line."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > limit:
        first = first[:limit] + "..."
    return f"{type(exc).__name__}: {first}"


class ArchiveError(ValueError):
    """An archive that is not a readable set of the expected arrays, or that is too large."""


def read_regular_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; never blocks on a FIFO or device."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ArchiveError(f"{name}: cannot read the file ({exc.strerror or brief(exc)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArchiveError(f"{name}: not a regular file (a directory, FIFO or device is refused)")
        if info.st_size > max_bytes:
            raise ArchiveError(f"{name}: {info.st_size:,} bytes, larger than the {max_bytes:,} accepted")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ArchiveError(f"{name}: cannot read the file ({exc.strerror or brief(exc)})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ArchiveError(f"{name}: larger than the {max_bytes:,} bytes accepted")
    return data


class Archive:
    """The members of an `.npz`, checked against what the caller expects before any is read."""

    def __init__(
        self, path: str | Path, expected: Callable[[str], bool], max_file_bytes: int, max_total_bytes: int
    ) -> None:
        self.name = str(path)
        data = read_regular_file(path, max_file_bytes)
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except ZIP_ERRORS as exc:
            raise self.fail(f"not a readable archive (truncated or corrupt: {brief(exc)})") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.unexpected: list[str] = []  # refused by check_members(), after the caller's own checks
        total = 0
        for info in infos:
            key = info.filename.removesuffix(".npy")
            if not info.filename.endswith(".npy") or not expected(key):
                self.unexpected.append(info.filename[:80])
                continue
            if key in self.members:
                raise self.fail(f"member {info.filename!r} appears twice")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
                raise self.fail(f"member {info.filename!r} is encrypted or compressed in an unsupported way")
            total += info.file_size
            self.members[key] = info
        if total > max_total_bytes:
            raise self.fail(
                f"its members declare {total:,} bytes, more than the {max_total_bytes:,} accepted"
            )

    def check_members(self) -> None:
        """Refuse an archive with members the caller does not expect: refused, never skipped."""
        if self.unexpected:
            raise self.fail(
                f"unexpected member {self.unexpected[0]!r} (an archive with extra members is refused)"
            )

    def fail(self, what: str) -> ArchiveError:
        return ArchiveError(f"{self.name}: {what}")

    def read(self, key: str, max_bytes: int) -> np.ndarray:
        """Member `key` as an array, refused if it declares more than `max_bytes`."""
        info = self.members[key]
        if info.file_size > max_bytes + NPY_HEADER_BYTES:
            raise self.fail(
                f"member {info.filename!r} declares {info.file_size:,} bytes (at most {max_bytes:,})"
            )
        try:
            with self.zip.open(info) as member:
                raw = member.read(info.file_size + 1)
        except ZIP_ERRORS as exc:
            raise self.fail(f"member {info.filename!r} is truncated or corrupt ({brief(exc)})") from None
        if len(raw) != info.file_size:
            raise self.fail(
                f"member {info.filename!r} holds {len(raw):,} bytes, not the {info.file_size:,} declared"
            )
        return self._parse(raw, info.filename)

    def _parse(self, raw: bytes, member: str) -> np.ndarray:
        stream = io.BytesIO(raw)
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, NPY_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, NPY_HEADER_BYTES)
            else:
                raise ValueError(f"npy version {version}")
        except Exception as exc:  # numpy's header parser raises several types for junk
            raise self.fail(f"member {member!r} is not a .npy array ({brief(exc)})") from None
        if dtype.kind not in PLAIN_KINDS or dtype.hasobject or dtype.itemsize == 0:
            raise self.fail(f"member {member!r} has dtype {dtype}, not a plain number type")
        offset = stream.tell()
        count = math.prod(shape)
        if count * dtype.itemsize != len(raw) - offset:
            raise self.fail(
                f"member {member!r} declares shape {shape} of {dtype} but holds {len(raw) - offset:,} bytes"
            )
        flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
        return flat.reshape(shape, order="F" if fortran else "C").copy()


__all__ = ["Archive", "ArchiveError", "brief", "read_regular_file"]

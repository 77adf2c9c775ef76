"""Who may watch and who may command: tokens, the hosts a request may name, and the audit log.

Tokens are read only from TOWNLET_ADMIN_TOKEN and TOWNLET_VIEWER_TOKEN. A command line would
show them in `ps` and shell history, and a config file tends to get committed. Without a viewer
token anyone who can reach the port may watch; without an admin token no one may command.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADMIN_ENV = "TOWNLET_ADMIN_TOKEN"
VIEWER_ENV = "TOWNLET_VIEWER_TOKEN"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# Refused commands cost a viewer nothing to send: their audit lines are rate-limited (a burst,
# then a steady rate) and capped per log, so a viewer cannot fill the disk through the log.
REFUSED_BURST = 20
REFUSED_PER_SECOND = 2.0
REFUSED_CAP = 1000


def default_audit_path() -> Path:
    """A per-user location: $XDG_STATE_HOME (or ~/.local/state)/townlet/observer-audit.jsonl. A
    shared temporary folder would let another user plant a symlink or read the log."""
    state = os.environ.get("XDG_STATE_HOME") or ""
    if state and Path(state).is_absolute():
        return Path(state) / "townlet" / "observer-audit.jsonl"
    try:
        home: Path | None = Path.home()
    except (RuntimeError, KeyError):  # no home directory known for this user
        home = None
    if home is not None and str(home) not in ("", "/"):
        return home / ".local" / "state" / "townlet" / "observer-audit.jsonl"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"townlet-observer-{uid}" / "audit.jsonl"


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HostRules:
    """The names a request's Host (and a browser's Origin) may carry. DNS rebinding makes an
    attacker's name resolve to 127.0.0.1: the browser then sends Host and Origin both set to
    that name, so checking one against the other proves nothing. Allowed: the bound address,
    localhost and the loopback addresses, names given with --allow-host, and when bound to every
    interface (0.0.0.0, ::) any IP address literal (a literal cannot be rebound)."""

    def __init__(self, bound: str = "127.0.0.1", extra: Iterable[str] = ()) -> None:
        self.bound = bound.strip("[]").lower()
        self.names = {name.lower() for name in (*LOCAL_NAMES, self.bound, *extra) if name}
        self.wildcard = self.bound in ("0.0.0.0", "::", "")

    def allows(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = split_host(host_header)
        if host in self.names:
            return True
        if self.wildcard:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return False
            return True
        return False

    def allows_origin(self, origin: str | None) -> bool:
        """No Origin: not a browser (the token check decides). Otherwise http(s) from an allowed
        host, the same list as Host: never compared with the attacker-controlled Host."""
        if origin is None:
            return True
        scheme, _, rest = origin.partition("://")
        return scheme.lower() in ("http", "https") and "/" not in rest and self.allows(rest)


def split_host(value: str) -> str:
    """'Example.org:8765' -> 'example.org'; '[::1]:80' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class Tokens:
    admin: str | None
    viewer: str | None

    @classmethod
    def from_env(cls) -> Tokens:
        return cls(os.environ.get(ADMIN_ENV) or None, os.environ.get(VIEWER_ENV) or None)

    def role(self, token: str) -> str | None:
        """'admin', 'viewer', or None for a refused token. Every comparison runs, in constant
        time, whatever matched, so timing tells nothing about which token came close. A token
        is any string, lone surrogates included (surrogatepass: it matches no real token)."""
        given = token.encode("utf-8", "surrogatepass")
        admin = self.admin is not None and hmac.compare_digest(given, self.admin.encode())
        viewer = self.viewer is not None and hmac.compare_digest(given, self.viewer.encode())
        if admin:
            return "admin"
        if viewer or (self.viewer is None and token == ""):
            return "viewer"
        return None


class AuditError(OSError):
    """The audit log cannot be written: the command it was to record is refused."""


def _open_private(path: Path) -> int:
    """Open `path` for appending, owner-only, never through a symlink (O_NOFOLLOW on the file,
    and a parent directory that is ours and not writable by others)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    parent = os.lstat(path.parent)
    if stat.S_ISLNK(parent.st_mode) or not stat.S_ISDIR(parent.st_mode):
        raise AuditError(f"{path.parent}: the audit log's folder is a symlink or not a folder")
    if hasattr(os, "getuid") and parent.st_uid != os.getuid() and parent.st_mode & 0o022:
        raise AuditError(f"{path.parent}: the audit log's folder is another user's and writable by others")
    flags = (
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    )
    fd = os.open(path, flags, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AuditError(f"{path}: the audit log is not a regular file")
    return fd


class AuditLog:
    """One JSON line per command attempt: time, role, the command, and whether it was applied.

    Opened once, at start: a path that cannot be opened is an error before the server listens.
    `record` raises AuditError when the line cannot be written, and the caller refuses the
    command; `refused` is rate-limited and capped and never raises (the command was refused)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_audit_path()
        try:
            self._fd = _open_private(self.path)
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot open the audit log ({exc.strerror or exc})") from None
        self._lock = threading.Lock()
        self._tokens = float(REFUSED_BURST)
        self._last = time.monotonic()
        self.refused_lines = 0
        self.suppressed = 0

    def _line(self, role: str, command: dict[str, Any], accepted: bool, reason: str | None) -> bytes:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "role": role,
            "command": command,
            "accepted": accepted,
        }
        if reason is not None:
            line["reason"] = reason
        return (json.dumps(line) + "\n").encode()  # ASCII: lone surrogates come out escaped

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def record(self, role: str, command: dict[str, Any], accepted: bool, reason: str | None = None) -> None:
        data = self._line(role, command, accepted, reason)
        with self._lock:
            try:
                self._write(data)
            except OSError as exc:
                raise AuditError(f"{self.path}: {exc.strerror or exc}") from None

    def refused(self, role: str, command: dict[str, Any], reason: str) -> None:
        """Log a refused command unless the rate or the cap says otherwise (counted, then noted)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(REFUSED_BURST, self._tokens + (now - self._last) * REFUSED_PER_SECOND)
            self._last = now
            if self._tokens < 1 or self.refused_lines >= REFUSED_CAP:
                self.suppressed += 1
                return
            self._tokens -= 1
            self.refused_lines += 1
            line = json.loads(self._line(role, command, False, reason))
            if self.suppressed:
                line["suppressed_before"] = self.suppressed  # refusals not logged since the last line
                self.suppressed = 0
            if self.refused_lines == REFUSED_CAP:
                line["cap_reached"] = f"no more refused commands are logged ({REFUSED_CAP} lines)"
            try:
                self._write((json.dumps(line) + "\n").encode())
            except OSError:
                self.suppressed += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

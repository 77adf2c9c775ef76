"""Who may watch and who may command: tokens from the environment, and the audit log.

Tokens are read only from TOWNLET_ADMIN_TOKEN and TOWNLET_VIEWER_TOKEN. A command line would
show them in `ps` and shell history, and a config file tends to get committed. Without a viewer
token anyone who can reach the port may watch; without an admin token no one may command.
"""

from __future__ import annotations

import hmac
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADMIN_ENV = "TOWNLET_ADMIN_TOKEN"
VIEWER_ENV = "TOWNLET_VIEWER_TOKEN"


def default_audit_path() -> Path:
    return Path(tempfile.gettempdir()) / "townlet-observer" / "audit.jsonl"


@dataclass(frozen=True)
class Tokens:
    admin: str | None
    viewer: str | None

    @classmethod
    def from_env(cls) -> Tokens:
        return cls(os.environ.get(ADMIN_ENV) or None, os.environ.get(VIEWER_ENV) or None)

    def role(self, token: str) -> str | None:
        """'admin', 'viewer', or None for a refused token. Every comparison runs, in constant
        time, whatever matched, so timing tells nothing about which token came close."""
        given = token.encode()
        admin = self.admin is not None and hmac.compare_digest(given, self.admin.encode())
        viewer = self.viewer is not None and hmac.compare_digest(given, self.viewer.encode())
        if admin:
            return "admin"
        if viewer or (self.viewer is None and token == ""):
            return "viewer"
        return None


class AuditLog:
    """One JSON line per command attempt: time, role, the command, and whether it was applied."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_audit_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, role: str, command: dict[str, Any], accepted: bool, reason: str | None = None) -> None:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "role": role,
            "command": command,
            "accepted": accepted,
        }
        if reason is not None:
            line["reason"] = reason
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

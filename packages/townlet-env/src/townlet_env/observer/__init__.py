"""The live observer: a web page and a WebSocket telemetry stream of a running town.

Needs the `observer` extra (`pip install "townlet-env[observer]"`): starlette and uvicorn are
imported only by `server`, so the schema, the sources and the hub work without them.
"""

from townlet_env.observer.hub import Hub, Mailbox
from townlet_env.observer.schema import MAX_MESSAGE_BYTES, VERSION, check_message, render_markdown
from townlet_env.observer.security import AuditLog, Tokens
from townlet_env.observer.source import CommandError, LiveSource, Source, TrainerSource, random_policy

__all__ = [
    "MAX_MESSAGE_BYTES",
    "VERSION",
    "AuditLog",
    "CommandError",
    "Hub",
    "LiveSource",
    "Mailbox",
    "Source",
    "Tokens",
    "TrainerSource",
    "check_message",
    "random_policy",
    "render_markdown",
]

"""Record episodes of a batch of towns, replay them with verified determinism, and make videos.

See docs/recording.md for the file format and the commands.
"""

from townlet_env.recording.format import (
    DEFAULT_EVERY,
    FORMAT,
    Recording,
    RecordingError,
    load_recording,
    save_recording,
    state_checksum,
)
from townlet_env.recording.recorder import Recorder
from townlet_env.recording.replay import Replayer, ReplaySummary, verify_recording

__all__ = [
    "DEFAULT_EVERY",
    "FORMAT",
    "Recorder",
    "Recording",
    "RecordingError",
    "ReplaySummary",
    "Replayer",
    "load_recording",
    "save_recording",
    "state_checksum",
    "verify_recording",
]

"""The recording file: one zip of numpy arrays (an `.npz`) with a JSON header, no pickle.

Members (see docs/recording.md for the full description):

    header.npy          uint8 [B]        UTF-8 JSON: format, level, level_hash, ticks, ...
    actions.npy         uint8 [T, N]     the action of every slot at every tick
    checksum_ticks.npy  int64 [C]        ticks whose state was hashed (0, every K, and T)
    checksums.npy       uint8 [C, 32]    sha256 of the state after those ticks
    start_generator.npy uint8 [G]        the Town's torch generator state at tick 0
    start_difficulty.npy float32 [N]     per-slot difficulty at tick 0
    start.<field>.npy   the TownState tensors at tick 0 (meters, position, alive, ...)

Everything is loaded with `numpy.load(allow_pickle=False)` and `json.loads`; any problem with a
file becomes one `RecordingError` naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_env.core.snapshot import STATE_FORMAT
from townlet_env.core.state import TownState

FORMAT = 1
MAGIC = "townlet-recording"
DEFAULT_EVERY = 50
STATE_FIELDS = tuple(f.name for f in dataclasses.fields(TownState))
HEADER_KEYS = (
    "magic",
    "format",
    "level",
    "level_hash",
    "level_source",
    "num_towns",
    "agents_per_town",
    "num_slots",
    "n_actions",
    "ticks",
    "every",
    "autoreset",
    "device_type",
    "seed",
    "policy",
)


class RecordingError(ValueError):
    """A recording that cannot be read or replayed: corrupt, tampered, or of another level."""


@dataclass(frozen=True)
class Recording:
    """One recorded run of a batch of towns, as held in memory."""

    header: dict[str, Any]
    actions: np.ndarray  # [T, N] uint8
    checksum_ticks: np.ndarray  # [C] int64, increasing, ending at T
    checksums: np.ndarray  # [C, 32] uint8
    start: dict[str, Any]  # a Town.state_dict() (torch tensors) of tick 0
    path: str = "<memory>"

    @property
    def ticks(self) -> int:
        return int(self.actions.shape[0])

    @property
    def level(self) -> str:
        return str(self.header["level"])

    @property
    def num_towns(self) -> int:
        return int(self.header["num_towns"])

    @property
    def agents_per_town(self) -> int:
        return int(self.header["agents_per_town"])

    @property
    def difficulty(self) -> np.ndarray:
        """[N] per-slot difficulty at tick 0."""
        return self.start["difficulty"].numpy()


def state_checksum(state: TownState, generator: torch.Generator | torch.Tensor) -> bytes:
    """sha256 of every state tensor's bytes (in field order) and of the generator (or its saved state): equal
    digests mean the same simulation, newcomers and new layouts to come included."""
    digest = hashlib.sha256()
    for name, tensor in state.tensors().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    rng = generator if isinstance(generator, torch.Tensor) else generator.get_state()
    digest.update(rng.cpu().numpy().tobytes())
    return digest.digest()


def save_recording(recording: Recording, path: str | Path) -> Path:
    """Write `recording` to `path` (compressed); returns the path."""
    path = Path(path)
    header = json.dumps(recording.header, sort_keys=True).encode()
    arrays: dict[str, np.ndarray] = {
        "header": np.frombuffer(header, dtype=np.uint8),
        "actions": np.ascontiguousarray(recording.actions, dtype=np.uint8),
        "checksum_ticks": np.asarray(recording.checksum_ticks, dtype=np.int64),
        "checksums": np.asarray(recording.checksums, dtype=np.uint8).reshape(-1, 32),
        "start_generator": recording.start["generator"].cpu().numpy(),
        "start_difficulty": recording.start["difficulty"].cpu().numpy(),
    }
    for name, tensor in recording.start["state"].items():
        arrays[f"start.{name}"] = tensor.cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez_compressed(f, allow_pickle=False, **arrays)
    return path


def load_recording(path: str | Path) -> Recording:
    """Read and check a recording file; every problem is one `RecordingError`."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RecordingError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as exc:
        raise RecordingError(f"{name}: not a readable recording (truncated or corrupt: {exc})") from None
    return _from_arrays(arrays, name)


def _from_arrays(arrays: dict[str, np.ndarray], name: str) -> Recording:
    def fail(what: str) -> RecordingError:
        return RecordingError(f"{name}: {what}")

    if "header" not in arrays:
        raise fail("not a Townlet recording (no header)")
    try:
        header = json.loads(arrays["header"].astype(np.uint8).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise fail("not a Townlet recording (header lacks the magic string)")
    if header.get("format") != FORMAT:
        raise fail(f"recording format {header.get('format')!r} is not the supported format {FORMAT}")
    missing = [k for k in HEADER_KEYS if k not in header]
    if missing:
        raise fail(f"its header lacks {', '.join(missing)}")
    needed = ["actions", "checksum_ticks", "checksums", "start_generator", "start_difficulty"]
    needed += [f"start.{f}" for f in STATE_FIELDS]
    absent = [k for k in needed if k not in arrays]
    if absent:
        raise fail(f"it lacks the arrays {', '.join(absent)}")
    actions, ticks, sums = arrays["actions"], arrays["checksum_ticks"], arrays["checksums"]
    n, t = int(header["num_slots"]), int(header["ticks"])
    if header["num_towns"] * header["agents_per_town"] != n:
        raise fail(f"num_slots {n} is not num_towns x agents_per_town")
    if actions.dtype != np.uint8 or actions.shape != (t, n):
        raise fail(f"actions are {actions.dtype} {actions.shape}, expected uint8 {(t, n)}")
    if actions.size and int(actions.max()) >= int(header["n_actions"]):
        tick, slot = np.argwhere(actions >= int(header["n_actions"]))[0]
        raise fail(
            f"action {int(actions[tick, slot])} at tick {int(tick) + 1}, slot {int(slot)} is out of "
            f"range (the level has {header['n_actions']} actions)"
        )
    if ticks.dtype != np.int64 or ticks.ndim != 1 or sums.dtype != np.uint8 or sums.shape != (len(ticks), 32):
        raise fail(
            f"checksum arrays have the wrong form ({ticks.dtype} {ticks.shape}, {sums.dtype} {sums.shape})"
        )
    if len(ticks) == 0 or ticks[0] != 0 or ticks[-1] != t or bool((np.diff(ticks) <= 0).any()):
        raise fail(f"checksum ticks must increase from 0 to {t}")
    state = {f: torch.from_numpy(arrays[f"start.{f}"].copy()) for f in STATE_FIELDS}
    start = {
        "format": STATE_FORMAT,
        "level": header["level"],
        "level_hash": header["level_hash"],
        "num_envs": n,
        "agents_per_town": int(header["agents_per_town"]),
        "generator": torch.from_numpy(arrays["start_generator"].astype(np.uint8).copy()),
        "difficulty": torch.from_numpy(arrays["start_difficulty"].copy()),
        "state": state,
    }
    return Recording(header, actions, ticks, sums, start, name)


__all__ = [
    "DEFAULT_EVERY",
    "FORMAT",
    "Recording",
    "RecordingError",
    "load_recording",
    "save_recording",
    "state_checksum",
]

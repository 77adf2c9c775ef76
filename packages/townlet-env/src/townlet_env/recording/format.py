"""The recording file: one zip of numpy arrays (an `.npz`) with a JSON header, no pickle.

Members (see docs/recording.md for the full description):

    header.npy          uint8 [B]        UTF-8 JSON: format, level, level_hash, ticks, ...
    actions.npy         uint8 [T, N]     the action of every slot at every tick
    checksum_ticks.npy  int64 [C]        ticks whose state was hashed (0, every K, and T)
    checksums.npy       uint8 [C, 32]    sha256 of the state after those ticks
    start_generator.npy uint8 [G]        the Town's torch generator state at tick 0
    start_difficulty.npy float32 [N]     per-slot difficulty at tick 0
    start.<field>.npy   the TownState tensors at tick 0 (meters, position, alive, ...)

Everything is read with size caps checked before inflating (townlet_env.files.npz: unknown
members, huge declared shapes, FIFOs and bombs are refused) and `json.loads`; the header's
fields are type- and range-checked before any other array is read. Any problem with a file
becomes one `RecordingError` naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet_env.core.snapshot import STATE_FORMAT
from townlet_env.core.state import TownState
from townlet_env.files import Archive, ArchiveError, atomic_output

FORMAT = 1
MAGIC = "townlet-recording"
DEFAULT_EVERY = 50
STATE_FIELDS = tuple(f.name for f in dataclasses.fields(TownState))
# Bounds on what a file may ask of the machine: a recording longer or wider than these is
# refused before any array is inflated (record and eval --record stay within them).
MAX_TICKS = 100_000
MAX_SLOTS = 65_536
MAX_ACTIONS = 1 << 28  # ticks x slots: 256 MiB of actions
MAX_FILE_BYTES = 1 << 30
MAX_INFLATED_BYTES = 2 << 30
MAX_HEADER_BYTES = 64 << 10
MAX_STATE_MEMBER_BYTES = 256 << 20
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
NONE = type(None)
# header field -> (allowed types, low, high): integers within [low, high], strings at most high long
HEADER_TYPES: dict[str, tuple[tuple[type, ...], int, int]] = {
    "magic": ((str,), 0, 64),
    "format": ((int,), FORMAT, FORMAT),
    "level": ((str,), 0, 4096),
    "level_hash": ((str,), 0, 128),
    "level_source": ((str,), 0, 4096),
    "num_towns": ((int,), 1, MAX_SLOTS),
    "agents_per_town": ((int,), 1, MAX_SLOTS),
    "num_slots": ((int,), 1, MAX_SLOTS),
    "n_actions": ((int,), 1, 256),
    "ticks": ((int,), 0, MAX_TICKS),
    "every": ((int,), 1, MAX_TICKS),
    "autoreset": ((bool,), 0, 1),
    "device_type": ((str,), 0, 16),
    "seed": ((int, NONE), -(2**63), 2**64 - 1),
    "policy": ((str,), 0, 256),
}
HEADER_KEYS = tuple(HEADER_TYPES)
ARRAYS = ("header", "actions", "checksum_ticks", "checksums", "start_generator", "start_difficulty")


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


def save_recording(recording: Recording, path: str | Path, force: bool = False) -> Path:
    """Write `recording` to `path` (compressed) atomically; an existing file is replaced only
    with `force`, and a failed write (a full disk) leaves it as it was. Returns the path."""
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
    with atomic_output(path, force) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, allow_pickle=False, **arrays)
    return path


def _expected_member(key: str) -> bool:
    return key in ARRAYS or (key.startswith("start.") and key.removeprefix("start.") in STATE_FIELDS)


def load_recording(path: str | Path) -> Recording:
    """Read and check a recording file; every problem is one `RecordingError`. Sizes are checked
    before anything is inflated (see townlet_env.files.npz) and the header before the arrays."""
    name = str(path)
    try:
        archive = Archive(path, _expected_member, MAX_FILE_BYTES, MAX_INFLATED_BYTES)
        if "header" not in archive.members:
            raise RecordingError(f"{name}: not a Townlet recording (no header)")
        archive.check_members()
        header = parse_header(archive.read("header", MAX_HEADER_BYTES), name)
        t, n = header["ticks"], header["num_slots"]
        absent = [k for k in (*ARRAYS, *(f"start.{f}" for f in STATE_FIELDS)) if k not in archive.members]
        if absent:
            raise RecordingError(f"{name}: it lacks the arrays {', '.join(absent)}")
        sums = t // header["every"] + 2
        caps = {"actions": t * n, "checksum_ticks": 8 * sums, "checksums": 32 * sums}
        arrays = {key: archive.read(key, caps.get(key, MAX_STATE_MEMBER_BYTES)) for key in archive.members}
    except ArchiveError as exc:
        raise RecordingError(str(exc)) from None
    arrays.pop("header")
    return _from_arrays(header, arrays, name)


def parse_header(raw: np.ndarray, name: str) -> dict[str, Any]:
    """The header's JSON, with every field of the right type and within its bounds."""

    def fail(what: str) -> RecordingError:
        return RecordingError(f"{name}: {what}")

    try:
        header = json.loads(raw.astype(np.uint8).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise fail(f"its header is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise fail("not a Townlet recording (header lacks the magic string)")
    if header.get("format") != FORMAT:
        raise fail(f"recording format {repr(header.get('format'))[:20]} is not the supported format {FORMAT}")
    missing = [k for k in HEADER_TYPES if k not in header]
    if missing:
        raise fail(f"its header lacks {', '.join(missing)}")
    unknown = [str(k)[:40] for k in header if k not in HEADER_TYPES]
    if unknown:
        raise fail(f"its header has unknown fields {', '.join(unknown)}")
    for key, (kinds, low, high) in HEADER_TYPES.items():
        value = header[key]
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            allowed = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise fail(f"header field '{key}' is {type(value).__name__}, expected {allowed}")
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            raise fail(f"header field '{key}' is {value}, expected {low}..{high}")
        if isinstance(value, str) and len(value) > high:
            raise fail(f"header field '{key}' is longer than {high} characters")
    if header["num_towns"] * header["agents_per_town"] != header["num_slots"]:
        raise fail(f"num_slots {header['num_slots']} is not num_towns x agents_per_town")
    if header["ticks"] * header["num_slots"] > MAX_ACTIONS:
        raise fail(f"ticks x num_slots is more than the {MAX_ACTIONS:,} actions a recording may hold")
    if header["device_type"] not in DEVICE_TYPES:
        raise fail(
            f"header field 'device_type' is {header['device_type'][:20]!r}, "
            f"expected one of {', '.join(DEVICE_TYPES)}"
        )
    return header


def _from_arrays(header: dict[str, Any], arrays: dict[str, np.ndarray], name: str) -> Recording:
    def fail(what: str) -> RecordingError:
        return RecordingError(f"{name}: {what}")

    actions, ticks, sums = arrays["actions"], arrays["checksum_ticks"], arrays["checksums"]
    n, t = header["num_slots"], header["ticks"]
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
    generator, difficulty = arrays["start_generator"], arrays["start_difficulty"]
    if generator.dtype != np.uint8 or generator.ndim != 1:
        raise fail(f"start_generator is {generator.dtype} {generator.shape}, expected uint8 [G]")
    if difficulty.dtype != np.float32 or difficulty.shape != (n,):
        raise fail(f"start_difficulty is {difficulty.dtype} {difficulty.shape}, expected float32 {(n,)}")
    state = {f: torch.from_numpy(arrays[f"start.{f}"]) for f in STATE_FIELDS}
    start = {
        "format": STATE_FORMAT,
        "level": header["level"],
        "level_hash": header["level_hash"],
        "num_envs": n,
        "agents_per_town": header["agents_per_town"],
        "generator": torch.from_numpy(generator),
        "difficulty": torch.from_numpy(difficulty),
        "state": state,
    }
    return Recording(header, actions, ticks, sums, start, name)


__all__ = [
    "DEFAULT_EVERY",
    "FORMAT",
    "MAX_SLOTS",
    "MAX_TICKS",
    "Recording",
    "RecordingError",
    "load_recording",
    "save_recording",
    "state_checksum",
]

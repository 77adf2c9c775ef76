"""Recordings: a replay re-simulates the run bit for bit, and any tampered, truncated or foreign
file is refused with one clear RecordingError."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from townlet_env.config import builtin_levels
from townlet_env.config.loader import BUILTIN_DIR
from townlet_env.core import Town
from townlet_env.recording import (
    FORMAT,
    Recorder,
    Recording,
    RecordingError,
    Replayer,
    load_recording,
    save_recording,
    verify_recording,
)


def record(level: str, towns: int, ticks: int, k: int = 1, seed: int = 0, every: int = 50) -> tuple:
    town = Town(level, towns * k, k)
    now = town.reset(seed=seed)
    draws = torch.Generator().manual_seed(seed)
    recorder = Recorder(town, every=every, seed=seed, policy="random")
    deaths = regenerated = 0
    for _ in range(ticks):
        actions = now.mask.float().multinomial(1, generator=draws).squeeze(1)
        now = recorder.step(actions)
        deaths += int(now.terminated.sum())
        regenerated += int(now.done.view(-1, k).all(dim=1).sum())
    return recorder, deaths, regenerated


@pytest.mark.parametrize("level", builtin_levels())
def test_replay_of_1000_ticks_of_64_towns_matches_every_checksum(level: str, tmp_path: Path) -> None:
    recorder, deaths, regenerated = record(level, towns=64, ticks=1000)
    assert deaths > 0 and regenerated > 0  # newcomers and new towns drawn from the generator
    path = recorder.save(tmp_path / "run.townlet")
    summary = verify_recording(path)
    assert summary.ticks == 1000 and summary.towns == 64
    assert summary.checksums == 1000 // 50 + 1  # tick 0, every 50, the last one is 1000


def test_shared_towns_and_a_final_tick_between_checksums(tmp_path: Path) -> None:
    recorder, _, _ = record("L1_full_observability", towns=3, ticks=123, k=2, every=40)
    rec = recorder.recording()
    assert rec.checksum_ticks.tolist() == [0, 40, 80, 120, 123]
    path = recorder.save(tmp_path / "r.townlet")
    loaded = load_recording(path)
    assert loaded.actions.dtype == np.uint8 and loaded.actions.shape == (123, 6)
    assert np.array_equal(loaded.actions, rec.actions)
    assert loaded.difficulty.tolist() == [1.0] * 6
    assert verify_recording(path).checksums == 5


def test_seek_backwards_and_forwards_reproduces_the_state(tmp_path: Path) -> None:
    recorder, _, _ = record("L0_minimal", towns=4, ticks=120, every=25)
    replayer = Replayer(recorder.recording())
    replayer.seek(110)
    at_110 = replayer.town.state_dict()
    replayer.seek(30)  # from the kept state of tick 25
    assert replayer.tick == 30
    replayer.seek(110)
    again = replayer.town.state_dict()
    for name, tensor in at_110["state"].items():
        assert torch.equal(tensor, again["state"][name]), name
    replayer.seek(0)
    assert replayer.tick == 0
    assert replayer.verify().checksums == 6  # 0, 25, 50, 75, 100, 120
    assert torch.equal(replayer.town.state.meters, recorder.town.state.meters)


# --- tampering ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recorder, _, _ = record("L1_full_observability", towns=4, ticks=200, every=50)
    return recorder.save(tmp_path_factory.mktemp("rec") / "run.townlet")


def rewrite(src: Path, dst: Path, **changes: np.ndarray) -> Path:
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    with dst.open("wb") as f:
        np.savez_compressed(f, allow_pickle=False, **arrays)  # type: ignore[arg-type]
    return dst


def one_error(path: Path, match: str, level: str | Path | None = None) -> str:
    with pytest.raises(RecordingError, match=match) as info:
        verify_recording(path, level=level)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_an_edited_action_is_caught_by_the_next_checksum(saved: Path, tmp_path: Path) -> None:
    rec = load_recording(saved)
    town = Town("L1_full_observability", 4)
    town.load_state_dict(rec.start)
    mask = town.observe().mask[0]
    actions = rec.actions.copy()
    # another legal action for slot 0 at tick 1: the agent ends elsewhere or pays another cost
    actions[0, 0] = next(a for a in range(mask.numel()) if mask[a] and a != actions[0, 0])
    one_error(rewrite(saved, tmp_path / "edited.townlet", actions=actions), "checksum mismatch at tick 50")


def test_an_edited_checksum_is_refused(saved: Path, tmp_path: Path) -> None:
    sums = load_recording(saved).checksums.copy()
    sums[3, 0] ^= 1
    one_error(rewrite(saved, tmp_path / "sum.townlet", checksums=sums), "checksum mismatch at tick 150")


def test_an_action_out_of_range_is_refused(saved: Path, tmp_path: Path) -> None:
    actions = load_recording(saved).actions.copy()
    actions[9, 2] = 200
    one_error(rewrite(saved, tmp_path / "big.townlet", actions=actions), "action 200 at tick 10, slot 2")


def test_another_version_of_the_level_with_the_same_name_is_refused(saved: Path, tmp_path: Path) -> None:
    pack = tmp_path / "L1_full_observability"
    shutil.copytree(BUILTIN_DIR / "L1_full_observability", pack)
    world = pack / "world.yaml"
    world.write_text(world.read_text().replace("max_steps: 500", "max_steps: 400"))
    one_error(saved, "another version of level 'L1_full_observability'", level=pack)


def test_a_truncated_file_is_refused(saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    cut = tmp_path / "cut.townlet"
    cut.write_bytes(data[: len(data) // 2])
    one_error(cut, "truncated or corrupt")


def test_a_corrupted_byte_is_refused(saved: Path, tmp_path: Path) -> None:
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("actions.npy")
    extra = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + len(info.filename) + extra  # the compressed data
    data[start + info.compress_size // 2] ^= 0xFF
    bad = tmp_path / "flip.townlet"
    bad.write_bytes(bytes(data))
    one_error(bad, "truncated or corrupt")


def test_another_format_version_is_refused(saved: Path, tmp_path: Path) -> None:
    rec = load_recording(saved)
    header = dict(rec.header, format=FORMAT + 1)
    changed = Recording(header, rec.actions, rec.checksum_ticks, rec.checksums, rec.start)
    path = save_recording(changed, tmp_path / "v.townlet")
    one_error(path, f"recording format {FORMAT + 1} is not the supported format {FORMAT}")


def test_not_a_recording_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    one_error(other, "not a Townlet recording")
    one_error(tmp_path / "missing.townlet", "cannot read the file")


def test_the_recorder_checks_its_arguments() -> None:
    town = Town("L0_minimal", 1)
    town.reset(seed=0)
    with pytest.raises(ValueError, match="every"):
        Recorder(town, every=0)
    with pytest.raises(ValueError, match="out of range"):
        Recorder(town).record([99])

"""Recordings and videos under hostile input and hostile disks (issue 23, findings 3, 4, 8, 9).

Outputs: written atomically, never replacing a file without --force, and a full disk (a real
tmpfs, see tests/conftest.py) never destroys the old file nor reports success. Inputs: sizes
are checked before anything is inflated, unknown members and non-regular files are refused,
header fields are type- and range-checked, and every single-byte flip of a file is either
harmless or one RecordingError line.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from townlet_env.cli import main
from townlet_env.core import Town
from townlet_env.recording import Recorder, Recording, RecordingError, load_recording, save_recording
from townlet_env.recording.format import HEADER_KEYS, MAX_TICKS
from townlet_env.recording.replay import Replayer


def one_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def small_recording(path: Path, ticks: int = 20, towns: int = 1) -> Path:
    town = Town("L0_minimal", towns)
    now = town.reset(seed=1)
    draws = torch.Generator().manual_seed(1)
    recorder = Recorder(town, every=5, seed=1, policy="random")
    for _ in range(ticks):
        now = recorder.step(now.mask.float().multinomial(1, generator=draws).squeeze(1))
    return recorder.save(path)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_recording(tmp_path_factory.mktemp("hostile") / "small.townlet")


def with_header(src: Path, dst: Path, **changes: Any) -> Path:
    rec = load_recording(src)
    header = {**rec.header, **changes}
    return save_recording(Recording(header, rec.actions, rec.checksum_ticks, rec.checksums, rec.start), dst)


# --- outputs ----------------------------------------------------------------------------------


def test_record_and_video_keep_an_existing_file_unless_forced(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("imageio")
    out = tmp_path / "run.townlet"
    argv = ["record", "--level", "L0_minimal", "--ticks", "10", "-o", str(out)]
    assert main(argv) == 0
    first = out.read_bytes()
    assert "exists; give --force" in one_error(capsys, *argv[:-2], "--seed", "5", "-o", str(out))
    assert out.read_bytes() == first
    assert main([*argv[:-2], "--seed", "5", "-o", str(out), "--force"]) == 0
    assert out.read_bytes() != first
    gif = tmp_path / "v.gif"
    gif.write_bytes(b"mine")
    assert "exists; give --force" in one_error(capsys, "video", str(small), "-o", str(gif))
    assert gif.read_bytes() == b"mine"
    assert main(["video", str(small), "-o", str(gif), "--force"]) == 0
    assert gif.read_bytes()[:3] == b"GIF"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_record_on_a_full_disk_keeps_the_old_recording(
    small_fs: Path, filled: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small_fs / "run.townlet"
    argv = ["record", "--level", "L1_full_observability", "--towns", "16", "--ticks", "500", "-o", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    old = out.read_bytes()
    filled(small_fs, leave=4 << 10)
    message = one_error(capsys, *argv[:-2], "--seed", "9", "-o", str(out), "--force")
    assert "No space left on device" in message and "nothing was replaced" in message
    assert out.read_bytes() == old
    assert load_recording(out).ticks == 500
    assert sorted(p.name for p in small_fs.iterdir()) == [".filler", "run.townlet"]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_on_a_full_disk_is_one_error_and_keeps_the_old_video(
    suffix: str, small_fs: Path, filled: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("imageio")
    pytest.importorskip("imageio_ffmpeg")
    rec = tmp_path / "long.townlet"
    assert main(["record", "--level", "L1_full_observability", "--ticks", "100", "-o", str(rec)]) == 0
    video = small_fs / f"town{suffix}"
    video.write_bytes(b"the old video")
    filled(small_fs, leave=4 << 10)
    capsys.readouterr()
    message = one_error(capsys, "video", str(rec), "-o", str(video), "--force")
    assert "nothing was replaced" in message
    assert video.read_bytes() == b"the old video"
    assert sorted(p.name for p in small_fs.iterdir()) == [".filler", video.name]


# --- inputs -------------------------------------------------------------------------------------


def add_member(src: Path, dst: Path, name: str, data: bytes) -> Path:
    dst.write_bytes(src.read_bytes())
    with zipfile.ZipFile(dst, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return dst


def test_an_extra_member_is_refused_before_it_is_inflated(small: Path, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(100_000_000, dtype=np.uint8))  # 100 MB that deflate to about 100 kB
    bomb = add_member(small, tmp_path / "bomb.townlet", "extra.npy", buffer.getvalue())
    with pytest.raises(RecordingError, match=r"unexpected member 'extra\.npy'"):
        load_recording(bomb)


def patch_central_size(path: Path, member: str, size: int) -> None:
    """Make the zip's central directory declare `size` inflated bytes for `member`."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")  # the first central directory entry
    while True:
        (name_len,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, at + 24, size)
            break
        extra, comment = struct.unpack_from("<HH", data, at + 30)
        at += 46 + name_len + extra + comment
    path.write_bytes(bytes(data))


def test_a_member_declaring_gigabytes_is_refused_unread(small: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.townlet"
    big.write_bytes(small.read_bytes())
    patch_central_size(big, "start.meters.npy", 0xFFFF_0000)
    with pytest.raises(RecordingError, match=r"(declares|members declare) [\d,]+ bytes"):
        load_recording(big)


def test_a_header_of_2_to_the_40_elements_is_one_error(small: Path, tmp_path: Path) -> None:
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1099511627776, 1), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 32
    src = tmp_path / "src.townlet"
    with zipfile.ZipFile(small) as zin, zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, member if item.filename == "actions.npy" else zin.read(item))
    with pytest.raises(
        RecordingError, match=r"declares shape .1099511627776, 1. of uint8 but holds 32 bytes"
    ):
        load_recording(src)


def test_ten_million_ticks_are_refused_at_the_header(small: Path, tmp_path: Path) -> None:
    rec = load_recording(small)
    header = {**rec.header, "ticks": 10_000_000}
    path = tmp_path / "long.townlet"
    save_recording(Recording(header, rec.actions, rec.checksum_ticks, rec.checksums, rec.start), path)
    with pytest.raises(RecordingError, match=f"'ticks' is 10000000, expected 0..{MAX_TICKS}"):
        load_recording(path)


def test_a_fifo_is_refused_without_hanging(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe.townlet"
    os.mkfifo(fifo)
    result: list[str] = []
    worker = threading.Thread(
        target=lambda: result.append(one_error(capsys, "replay", str(fifo))), daemon=True
    )
    worker.start()
    worker.join(60)
    assert result and "not a regular file" in result[0], "reading a FIFO must not block"


def test_serve_recording_refuses_a_fifo_and_a_bomb(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("uvicorn")
    fifo = tmp_path / "pipe.townlet"
    os.mkfifo(fifo)
    assert "not a regular file" in one_error(capsys, "serve", "--port", "0", "--recording", str(fifo))
    bomb = add_member(small, tmp_path / "bomb.townlet", "extra.npy", b"\x93NUMPY" + b"\0" * 1000)
    assert "unexpected member" in one_error(capsys, "serve", "--port", "0", "--recording", str(bomb))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_towns": "1"}, "'num_towns' is str, expected int"),
        ({"num_towns": -1, "num_slots": -1}, "'num_towns' is -1, expected 1..65536"),
        ({"ticks": 2.5}, "'ticks' is float, expected int"),
        ({"autoreset": "yes"}, "'autoreset' is str, expected bool"),
        ({"seed": "x"}, "'seed' is str, expected int or null"),
        ({"every": True}, "'every' is bool, expected int"),
        ({"device_type": "bogus"}, "'device_type' is 'bogus', expected one of cpu"),
        ({"n_actions": 255}, "'n_actions' is 255, but level 'L0_minimal' has"),
        ({"n_actions": 300}, "'n_actions' is 300, expected 1..256"),
        ({"surprise": 1}, "unknown fields surprise"),
        ({"level": ["L0"]}, "'level' is list, expected str"),
    ],
)
def test_a_bad_header_field_is_one_error(
    change: dict[str, Any], message: str, small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_header(small, tmp_path / "h.townlet", **change)
    assert message in one_error(capsys, "replay", str(path))


def test_a_cuda_recording_on_a_cpu_machine_is_one_error(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the recording would be replayed there")
    path = with_header(small, tmp_path / "cuda.townlet", device_type="cuda")
    assert "recorded on cuda, and this machine cannot use that device" in one_error(
        capsys, "replay", str(path)
    )


def test_a_broken_generator_state_is_one_error(small: Path, tmp_path: Path) -> None:
    with np.load(small, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["start_generator"] = np.full_like(arrays["start_generator"], 0xFF)
    path = tmp_path / "gen.townlet"
    with path.open("wb") as f:
        np.savez_compressed(f, allow_pickle=False, **arrays)  # type: ignore[arg-type]
    with pytest.raises(RecordingError, match="start state is not usable"):
        Replayer(path).verify()


def test_an_unsupported_compression_method_is_one_error(small: Path, tmp_path: Path) -> None:
    data = bytearray(small.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local and central headers
        at = data.index(signature)
        struct.pack_into("<H", data, at + offset, 99)
    path = tmp_path / "method.townlet"
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=r"unsupported way|truncated or corrupt"):
        Replayer(path).verify()


FLIPS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@FLIPS
@given(data=st.data())
def test_every_single_byte_flip_is_harmless_or_one_error(small: Path, data: st.DataObject) -> None:
    raw = bytearray(small.read_bytes())
    at = data.draw(st.integers(0, len(raw) - 1), label="offset")
    raw[at] ^= data.draw(st.integers(1, 255), label="xor")
    flipped = small.with_name(f"flip-{threading.get_ident()}.townlet")
    flipped.write_bytes(bytes(raw))
    try:
        Replayer(flipped, keep=False).verify()
    except RecordingError as exc:
        text = str(exc)
        assert "\n" not in text and text.startswith(str(flipped)) and len(text) < 600, text
    finally:
        flipped.unlink()


@FLIPS
@given(
    field=st.sampled_from(HEADER_KEYS),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=30),
        st.lists(st.integers(), max_size=3),
    ),
)
def test_fuzzed_header_values_are_accepted_or_one_error(small: Path, field: str, value: Any) -> None:
    rec = load_recording(small)
    key = field
    path = small.with_name(f"header-{threading.get_ident()}.townlet")
    save_recording(
        Recording({**rec.header, key: value}, rec.actions, rec.checksum_ticks, rec.checksums, rec.start),
        path,
        force=True,
    )
    try:
        Replayer(path, keep=False).verify()
    except RecordingError as exc:
        assert "\n" not in str(exc)
    finally:
        path.unlink()

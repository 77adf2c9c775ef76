"""Videos of a recording: replay it (verifying its checksums) and write one town's `rgb_array`
picture of every tick to an .mp4 (imageio + imageio-ffmpeg) or a .gif (imageio + Pillow).

imageio is an optional dependency: `pip install 'townlet-env[video]'`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from townlet_env.files import OutputError, atomic_output, check_output
from townlet_env.files.npz import brief
from townlet_env.recording.format import Recording, RecordingError, load_recording
from townlet_env.recording.replay import Replayer

FORMATS = (".mp4", ".gif")
INSTALL = "pip install 'townlet-env[video]'"


class VideoDependencyError(ImportError):
    """imageio (or its ffmpeg binary for .mp4) is not installed."""


def _imageio(suffix: str) -> Any:
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise VideoDependencyError(f"making videos needs imageio: {INSTALL}") from None
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise VideoDependencyError(f"making .mp4 videos needs imageio-ffmpeg: {INSTALL}") from None
    return imageio


def pad_frame(frame: np.ndarray, block: int = 16) -> np.ndarray:
    """Pad to a multiple of `block` pixels each way (what mp4 encoders want), with white."""
    h, w = frame.shape[:2]
    ph, pw = -h % block, -w % block
    if not ph and not pw:
        return frame
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)), constant_values=255)


def write_video(
    recording: Recording | str | Path,
    path: str | Path,
    town: int = 0,
    fps: float = 8.0,
    level: Any = None,
    force: bool = False,
) -> int:
    """Render town `town` of `recording` at every tick (0 to the end) into `path` (.mp4 or
    .gif); returns the number of frames. The replay verifies every checksum on the way. The
    video is written atomically: an existing file is replaced only with `force`, and one that
    cannot be written completely (a full disk) leaves nothing behind and raises OutputError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: the video must end in {' or '.join(FORMATS)}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    imageio = _imageio(suffix)
    check_output(path, force)
    if not isinstance(recording, Recording):
        recording = load_recording(recording)
    if not 0 <= town < recording.num_towns:
        raise ValueError(f"town {town} is not in [0, {recording.num_towns}) for {recording.path}")
    replayer = Replayer(recording, level=level, keep=False)

    def frames() -> Any:
        yield replayer.town.render("rgb_array", town)
        while replayer.tick < replayer.ticks:
            replayer.step()
            yield replayer.town.render("rgb_array", town)

    with atomic_output(path, force) as tmp:
        try:
            count = _write(imageio, tmp, suffix, frames(), fps)
        except RecordingError:  # the replay found the file tampered with: that, not the video
            raise
        except (RuntimeError, ValueError) as exc:  # the encoder's own failures (ffmpeg, Pillow)
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise OutputError(
                f"{path}: the video could not be written ({first}); nothing was replaced"
            ) from None
    return count


def _write(imageio: Any, tmp: Path, suffix: str, frames: Any, fps: float) -> int:
    count = 0
    if suffix == ".mp4":
        writer = imageio.get_writer(tmp, format="FFMPEG", fps=fps, macro_block_size=1)
        try:
            for frame in frames:
                writer.append_data(pad_frame(frame))
                count += 1
        finally:
            writer.close()
        _check_mp4(tmp, count)
    else:  # a GIF is for short clips: Pillow writes it from all the frames at once
        import imageio.v3 as iio

        stack = np.stack(list(frames))
        iio.imwrite(tmp, stack, extension=".gif", duration=1000 / fps, loop=0)
        count = len(stack)
    return count


def _check_mp4(path: Path, count: int) -> None:
    """ffmpeg may end without a word when its output cannot be written (a full disk): read the
    file back and count its frames, so that a truncated video is never reported as written."""
    import imageio_ffmpeg

    try:
        found, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, ValueError) as exc:
        raise OSError(f"the encoded video does not read back ({brief(exc)})") from None
    if found != count:
        raise OSError(f"the encoded video holds {found} of {count} frames")


__all__ = ["FORMATS", "VideoDependencyError", "pad_frame", "write_video"]

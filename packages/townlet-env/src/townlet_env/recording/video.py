"""Videos of a recording: replay it (verifying its checksums) and write one town's `rgb_array`
picture of every tick to an .mp4 (imageio + imageio-ffmpeg) or a .gif (imageio + Pillow).

imageio is an optional dependency: `pip install 'townlet-env[video]'`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from townlet_env.recording.format import Recording, load_recording
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
) -> int:
    """Render town `town` of `recording` at every tick (0 to the end) into `path` (.mp4 or
    .gif); returns the number of frames. The replay verifies every checksum on the way."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: the video must end in {' or '.join(FORMATS)}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    imageio = _imageio(suffix)
    if not isinstance(recording, Recording):
        recording = load_recording(recording)
    if not 0 <= town < recording.num_towns:
        raise ValueError(f"town {town} is not in [0, {recording.num_towns}) for {recording.path}")
    replayer = Replayer(recording, level=level, keep=False)
    path.parent.mkdir(parents=True, exist_ok=True)

    def frames() -> Any:
        yield replayer.town.render("rgb_array", town)
        while replayer.tick < replayer.ticks:
            replayer.step()
            yield replayer.town.render("rgb_array", town)

    count = 0
    if suffix == ".mp4":
        writer = imageio.get_writer(path, format="FFMPEG", fps=fps, macro_block_size=1)
        try:
            for frame in frames():
                writer.append_data(pad_frame(frame))
                count += 1
        finally:
            writer.close()
    else:  # a GIF is for short clips: Pillow writes it from all the frames at once
        import imageio.v3 as iio

        stack = np.stack(list(frames()))
        iio.imwrite(path, stack, extension=".gif", duration=1000 / fps, loop=0)
        count = len(stack)
    return count


__all__ = ["FORMATS", "VideoDependencyError", "pad_frame", "write_video"]

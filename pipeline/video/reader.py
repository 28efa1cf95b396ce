"""One small video-reader interface: decord first, PyAV when decord fails on a file.

Both readers give the same three things: stream facts (frame count, fps, size), a
low-resolution pass over every frame as luma (for frame differences), and chosen
frames at full size as RGB. Which reader served a file is recorded by the caller.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qfeat.errors import ItemError

# what `qfeat predict` takes from a folder or glob for video runs
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")

# What a video's header may declare before any frame is decoded. A frame above
# MAX_FRAME_PIXELS (twice 8K UHD) or a stream longer than MAX_FRAMES frames or
# MAX_SECONDS is refused as a per-item error row: the low-resolution pass decodes every
# frame, so a header claiming days of video (or a 16000x16000 frame) would otherwise hold
# a worker for hours or exhaust its memory.
MAX_FRAME_PIXELS = 2 * 7680 * 4320
MAX_FRAMES = 100_000
MAX_SECONDS = 6 * 3600.0

log = logging.getLogger(__name__)


class VideoError(ItemError):
    """A file that cannot be read as a video; ``kind`` is the error row's status."""


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    width: int  # as displayed (rotation applied)
    height: int

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps if self.fps > 0 else 0.0


def lowres_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(w, h) with the short side ``short_side`` and even dimensions."""
    scale = short_side / max(1, min(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB frames ``[..., 3]`` as float32 in 0–255."""
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


@contextmanager
def native_stderr_to_log():
    """Route what C libraries write straight to file descriptor 2 (decord's ``ERROR
    opening`` lines, FFmpeg's ``moov atom not found``) into the debug log for the
    duration: the failure reaches the user once, as an error row or a PyAV fallback,
    not as stray lines in qfeat's output."""
    try:
        fd = sys.__stderr__.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        sys.__stderr__.flush()
        saved = os.dup(fd)
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            said = sink.read().decode("utf-8", "replace").strip()
            if said:
                log.debug("video library output: %s", said)


class DecordReader:
    name = "decord"

    def __init__(self, path: Path):
        from decord import VideoReader

        self.path = path
        with native_stderr_to_log():
            self._vr = VideoReader(str(path))
            first = self._vr[0].shape if len(self._vr) else (0, 0, 3)
        self.info = VideoInfo(len(self._vr), float(self._vr.get_avg_fps()), first[1], first[0])

    def lowres_luma(self, short_side: int) -> np.ndarray:
        from decord import VideoReader

        w, h = lowres_size(self.info.width, self.info.height, short_side)
        with native_stderr_to_log():
            vr = VideoReader(str(self.path), width=w, height=h)
            frames = vr.get_batch(list(range(len(vr)))).asnumpy()
        if frames.shape[1:] != (h, w, 3):  # decord mis-sizes some resolutions
            raise RuntimeError(f"decord returned {frames.shape[1:]} for {w}x{h}")
        return to_luma(frames)

    def frames(self, indices: list[int]) -> np.ndarray:
        with native_stderr_to_log():
            return self._vr.get_batch(list(indices)).asnumpy()


class PyAVReader:
    name = "pyav"

    def __init__(self, path: Path):
        import av

        self.path = path
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise VideoError("no_video", f"{path.name} has no video stream")
                stream = container.streams.video[0]
                fps = float(stream.average_rate or stream.guessed_rate or 0)
                width, height = stream.codec_context.width, stream.codec_context.height
                n = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        except VideoError:
            raise
        except Exception as exc:  # noqa: BLE001 - any demuxer failure
            raise VideoError("decode_error", f"{path.name}: {exc}") from exc
        self._rotation = self._rotation_of(path)
        if self._rotation in (90, 270):
            width, height = height, width
        self.info = VideoInfo(n, fps, width, height)

    @staticmethod
    def _rotation_of(path: Path) -> int:
        import av

        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    return int(round(getattr(frame, "rotation", 0) or 0)) % 360
        except Exception:  # noqa: BLE001
            return 0
        return 0

    def _decode(self, keep, size: tuple[int, int] | None):
        import av

        out = {}
        with av.open(str(self.path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if keep(i):
                    img = frame.to_ndarray(format="rgb24")
                    img = np.rot90(img, k=self._rotation // 90) if self._rotation else img
                    if size is not None:
                        from PIL import Image

                        img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(size))
                    out[i] = np.ascontiguousarray(img)
        return out

    def lowres_luma(self, short_side: int) -> np.ndarray:
        size = lowres_size(self.info.width, self.info.height, short_side)
        decoded = self._decode(lambda i: True, size)
        if not decoded:
            raise VideoError("no_frames", f"{self.path.name}: no decodable video frame")
        return to_luma(np.stack([decoded[i] for i in sorted(decoded)]))

    def frames(self, indices: list[int]) -> np.ndarray:
        wanted = set(indices)
        decoded = self._decode(lambda i: i in wanted, None)
        missing = wanted - set(decoded)
        if missing:
            raise VideoError(
                "decode_error", f"{self.path.name}: frames {sorted(missing)[:5]} missing"
            )
        return np.stack([decoded[i] for i in indices])


def check_header(path: Path) -> None:
    """Refuse, before decoding, a video whose header declares an absurd frame size or
    length (see MAX_FRAME_PIXELS, MAX_FRAMES, MAX_SECONDS). Only the container's stream
    facts are read; a file PyAV cannot open at all is left to the readers' own errors."""
    import av

    try:
        with native_stderr_to_log(), av.open(str(path)) as container:
            if not container.streams.video:
                return
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            frames = int(stream.frames or 0)
            seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
            if not seconds and container.duration:
                seconds = container.duration / 1e6
            rate = float(stream.average_rate or 0)
            if frames and rate > 0:  # what the readers will report: frames over their fps
                seconds = max(seconds, frames / rate)
    except Exception:  # noqa: BLE001 - not openable: the readers say why
        return
    fix = "re-encode or re-mux it (ffmpeg -i in -c:v libx264 out.mp4) or leave it out"
    if width * height > MAX_FRAME_PIXELS:
        raise VideoError(
            "too_large",
            f"{path.name}: its header declares {width}x{height} frames "
            f"({width * height / 1e6:.0f} M pixels), above qfeat's limit of "
            f"{MAX_FRAME_PIXELS / 1e6:.0f} M; {fix}",
        )
    if frames > MAX_FRAMES or seconds > MAX_SECONDS:
        raise VideoError(
            "too_long",
            f"{path.name}: its header declares {frames} frames over {seconds:.0f} s, "
            f"above qfeat's limits of {MAX_FRAMES} frames and {MAX_SECONDS / 3600:.0f} h; "
            f"{fix}",
        )


def open_video(path: Path, prefer: str = "decord"):
    """A reader for ``path``: decord when it works on the file, PyAV otherwise."""
    path = Path(path)
    if not path.is_file():
        raise VideoError("missing", f"{path} does not exist")
    if path.stat().st_size == 0:
        raise VideoError("empty_file", f"{path.name} is empty (0 bytes)")
    check_header(path)
    if prefer == "decord":
        try:
            reader = DecordReader(path)
            if reader.info.n_frames > 0:
                return reader
        except Exception as exc:  # noqa: BLE001 - decord raises its own error types
            log.debug("decord failed on %s (%s); using PyAV", path, exc)
    reader = PyAVReader(path)
    if reader.info.n_frames == 0:
        raise VideoError("no_frames", f"{path.name}: no video frames")
    return reader


def read_video(path: Path, op):
    """``(op(reader), reader)`` with decord first; when decord fails inside ``op`` (not
    with a VideoError, which is about the file itself), the same ``op`` runs on PyAV."""
    path = Path(path)
    reader = open_video(path)
    try:
        return op(reader), reader
    except VideoError:
        raise
    except Exception as exc:  # noqa: BLE001 - decord trouble: decode with PyAV instead
        if isinstance(reader, PyAVReader):
            raise VideoError("decode_error", f"{path.name}: {exc}") from exc
        log.debug("decord failed reading %s (%s); using PyAV", path, exc)
        reader = PyAVReader(path)
        return op(reader), reader

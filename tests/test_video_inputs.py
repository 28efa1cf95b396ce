"""The frames stage on real containers and codecs, odd videos and bad files."""

from __future__ import annotations

import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from qfeat.pipeline.config import load_preset
from qfeat.pipeline.demo.videos import encode_mp4
from qfeat.pipeline.stages.frames import FramesStage

REPO = Path(__file__).resolve().parents[1]


def encode(path: Path, fmt: str, codec: str, frames: list[np.ndarray], pts: list[int] | None = None,
           time_base: Fraction = Fraction(1, 10)) -> Path:  # fmt: skip
    with av.open(str(path), "w", format=fmt) as c:
        stream = c.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = (
            frames[0].shape[1],
            frames[0].shape[0],
            "yuv420p",
        )
        stream.codec_context.time_base = time_base
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error"}
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = (pts[i] if pts else i), time_base
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return path


def ramp(n: int = 12, h: int = 64, w: int = 64) -> list[np.ndarray]:
    return [np.full((h, w, 3), (15 * i) % 240, np.uint8) for i in range(n)]


def run_frames(paths: list[Path], **cfg) -> dict[str, dict]:
    stage = FramesStage({**load_preset("tiny")["frames"], **cfg})
    items = [{"item_id": p.name, "path": str(p)} for p in paths]
    table, _ = stage.process_shard(items)
    return {r["item_id"]: r for r in table.to_pylist()}


@pytest.mark.parametrize(
    "name, fmt, codec",
    [
        ("h264.mp4", "mp4", "libx264"),
        ("h264.mkv", "matroska", "libx264"),
        ("vp9.webm", "webm", "libvpx-vp9"),
        ("mpeg4.avi", "avi", "mpeg4"),
        ("h264.mov", "mov", "libx264"),
        ("hevc.mp4", "mp4", "libx265"),
    ],
)
def test_containers_and_codecs(tmp_path, name, fmt, codec):
    path = encode(tmp_path / name, fmt, codec, ramp())
    row = run_frames([path])[name]
    assert row["status"] == "ok", row["error"]
    assert (row["n_frames"], row["width"], row["height"]) == (12, 64, 64)
    assert row["fps"] == pytest.approx(10.0, rel=0.05)
    assert len(row["indices"]) == 8 and len(row["diff"]) == 12
    assert row["diff"][1] == pytest.approx(15.0, abs=3.0)  # luma steps of 15 per frame


def test_variable_frame_rate(tmp_path):
    pts = [0, 40, 80, 200, 220, 240, 500, 520, 540, 900, 910, 920]  # ms
    path = encode(tmp_path / "vfr.mkv", "matroska", "libx264", ramp(), pts, Fraction(1, 1000))
    row = run_frames([path])["vfr.mkv"]
    assert row["status"] == "ok" and row["n_frames"] == 12


def _rotate_90(path: Path) -> None:
    """Write a 90-degree display matrix into the MP4's track header (as phones do)."""
    data = bytearray(path.read_bytes())
    matrix = data.index(b"tkhd") + 4 + 40
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def test_rotated_video_reports_display_size(tmp_path):
    frames = ramp(h=32, w=64)
    path = encode(tmp_path / "phone.mp4", "mp4", "libx264", frames)
    _rotate_90(path)
    row = run_frames([path])["phone.mp4"]
    assert row["status"] == "ok"
    assert (row["width"], row["height"]) == (32, 64)


def test_fallback_reader_when_decord_fails(tmp_path, monkeypatch):
    import qfeat.pipeline.video.reader as reader

    path = encode(tmp_path / "x.mp4", "mp4", "libx264", ramp())

    class Broken:
        def __init__(self, path):
            raise RuntimeError("decord cannot open this")

    monkeypatch.setattr(reader, "DecordReader", Broken)
    row = run_frames([path])["x.mp4"]
    assert row["status"] == "ok" and row["reader"] == "pyav"


def test_abrupt_changes_are_picked_by_difference(tmp_path):
    cuts = [5, 13, 22, 30, 37, 46, 55, 60]  # one cut inside each of 8 segments of 8 frames
    rng = np.random.default_rng(0)
    frames, level = [], rng.integers(0, 255, 3)
    for i in range(64):
        if i in cuts:
            level = rng.integers(0, 255, 3)
        frames.append(np.broadcast_to(level.astype(np.uint8), (64, 64, 3)).copy())
    path = tmp_path / "cuts.mp4"
    encode_mp4(path, frames, crf=18)
    assert run_frames([path])["cuts.mp4"]["indices"] == cuts
    uniform = run_frames([path], strategy="uniform")["cuts.mp4"]["indices"]
    assert uniform != cuts


def test_bad_inputs_become_error_rows(tmp_path):
    good = encode(tmp_path / "good.mp4", "mp4", "libx264", ramp(24))
    data = good.read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 5])
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "readme.mp4").write_text("not a video at all\n")
    with av.open(str(tmp_path / "audio.mp4"), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            c.mux(packet)
    names = ["good", "empty", "truncated", "corrupt", "readme", "audio", "missing"]
    rows = run_frames([tmp_path / f"{n}.mp4" for n in names])
    assert rows["good.mp4"]["status"] == "ok"
    expected = {"empty": "empty_file", "audio": "no_video", "missing": "missing"}
    for name in names[1:]:
        row = rows[f"{name}.mp4"]
        if name == "truncated" and row["status"] == "ok":
            continue  # the first fifth of a file may decode: what decodes is used
        assert row["status"] != "ok", name
        assert row["error"], name
        if name in expected:
            assert row["status"] == expected[name]


def absurdly_long(good: Path, path: Path) -> Path:
    """``good`` with its first time-to-sample delta set to 2**31 - 1: the header now says
    the frames span days (fps ~1e-5); the frames themselves are unchanged."""
    data = bytearray(good.read_bytes())
    stts = data.find(b"stts")
    struct.pack_into(">I", data, stts + 16, 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    return path


def absurdly_large(path: Path, side: int = 16000) -> Path:
    """A 16x16 rawvideo AVI whose headers (avih and the stream's BITMAPINFOHEADER) declare
    ``side`` x ``side`` frames: under FFmpeg's own size limit, far over qfeat's."""
    with av.open(str(path), "w", format="avi") as c:
        stream = c.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        for k in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 50 * k, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                c.mux(packet)
    data = bytearray(path.read_bytes())
    avih, strf = data.find(b"avih"), data.find(b"strf")
    struct.pack_into("<II", data, avih + 8 + 32, side, side)
    struct.pack_into("<ii", data, strf + 8 + 4, side, side)
    path.write_bytes(bytes(data))
    return path


def zero_frames(path: Path) -> Path:
    """An AVI with a 32x32 MJPEG video stream and not one frame in it."""
    with av.open(str(path), "w", format="avi") as c:
        stream = c.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        c.start_encoding()  # writes the header although no packet follows
        for packet in stream.encode():
            c.mux(packet)
    return path


def test_absurd_headers_and_zero_frames_become_error_rows(tmp_path):
    """Issue 22: a header declaring days of video or 16000x16000 frames is refused from
    the header, before any decoding, and the items around it are computed."""
    good = encode(tmp_path / "good.mp4", "mp4", "libx264", ramp(12))
    paths = [
        good,
        absurdly_long(good, tmp_path / "days.mp4"),
        absurdly_large(tmp_path / "huge.avi"),
        zero_frames(tmp_path / "zero.avi"),
        encode(tmp_path / "after.mp4", "mp4", "libx264", ramp(10)),
    ]
    rows = run_frames(paths)
    status = {name: (row["status"], row["error"]) for name, row in rows.items()}
    assert status["good.mp4"] == status["after.mp4"] == ("ok", None)
    assert status["days.mp4"][0] == "too_long"
    assert "days.mp4" in status["days.mp4"][1] and "ffmpeg" in status["days.mp4"][1]
    assert status["huge.avi"][0] == "too_large" and "16000x16000" in status["huge.avi"][1]
    assert status["zero.avi"][0] == "no_frames" and "zero.avi" in status["zero.avi"][1]
    for name in ("days.mp4", "huge.avi", "zero.avi"):
        assert rows[name]["indices"] is None and rows[name]["n_frames"] is None


def test_header_limits_are_what_the_guard_applies(tmp_path, monkeypatch):
    """The limits are the module's constants: a plain 64x64 video is refused once they
    are lowered below it, so the guard reads the real header, not a fixed answer."""
    import qfeat.pipeline.video.reader as reader

    good = encode(tmp_path / "plain.mp4", "mp4", "libx264", ramp(12))
    assert run_frames([good])["plain.mp4"]["status"] == "ok"
    monkeypatch.setattr(reader, "MAX_FRAME_PIXELS", 64 * 64 - 1)
    assert run_frames([good])["plain.mp4"]["status"] == "too_large"
    monkeypatch.setattr(reader, "MAX_FRAME_PIXELS", 64 * 64)
    monkeypatch.setattr(reader, "MAX_FRAMES", 11)
    assert run_frames([good])["plain.mp4"]["status"] == "too_long"


# VmHWM (peak RSS of this process image) rather than getrusage: ru_maxrss survives exec
# and would report the parent pytest's size.
MEMORY_PROBE = """
import sys
from pathlib import Path
from qfeat.pipeline.config import load_preset
from qfeat.pipeline.stages.frames import FramesStage
stage = FramesStage(load_preset("tiny")["frames"])
table, _ = stage.process_shard([{"item_id": "4k", "path": sys.argv[1]}])
row = table.to_pylist()[0]
assert row["status"] == "ok", row["error"]
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(row["width"], row["height"], int(hwm) // 1024)
"""


def test_4k_video_low_memory(tmp_path):
    frames = [np.full((2160, 3840, 3), 20 * i, np.uint8) for i in range(10)]
    path = tmp_path / "uhd.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    del frames
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    width, height, peak_mb = map(int, out)
    assert (width, height) == (3840, 2160)
    # 10 full RGB 4K frames alone would be 250 MB; the low-resolution pass stays far below
    assert peak_mb < 900, peak_mb


def test_decord_and_ffmpeg_lines_do_not_leak_into_the_output(tmp_path):
    """Issue 23.8: decord's C-level `ERROR opening` (and FFmpeg's own lines) reached the
    terminal beside qfeat's error row."""
    import subprocess
    import sys

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage, not a video")
    code = (
        "from pathlib import Path\n"
        "from qfeat.pipeline.video.reader import VideoError, open_video\n"
        f"try:\n    open_video(Path({str(bad)!r}))\n"
        "except VideoError as exc:\n    print('row:', exc.kind)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "row:" in done.stdout, done.stderr
    assert "ERROR opening" not in done.stderr and "moov atom" not in done.stderr, done.stderr

"""The built-in demo sets: deterministic bytes, required variety, sensible scores."""

from __future__ import annotations

import csv
import hashlib
import time
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from qfeat.errors import DatasetError
from qfeat.pipeline.datasets import open_dataset
from qfeat.pipeline.demo import images, videos
from qfeat.pipeline.demo.common import generated_version, is_generated, write_atomically
from qfeat.pipeline.stages.clip import squash


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def rows(root: Path) -> list[dict[str, str]]:
    with open(root / "mos.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def demo_images(demo_image_data) -> Path:
    return demo_image_data  # the session's generated set (conftest)


@pytest.fixture(scope="module")
def demo_videos(demo_video_data) -> Path:
    return demo_video_data


def test_images_are_deterministic(demo_images, tmp_path):
    again = tmp_path / "demo"
    images.generate(again)
    assert digest(again) == digest(demo_images)


def test_image_variety_and_mos_rule(demo_images):
    table = rows(demo_images)
    assert len({r["content"] for r in table}) >= 24
    kinds = {r["distortion"] for r in table} - {"none"}
    assert kinds >= {"blur", "noise", "jpeg", "exposure"}
    by_level = defaultdict(list)
    for r in table:
        assert (demo_images / r["image"]).is_file()
        by_level[(r["distortion"], int(r["level"]))].append(float(r["mos"]))
    for kind in kinds:
        assert sorted({lv for k, lv in by_level if k == kind}) == [1, 2, 3, 4, 5]
        means = [np.mean(by_level[(kind, lv)]) for lv in range(1, 6)]
        assert all(a > b for a, b in zip(means, means[1:], strict=False)), (kind, means)
    refs = by_level[("none", 0)]
    assert min(refs) > max(by_level[("blur", 5)])
    assert all(1.0 <= float(r["mos"]) <= 5.0 for r in table)


def test_image_distortions_change_pixels(demo_images):
    from PIL import Image

    ref = np.asarray(Image.open(demo_images / "images/checker-b_ref.png"), dtype=float)
    errors = [
        np.abs(np.asarray(Image.open(demo_images / f"images/checker-b_noise{lv}.png")) - ref).mean()
        for lv in (1, 3, 5)
    ]
    assert 0 < errors[0] < errors[1] < errors[2]


def test_video_variety_and_decoding(demo_videos):
    table = rows(demo_videos)
    assert len(table) >= 48 and len({r["content"] for r in table}) >= 12
    assert {r["distortion"] for r in table} - {"none"} == {
        "blur",
        "noise",
        "compression",
        "stutter",
    }
    assert len({r["level"] for r in table if r["distortion"] == "compression"}) >= 3
    with av.open(str(demo_videos / "videos/ball_ref.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    assert len(frames) == videos.N_FRAMES and frames[0].shape == (96, 96, 3)
    labels = (demo_videos / "labels.txt").read_text().splitlines()
    assert len(labels) == len(table) and labels[0].startswith("videos/ball_ref.mp4, 2, 16, ")


def _frame_diffs(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="gray").astype(float) for f in c.decode(video=0)]
    return np.array([np.abs(a - b).mean() for a, b in zip(frames[1:], frames, strict=False)])


def test_stutter_holds_frames(demo_videos):
    ref, stutter = (_frame_diffs(demo_videos / f"videos/ball_{k}.mp4") for k in ("ref", "stutter3"))
    still = stutter < 0.5
    assert still.sum() >= len(stutter) * 0.75  # 7 of every 8 frames repeat
    assert (ref < 0.5).sum() < len(ref) * 0.25


def _detail_energy(path: Path) -> tuple[float, float]:
    """(luma, chroma) Laplacian energy of a clip as the tiny preset's clip stage sees it
    (every 4th frame squashed to 32x32, bilinear)."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)][::4])
    x = squash(frames, (32, 32), (0.0,) * 3, (1.0,) * 3, "bilinear").astype(np.float64)

    def energy(plane: np.ndarray) -> float:
        lap = plane[:, 1:-1, :-2] + plane[:, 1:-1, 2:] + plane[:, :-2, 1:-1] + plane[:, 2:, 1:-1]
        return float(((lap - 4 * plane[:, 1:-1, 1:-1]) ** 2).mean())

    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    return energy((r + g + b) / 3), energy(r - g) + energy(b - (r + g) / 2)


def test_video_distortions_survive_the_tiny_input(demo_videos):
    """What makes demo-video learnable at the tiny preset's 32x32 input: clean clips of all
    contents carry similar fine detail, blur removes it, and colour noise (3-pixel grain)
    is still there after x264 and the 96 -> 32 downscale."""
    contents = videos.CONTENTS
    energy = {
        (c, k): _detail_energy(demo_videos / f"videos/{c}_{k}.mp4")
        for c in contents
        for k in ("ref", "blur2", "noise2")
    }
    ref_luma = [energy[c, "ref"][0] for c in contents]
    assert max(ref_luma) < 2 * min(ref_luma)
    for c in contents:
        (luma, chroma), blur, noise = energy[c, "ref"], energy[c, "blur2"], energy[c, "noise2"]
        assert blur[0] < 0.3 * luma, c
        assert noise[1] > 2 * chroma and noise[1] > 2 * max(ref_luma), c


def test_adapter_generates_on_first_use_only(isolated_dirs, demo_videos):
    """Generated on first use only, and deterministic: the same bytes as the session's set."""
    adapter = open_dataset("demo-video")
    adapter.prepare()
    assert digest(adapter.root) == digest(demo_videos)
    marker = adapter.root / ".qfeat-demo.json"
    stamp = marker.stat().st_mtime_ns
    adapter.prepare()
    assert marker.stat().st_mtime_ns == stamp
    assert len(adapter.list_items().items) == 156


def test_demo_refuses_to_overwrite_foreign_folder(tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    (root / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not generated by qfeat"):
        open_dataset("demo", root).prepare()
    assert (root / "mine.txt").read_text() == "keep me"


def test_interrupted_generation_leaves_nothing(tmp_path):
    def build(tmp: Path) -> int:
        (tmp / "half.png").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "demo", build)
    assert [p.name for p in tmp_path.iterdir()] == [".demo.lock"]  # the lock file only


def _slow_build(args):
    root, log = map(Path, args)

    def build(tmp: Path) -> int:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        (tmp / "a.txt").write_text("a")
        return 7

    return write_atomically(root, build, version=3)


def test_two_first_uses_at_once_generate_once(tmp_path):
    """Issue 24.4: the second of two runs generating a demo set at once crashed with
    `Directory not empty`; now it waits and keeps the first one's set."""
    import multiprocessing

    jobs = [(str(tmp_path / "demo"), str(tmp_path / "log"))] * 2
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(_slow_build, jobs) == [7, 7]
    assert (tmp_path / "log").read_text() == "built\n" and is_generated(tmp_path / "demo", 3)


def test_older_generator_version_is_regenerated(tmp_path):
    """A set qfeat made with an older generator is replaced; the marker records the new one."""
    root = tmp_path / "demo"
    write_atomically(root, lambda tmp: (tmp / "old.txt").write_text("v1") and 1, version=1)
    assert generated_version(root) == 1 and not is_generated(root, version=2)
    write_atomically(root, lambda tmp: (tmp / "new.txt").write_text("v2") and 1, version=2)
    assert is_generated(root, version=2)
    assert sorted(p.name for p in root.iterdir()) == [".qfeat-demo.json", "new.txt"]

"""`qfeat features` / `qfeat stage`: end to end on the demo data, resume, failing items,
changed media and the checks before any work (the faults: test_runner_faults.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from qfeat.cache.items import read_items
from qfeat.cache.reader import open_stage
from qfeat.pipeline.demo import videos
from tests.runner_helpers import FRAMES, features_args, free_port, markers


@pytest.fixture(scope="module")
def video_root(demo_video_data) -> Path:
    """The session's demo-video set (read-only; tests that change files copy it)."""
    return demo_video_data


def test_features_end_to_end_and_resume(qfeat, video_root, tmp_path):
    cache = tmp_path / "cache"
    result = qfeat(*features_args(video_root, cache))
    assert result.exit_code == 0, result.output
    stage = open_stage(cache, "demo-video", "frames")
    table = stage.table()
    assert stage.complete and len(table) == 24 and table["item_id"].is_unique
    assert (table["status"] == "ok").all()
    assert all(len(ix) == 8 for ix in table["indices"])
    assert set(table["reader"]) <= {"decord", "pyav"} and (table["n_frames"] == 32).all()
    assert "frames" in result.output and "24" in result.output  # the summary table
    assert read_items(cache, "demo-video")["item_id"].tolist() == table["item_id"].tolist()
    before = markers(stage.dir)
    again = qfeat(*features_args(video_root, cache))
    assert again.exit_code == 0 and "6 shards already done" in again.output
    assert markers(stage.dir) == before  # nothing recomputed


def test_media_file_changed_in_place_reruns_only_its_shards(qfeat, video_root, tmp_path):
    """A clip replaced under the same name (same item list, so the same fingerprint) is
    noticed by its size and mtime: its shard runs again in every stage, the others not."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(video_root, root)
    cache = tmp_path / "cache"
    args = ["features", "demo-video", "--root", str(root), "--cache-dir", str(cache),
            "--limit", "8", "--shard-size", "4", "--workers", "1"]  # fmt: skip
    assert qfeat(*args).exit_code == 0
    dirs = {s: open_stage(cache, "demo-video", s).dir for s in ("frames", "clip")}
    before = {s: markers(d) for s, d in dirs.items()}
    table = open_stage(cache, "demo-video", "frames").table()
    first = root / table["item_id"][0]
    assert list(table["indices"][0]) != list(table["indices"][5])
    shutil.copyfile(root / table["item_id"][5], first)  # another clip under the first's name
    again = qfeat(*args)
    assert again.exit_code == 0, again.output
    for stage, folder in dirs.items():
        after = markers(folder)
        assert after["shard-00001.done.json"] == before[stage]["shard-00001.done.json"]
        assert after["shard-00000.done.json"] != before[stage]["shard-00000.done.json"], stage
    frames = open_stage(cache, "demo-video", "frames").table()
    assert list(frames["indices"][0]) == list(frames["indices"][5])  # new content was read


def test_trainers_read_the_configuration_run_last(qfeat, video_root, tmp_path):
    """Two frame samplers side by side in one cache: the one whose `qfeat features` run
    completed last is what readers (the trainers) get, even if it was computed first."""
    cache = tmp_path / "cache"
    args = ["features", "demo-video", "--root", str(video_root), "--cache-dir", str(cache),
            "--limit", "4", "--workers", "1", "--stages", "frames"]  # fmt: skip
    fingerprints = {}
    for strategy in ("uniform", "difference", "uniform"):
        result = qfeat(*args, "--set", f"frames.strategy={strategy}")
        assert result.exit_code == 0, result.output
        stage = open_stage(cache, "demo-video", "frames")
        assert stage.manifest["config"]["strategy"] == strategy
        fingerprints.setdefault(strategy, stage.fingerprint)
    assert len(set(fingerprints.values())) == 2  # both kept, the first one reused


def test_same_command_same_values(qfeat, video_root, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    mixed = ("--set", "frames.strategy=mixed")
    for cache in (first, second):
        result = qfeat(*features_args(video_root, cache, *FRAMES, *mixed))
        assert result.exit_code == 0, result.output
    a, b = (open_stage(c, "demo-video", "frames") for c in (first, second))
    assert a.fingerprint == b.fingerprint
    # the generator version is fingerprinted: a regenerated demo set gets new caches
    assert a.manifest["dataset"]["data_version"] == videos.VERSION
    ta, tb = a.table(), b.table()
    assert ta["indices"].map(list).tolist() == tb["indices"].map(list).tolist()
    for x, y in zip(ta["diff"], tb["diff"], strict=True):
        np.testing.assert_array_equal(x, y)


def test_bad_items_become_error_rows(qfeat, video_root, tmp_path):
    root = tmp_path / "mixed"
    (root / "clips").mkdir(parents=True)
    for name in ("ball_ref", "ball_blur2", "pan-stripes_noise1"):
        (root / "clips" / f"{name}.mp4").write_bytes(
            (video_root / "videos" / f"{name}.mp4").read_bytes()
        )
    good = (root / "clips" / "ball_ref.mp4").read_bytes()
    (root / "clips" / "truncated.mp4").write_bytes(good[: len(good) // 4])
    (root / "clips" / "empty.mp4").write_bytes(b"")
    (root / "clips" / "notes.mp4").write_text("this is not a video")
    _audio_only(root / "clips" / "audio.mp4")
    names = ["ball_ref", "truncated", "ball_blur2", "empty", "notes", "audio", "pan-stripes_noise1"]
    (root / "labels.txt").write_text(
        "".join(f"clips/{n}.mp4, 2, 16, {3 + i / 10}\n" for i, n in enumerate(names))
    )
    cache = tmp_path / "cache"
    result = qfeat("features", "labels", "--root", str(root), "--cache-dir", str(cache),
                   "--preset", "tiny", "--shard-size", "7", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    table = open_stage(cache, "mixed", "frames").table().set_index("item_id")
    assert len(table) == 7
    n_bad = int((table["status"] != "ok").sum())
    assert f"failed items per stage: frames {n_bad}, clip {n_bad} " in result.output
    ok = {f"clips/{n}.mp4" for n in ("ball_ref", "ball_blur2", "pan-stripes_noise1")}
    assert set(table.index[table["status"] == "ok"]) == ok
    bad = table[table["status"] != "ok"]
    assert bad.loc["clips/empty.mp4", "status"] == "empty_file"
    assert bad.loc["clips/audio.mp4", "status"] == "no_video"
    assert all(bad["error"].str.len() > 0)
    listed = json.loads(
        qfeat("cache", "errors", "mixed", "frames", "--cache-dir", str(cache), "--json").output
    )
    assert {r["item_id"] for r in listed} == set(bad.index)
    # a truncated file still yields what it has, or a readable error: never a crash
    assert table.loc["clips/truncated.mp4", "status"] in ("ok", "decode_error", "no_frames")


def _audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["features", "nosuch"], 2, "unknown dataset"),
        (
            ["features", "kadid", "--root", "/nonexistent/kadid", "--preset", "tiny"],
            1,
            "does not exist",
        ),
        (["features", "demo-video", "--stages", "regions"], 2, "do not apply"),
        (["features", "demo", "--stages", "text"], 1, "qfeat stage regions demo"),
        (["features", "demo-video", "--stages", "clip"], 1, "qfeat stage frames demo-video"),
        (["features", "demo-video", "--preset", "paper"], 1, "clip.pretrained"),
        (["features", "demo", "--preset", "paper"], 1, "regions.checkpoint"),
        (["features", "demo", "--preset", "paper", "--stages", "backbone"], 1, "backbone.weights"),
        (["features", "demo", "--preset", "paper", "--stages", "text"], 1, "text.pretrained"),
        (["features", "demo", "--set", "backbone.inputsize=3"], 2, "did you mean"),
        (["stage", "frames", "demo-video", "--set", "frames.strategy=best"], 2, "frames.strategy"),
        # every bad setting value is a usage error (exit 2), whichever stage it belongs to
        (["features", "demo-video", "--set", "frames.num_frames=0"], 2, "frames.num_frames"),
        (["features", "demo", "--set", "regions.pred_iou_thresh=2.0"], 2, "pred_iou_thresh"),
        (["features", "demo", "--set", "describe.margin=-0.5"], 2, "describe.margin"),
        (["features", "demo", "--set", "describe.mode=guess"], 2, "describe.mode"),
        (["features", "demo", "--device", "cuda"], 1, "no CUDA GPU"),
        (["features", "demo", "--workers", "0"], 2, "--workers"),
        (["features", "demo", "--limit", "-1"], 2, "--limit"),
        (["features", "demo", "--shard-size", "0"], 2, "--shard-size"),
    ],
)
def test_cannot_run_is_reported_before_work(qfeat, tmp_path, args, code, message):
    if "--device" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    result = qfeat(*args, "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "cache").exists()  # nothing was computed or written


def test_unreachable_scheduler(qfeat, tmp_path, video_root):
    port = free_port()
    result = qfeat(
        *features_args(video_root, tmp_path / "c"), "--scheduler", f"tcp://127.0.0.1:{port}"
    )
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler" in result.output


def test_stage_command_runs_one_stage(qfeat, video_root, tmp_path):
    cache = tmp_path / "cache"
    result = qfeat("stage", "frames", "demo-video", "--root", str(video_root), "--cache-dir",
                   str(cache), "--limit", "8", "--shard-size", "8", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(open_stage(cache, "demo-video", "frames").table()) == 8


def test_all_image_stages_on_demo_images(demo_images):
    """The session's image cache (48 items, 2 shards: describe and text read their
    upstream shard by shard) holds every stage, aligned."""
    cache, n = demo_images.cache, demo_images.limit
    for name in ("regions", "describe", "text", "backbone"):
        stage = open_stage(cache, "demo", name)
        table = stage.table()
        assert len(table) == n and (table["status"] == "ok").all(), name
        assert stage.shards_total == 2, name
    regions = open_stage(cache, "demo", "regions").table()
    describe = open_stage(cache, "demo", "describe").table()
    for r, d in zip(regions["region_id"], describe["region_id"], strict=True):
        assert list(r) == list(d)  # one description per region, same order
    mask = open_stage(cache, "demo", "text").array("mask")
    assert mask.sum() == sum(len(r) for r in regions["region_id"])
    stage = open_stage(cache, "demo", "backbone")
    feats = stage.array("features")
    assert feats.shape == (n, 64, 32, 32) and feats.dtype == np.float16
    assert np.isfinite(feats).all() and feats.astype(np.float64).std() > 0  # fp16 sums overflow


def test_retry_failed_reruns_only_shards_with_error_rows(qfeat, video_root, tmp_path):
    """Issue 21: a transient failure (here: a file broken, then restored with its old size
    and mtime, so nothing tells the planner) stays an error row; --retry-failed reruns the
    shards that hold error rows and keeps the others."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(video_root, root)
    cache = tmp_path / "cache"
    args = ["features", "demo-video", "--root", str(root), "--cache-dir", str(cache),
            "--limit", "8", "--shard-size", "4", "--workers", "1",
            "--stages", "frames"]  # fmt: skip
    first = sorted((root / "videos").glob("*.mp4"))[0]
    good, stat = first.read_bytes(), first.stat()

    def put(data: bytes) -> None:
        first.write_bytes(data)
        os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    put(b"\0" * len(good))  # broken, same size and mtime
    assert qfeat(*args).exit_code == 0
    put(good)  # fixed, same size and mtime: invisible to the planner
    folder = open_stage(cache, "demo-video", "frames").dir
    before = markers(folder)
    assert qfeat(*args).exit_code == 0
    assert markers(folder) == before  # an ordinary run keeps the error row
    failed = open_stage(cache, "demo-video", "frames").errors()
    assert list(failed["item_id"]) == [f"videos/{first.name}"]
    retried = qfeat(*args, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    after = markers(folder)
    assert after["shard-00001.done.json"] == before["shard-00001.done.json"]
    assert after["shard-00000.done.json"] != before["shard-00000.done.json"]
    assert open_stage(cache, "demo-video", "frames").errors().empty

"""`qfeat predict` and `qfeat.load_run`: trained runs score new files with
their stages run live.

One small demo image cache + RSA run and one demo video cache + SCMA run per module.
The strongest check is that a file from the training cache gets, live, the raw head
output that training wrote to predictions.csv: the live stages are the cached stages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qfeat.cli.main import app
from qfeat.trainers.predict import KEYS, expand_paths, fit_mapping, load_run
from qfeat.trainers.runinfo import mos_range, normalise_score
from tests.fixtures.media import bomb_png

# Live raw outputs vs predictions.csv. The cache stores floating arrays as fp16; live
# prediction rounds its stage outputs to fp16 the same way, so the head sees the same
# inputs and only float32 summation order differs (measured ~1e-7 relative). Without
# that rounding the difference would be ~1e-3 relative, hence a tolerance well below it.
RTOL = 1e-4


def qfeat(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def same_results(a: list[dict], b: list[dict]) -> None:
    """Equal results, scores up to float rounding: a file scored in another chunk of
    files meets other batch sizes in the stages (CPU kernels round differently)."""
    assert [(r["path"], r["status"], r["error"]) for r in a] == [
        (r["path"], r["status"], r["error"]) for r in b
    ]
    for key in ("score", "score_01"):
        np.testing.assert_allclose([r[key] for r in a], [r[key] for r in b], rtol=1e-5, atol=1e-5)


def predict_json(*args) -> tuple[int, list[dict]]:
    result = qfeat("predict", *args, "--json", "--device", "cpu")
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def images(demo_images, rsa_run, tmp_path_factory) -> SimpleNamespace:
    run = rsa_run
    # inputs: a folder, a glob and explicit files, with a corrupt, an empty and a missing one
    inputs = tmp_path_factory.mktemp("predict-inputs")
    (inputs / "folder" / "deeper").mkdir(parents=True)
    data = demo_images.data / "images"
    shutil.copy(data / "checker-a_blur1.png", inputs / "folder" / "a.png")
    shutil.copy(data / "checker-b_noise2.png", inputs / "folder" / "deeper" / "b.png")
    (inputs / "folder" / "notes.txt").write_text("not an image: skipped in folders")
    (inputs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (inputs / "empty.jpg").write_bytes(b"")
    bomb_png(inputs / "bomb.png")
    preds = pd.read_csv(run / "predictions.csv")
    tests = [data.parent / i for i in preds[preds["split"] == "test@0"]["item_id"][:2]]
    args = [
        inputs / "folder",
        str(data / "checker-a_jpeg[12].png"),  # a quoted glob: expanded by qfeat
        *tests,
        inputs / "corrupt.png",
        inputs / "empty.jpg",
        inputs / "bomb.png",
        inputs / "missing.png",
    ]
    return SimpleNamespace(root=demo_images.root, run=run, args=args, tests=tests)


@pytest.fixture(scope="module")
def image_results(images) -> list[dict]:
    code, results = predict_json(images.run, *images.args)
    assert code == 1  # some files could not be scored; the rest are
    return results


def test_json_results(images, image_results):
    by_name = {Path(r["path"]).name: r for r in image_results}
    assert all(list(r) == list(KEYS) for r in image_results)
    assert list(by_name) == ["a.png", "b.png", "checker-a_jpeg1.png", "checker-a_jpeg2.png",
                             images.tests[0].name, images.tests[1].name, "corrupt.png",
                             "empty.jpg", "bomb.png", "missing.png"]  # fmt: skip
    for name, kind in (("corrupt.png", "decode_error"), ("empty.jpg", "empty_file"),
                       ("bomb.png", "too_large"), ("missing.png", "missing")):  # fmt: skip
        r = by_name[name]
        assert r["status"] == kind and r["score"] is None and r["score_01"] is None
        assert name in r["error"]
    good = [r for r in image_results if r["status"] == "ok"]
    assert len(good) == 6
    for r in good:
        assert r["error"] is None and np.isfinite(r["score"])
        assert 1.0 <= r["score"] <= 5.0  # the demo's MOS scale
        assert 0.0 <= r["score_01"] <= 1.0
        assert r["score_01"] == pytest.approx((r["score"] - 1.0) / 4.0)
    config = json.loads((images.run / "config.json").read_text())
    assert config["mos_range"] == {"min": 1.0, "max": 5.0, "higher_is_better": True}


def test_same_command_same_scores(images, image_results):
    code, again = predict_json(images.run, *images.args)
    assert code == 1 and again == image_results


def test_live_equals_cache_and_api_equals_cli(images, image_results):
    model = load_run(images.run, device="cpu")
    preds = pd.read_csv(images.run / "predictions.csv")
    statuses, raw = model.raw(images.tests)
    assert [s for s, _ in statuses] == ["ok", "ok"] and raw.shape == (2, 2)
    ids = [f"images/{p.name}" for p in images.tests]  # test items of split 0
    for split in range(2):
        rows = preds[preds["split"] == f"test@{split}"].set_index("item_id")
        if split == 0 or set(ids) <= set(rows.index):
            cached = rows.loc[ids, "pred"].to_numpy()
            np.testing.assert_allclose(raw[split], cached, rtol=RTOL, atol=1e-6)
    chunks: list[int] = []
    api = [r.as_dict() for r in model.score(images.tests, progress=chunks.append)]
    assert chunks == [2]  # one progress call per chunk, with its number of files
    cli = [r for r in image_results if Path(r["path"]) in set(images.tests)]
    same_results(api, cli)
    # all files scored: exit 0, and the table output
    result = qfeat("predict", images.run, *images.tests, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "scored 2, failed 0" in result.output


def test_run_name_under_runs_dir_and_no_files(images, tmp_path):
    code, results = predict_json(images.run.name, "--runs-dir", images.run.parent, images.tests[0])
    assert code == 0 and results[0]["status"] == "ok"
    (tmp_path / "none").mkdir()
    result = qfeat("predict", images.run, tmp_path / "none", str(tmp_path / "*.jpg"))
    assert result.exit_code == 2 and "no image files" in result.output


def test_ctrl_c_in_predict_is_one_line_and_exit_130(images, monkeypatch):
    """Issue 22: Ctrl-C while the models load or files are scored: one line, no
    traceback, exit 130 (nothing is written by predict, so the same command reruns)."""
    from qfeat.trainers import predict as predict_module

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_module, "load_run", ctrl_c)
    result = qfeat("predict", images.run, images.tests[0])
    assert result.exit_code == 130, result.output
    assert "interrupted: nothing was written; run the same command again" in result.output
    assert "Traceback" not in result.output


def test_a_video_given_to_an_image_run_fails_before_any_model(images, tmp_path, monkeypatch):
    """Issue 23.7: an .mp4 given to an image run was refused only after every model had
    been built (52 s)."""
    from qfeat.trainers import predict as predict_module

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(predict_module, "load_run", no_models)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    result = qfeat("predict", images.run, images.tests[0], clip)
    assert result.exit_code == 2
    assert "clip.mp4: not image files" in result.output and "scores images" in result.output


def test_refuses_a_different_model(images, tmp_path):
    copy = tmp_path / "changed"
    shutil.copytree(images.run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["stages"]["backbone"]["model"] = {"name": "resnet50", "sha256": "0" * 64}
    (copy / "config.json").write_text(json.dumps(config))
    result = qfeat("predict", copy, images.tests[0], "--device", "cpu")
    assert result.exit_code == 1
    assert "backbone stage's model differs" in result.output


@pytest.fixture(scope="module")
def videos(demo_videos, scma_run) -> SimpleNamespace:
    return SimpleNamespace(root=demo_videos.root, data=demo_videos.data, run=scma_run)


def test_scma_run_scores_videos(videos, tmp_path):
    preds = pd.read_csv(videos.run / "predictions.csv")
    test_ids = list(preds[preds["split"] == "test@1"]["item_id"][:2])
    folder = tmp_path / "clips"
    folder.mkdir()
    for item_id in test_ids:
        shutil.copy(videos.data / item_id, folder / Path(item_id).name)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "corrupt.mkv").write_bytes(b"\x1aE\xdf\xa3" + bytes(range(256)) * 8)
    code, results = predict_json(videos.run, folder)
    assert code == 1
    by_name = {Path(r["path"]).name: r for r in results}
    assert by_name["empty.mp4"]["status"] == "empty_file"
    assert by_name["corrupt.mkv"]["status"] not in ("ok", None)
    assert by_name["corrupt.mkv"]["error"] and by_name["corrupt.mkv"]["score"] is None
    for item_id in test_ids:
        r = by_name[Path(item_id).name]
        assert r["status"] == "ok" and 0.0 <= r["score_01"] <= 1.0
    # live = cache, and the API gives what the CLI printed
    model = load_run(videos.run, device="cpu")
    files = [folder / Path(i).name for i in test_ids]
    _, raw = model.raw(files)
    for split in range(2):
        rows = preds[preds["split"] == f"test@{split}"].set_index("item_id")
        if set(test_ids) <= set(rows.index):
            cached = rows.loc[test_ids, "pred"].to_numpy()
            np.testing.assert_allclose(raw[split], cached, rtol=RTOL, atol=1e-6)
    api = [r.as_dict() for r in model.score(files)]
    same_results(api, [by_name[f.name] for f in files])


def test_scma_run_builds_its_clip_model_once_and_runs_the_stage_without_adapters(
    videos, monkeypatch
):
    """The live clip stage and the adapters share one CLIP model (a PE-Core-L is 2.7 GB in
    fp32); the stage runs it as it ran for the cache: its every array, including the
    pooled features the adapted blocks would change, equals the cached one."""
    from qfeat.cache.reader import open_stage
    from qfeat.pipeline.models import clip_build

    built, build = [], clip_build.build_clip
    monkeypatch.setattr(clip_build, "build_clip", lambda *a, **k: built.append(a) or build(*a, **k))
    model = load_run(videos.run, device="cpu")
    assert len(built) == 1
    seen = []
    live_run = model.scorer.live.run
    monkeypatch.setattr(
        model.scorer.live, "run", lambda items: seen.append(live_run(items)) or seen[-1]
    )
    item_id = pd.read_csv(videos.run / "predictions.csv")["item_id"].iloc[0]
    statuses, raw = model.raw([videos.data / item_id])
    assert statuses == [("ok", None)] and np.all(np.isfinite(raw))
    clip = open_stage(videos.root / "cache", "demo-video", "clip")
    row = list(clip.table()["item_id"]).index(item_id)
    for name, live in seen[0]["clip"].arrays.items():
        cached = clip.array(name)[row].astype(np.float32)
        np.testing.assert_allclose(live[0].astype(np.float32), cached, rtol=2e-2, atol=2e-3,
                                   err_msg=name)  # fmt: skip


def test_older_scma_run_without_recorded_stages(videos, tmp_path):
    """Runs made before config.json recorded stages and mos_range: both come from the
    training cache (stage manifests, items.parquet), with the same scores."""
    copy = tmp_path / "old"
    shutil.copytree(videos.run, copy)
    config = json.loads((copy / "config.json").read_text())
    del config["stages"], config["mos_range"]
    (copy / "config.json").write_text(json.dumps(config))
    preds = pd.read_csv(videos.run / "predictions.csv")
    files = [videos.data / i for i in preds["item_id"][:1]]
    assert load_run(copy).score(files) == load_run(videos.run).score(files)


# -- pure helpers ----------------------------------------------------------------------


def test_mos_range_recovers_the_scale():
    mos = np.array([10.0, 35.0, 80.0])
    up = pd.DataFrame({"mos": mos, "mos_01": mos / 100})
    assert mos_range(up) == {"min": 0.0, "max": 100.0, "higher_is_better": True}
    down = pd.DataFrame({"mos": [1.5, 3.0, 4.5], "mos_01": [0.875, 0.5, 0.125]})
    assert mos_range(down) == {"min": 1.0, "max": 5.0, "higher_is_better": False}
    assert mos_range(pd.DataFrame({"mos": [2.0, 2.0], "mos_01": [0.5, 0.5]})) is None
    scale = {"min": 1.0, "max": 5.0, "higher_is_better": False}
    assert normalise_score(2.0, scale) == pytest.approx(0.75)
    assert normalise_score(9.0, {**scale, "higher_is_better": True}) == 1.0
    assert normalise_score(2.0, None) is None


def test_fit_mapping_is_monotonic_with_fallbacks():
    pred = np.linspace(-1, 1, 40)
    mos = 1 + 4 / (1 + np.exp(-3 * pred))
    logistic = fit_mapping(pred, mos)
    assert logistic.kind == "logistic"
    np.testing.assert_allclose(logistic(pred), mos, atol=1e-3)
    assert np.all(np.diff(logistic(np.linspace(-5, 5, 50))) >= 0)
    line = fit_mapping([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])  # too few points for 4 parameters
    assert line.kind == "linear" and line(np.array([1.5]))[0] == pytest.approx(2.5)
    assert line(np.array([10.0]))[0] == 3.5  # clipped: calibration MOS range + span / 4
    const = fit_mapping([0.3, 0.3, 0.3], [1.0, 2.0, 3.0])
    assert const.kind == "constant" and const(np.array([7.0]))[0] == 2.0


def test_expand_paths(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ("d/b.PNG", "d/a.jpg", "d/e/c.webp", "d/skip.txt", "x.mp4"):
        (tmp_path / name).write_bytes(b"x")
    images = (".jpg", ".png", ".webp")
    got = expand_paths([str(tmp_path / "d"), str(tmp_path / "d" / "*.jpg"), "nope.png"], images)
    assert [p.name for p in got] == ["a.jpg", "b.PNG", "c.webp", "nope.png"]
    got = expand_paths([str(tmp_path / "**" / "*.webp")], images)
    assert [p.name for p in got] == ["c.webp"]
    assert expand_paths([str(tmp_path / "*.gif")], images) == []


def test_expand_paths_does_not_follow_folder_links(tmp_path):
    """Issue 24.5: `dir/**/*.mp4` over a folder holding `loop -> .` and a link to an
    outside folder returned 122 results for 2 files (and two loops ran for minutes)."""
    videos = tmp_path / "dir"
    (videos / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    for path in (videos / "a.mp4", videos / "sub" / "b.mp4", outside / "c.mp4"):
        path.write_bytes(b"x")
    (videos / "loop").symlink_to(videos, target_is_directory=True)
    (videos / "sub" / "up").symlink_to(videos, target_is_directory=True)
    (videos / "out").symlink_to(outside, target_is_directory=True)
    (videos / "alias.mp4").symlink_to(videos / "a.mp4")
    for pattern in (str(videos / "**" / "*.mp4"), str(videos)):
        got = expand_paths([pattern], (".mp4",))
        assert sorted(p.name for p in got) == ["a.mp4", "b.mp4"], pattern

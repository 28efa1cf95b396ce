"""Every adapter against a fixture laid out like its official release."""

from __future__ import annotations

import json

import pytest

from qfeat.errors import OptionError
from qfeat.pipeline.datasets import REGISTRY, open_dataset, storage_name
from qfeat.pipeline.datasets.base import safe_relative_path
from qfeat.pipeline.datasets.check import check_dataset
from tests.fixtures import layouts

OFFICIAL = [n for n in layouts.BUILDERS if n not in ("labels", "csv")]


@pytest.fixture(params=sorted(layouts.BUILDERS))
def built(request, tmp_path):
    name = request.param
    builder, options = layouts.BUILDERS[name]
    root = tmp_path / name
    root.mkdir()
    return name, root, options, builder(root)


def test_every_adapter_has_a_fixture():
    assert set(layouts.BUILDERS) | {"demo", "demo-video"} == set(REGISTRY)


def test_listing_matches_release(built):
    name, root, options, expected = built
    adapter = open_dataset(name, root, options)
    listing = adapter.list_items()
    assert len(listing.items) == expected.items
    assert listing.items[0].item_id == expected.first_item_id
    assert {p.kind for p in listing.problems} == {"escapes_root", "bad_score"}
    assert len(listing.problems) == expected.rejected
    for item in listing.items:
        assert item.path == root / item.item_id
        assert not item.item_id.startswith(("/", "../")) and "/../" not in item.item_id
        assert 0.0 <= item.mos_01 <= 1.0
        assert item.group
    # every rejection names the item and the fix
    for problem in listing.problems:
        assert "fix" in problem.reason and problem.item_id in problem.reason


def test_check_report(built):
    name, root, options, expected = built
    report = check_dataset(open_dataset(name, root, options))
    assert report["name"] == name
    assert report["modality"] == REGISTRY[name].modality or name == "csv"
    assert report["items"] == expected.items
    assert report["missing"] == expected.missing
    assert report["unreadable"] == 0
    assert report["rejected"] == expected.rejected
    assert report["score_min"] == pytest.approx(expected.score_min)
    assert report["score_max"] == pytest.approx(expected.score_max)
    assert report["splits"] == expected.splits


def test_official_adapters_store_under_their_own_name(tmp_path):
    for name in OFFICIAL:
        adapter = open_dataset(name, tmp_path)
        assert storage_name(adapter) == name
        with pytest.raises(OptionError):
            storage_name(adapter, "other")


def test_generic_adapters_store_under_name(tmp_path):
    root = tmp_path / "my-videos"
    root.mkdir()
    adapter = open_dataset("labels", root)
    assert storage_name(adapter) == "my-videos"
    assert storage_name(adapter, "ugc-2026") == "ugc-2026"
    with pytest.raises(OptionError):
        storage_name(adapter, "a/b")


def test_koniq_splits_and_score_options(tmp_path):
    layouts.koniq(tmp_path, n_per_split=(14, 2, 4))
    items = open_dataset("koniq", tmp_path).list_items().items
    assert [i.split for i in items].count("train") == 14
    zscore = open_dataset("koniq", tmp_path, {"score": "MOS_zscore"}).list_items().items
    assert max(i.mos for i in zscore) > 5  # 0–100 scale
    by_id = {i.item_id: i.mos_01 for i in zscore}
    assert [by_id[i.item_id] for i in items] == pytest.approx([i.mos_01 for i in items], abs=1e-3)
    with pytest.raises(OptionError, match="MOS_zscore"):
        open_dataset("koniq", tmp_path, {"score": "c1"}).list_items()


def test_koniq_without_split_file_has_no_splits(tmp_path):
    layouts.koniq(tmp_path)
    (tmp_path / "koniq10k_distributions_sets.csv").unlink()
    assert {i.split for i in open_dataset("koniq", tmp_path).list_items().items} == {None}


def test_kadid_groups_by_reference(tmp_path):
    layouts.kadid(tmp_path)
    items = open_dataset("kadid", tmp_path).list_items().items
    groups = [i.group for i in items]
    assert groups == ["I01.png", "I01.png", "I02.png", "I02.png"]


def test_livec_training_images_option(tmp_path):
    layouts.livec(tmp_path)
    with_training = open_dataset("livec", tmp_path, {"training_images": "true"}).list_items()
    assert len(with_training.items) == 3 + 7
    assert with_training.items[0].item_id == "Images/trainingImages/t1.bmp"


def test_youtube_ugc_h264_layout(tmp_path):
    layouts.youtube_ugc(tmp_path)
    items = open_dataset("youtube-ugc", tmp_path, {"videos": "h264"}).list_items().items
    assert items[0].item_id == "original_videos_h264/Animation_1080P-05f8_crf_10_ss_00_t_20.0.mp4"


def test_konvid_older_attributes_release(tmp_path):
    meta = tmp_path / "KoNViD_1k_metadata"
    meta.mkdir()
    (meta / "KoNViD_1k_attributes.csv").write_text(
        "flickr_id,url,file_name,MOS,SD\n"
        "6947112934,http://x,6947112934_original_centercrop_960x540_8s.mp4,3.2,0.5\n"
    )
    items = open_dataset("konvid", tmp_path).list_items().items
    assert items[0].item_id == "KoNViD_1k_videos/6947112934_original_centercrop_960x540_8s.mp4"
    assert items[0].group == "6947112934"


def test_lower_is_better_generic_scale(tmp_path):
    layouts.labels(tmp_path)
    items = (
        open_dataset(
            "labels", tmp_path, {"higher_is_better": "false", "score_min": "0", "score_max": "5"}
        )
        .list_items()
        .items
    )
    best = min(items, key=lambda i: i.mos)
    assert best.mos_01 == pytest.approx(1 - best.mos / 5)


def test_missing_metadata_names_the_fix(tmp_path):
    from qfeat.errors import DatasetError

    with pytest.raises(DatasetError, match="dmos.csv"):
        open_dataset("kadid", tmp_path).list_items()


def test_unknown_and_required_options(tmp_path):
    with pytest.raises(OptionError, match="no option colour"):
        open_dataset("kadid", tmp_path, {"colour": "x"})
    with pytest.raises(OptionError, match="needs --option file"):
        open_dataset("csv", tmp_path)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("a/b.jpg", "a/b.jpg"),
        ("./a//b.jpg", "a/b.jpg"),
        ("a\\b.jpg", None),  # backslashes are normalised by make_item, not here
        ("../a.jpg", None),
        ("a/../../b.jpg", None),
        ("/etc/passwd", None),
        ("C:/x.jpg", None),
        ("", None),
    ],
)
def test_safe_relative_path(raw, clean):
    if raw == "a\\b.jpg":
        assert safe_relative_path(raw) == "a\\b.jpg"
        return
    assert safe_relative_path(raw) == clean


def test_check_finds_unreadable_files(tmp_path):
    layouts.kadid(tmp_path)
    (tmp_path / "images" / "I01_01_02.png").write_bytes(b"\x89PNG\r\n\x1a\n-not-really")
    report = check_dataset(open_dataset("kadid", tmp_path))
    assert report["unreadable"] == 1
    assert report["unreadable_files"][0]["item_id"] == "images/I01_01_02.png"
    assert json.loads(json.dumps(report)) == report  # JSON-serialisable as is


def test_check_finds_truncated_video(tmp_path):
    layouts.livevqc(tmp_path)
    good = (tmp_path / "Video" / "A001.mp4").read_bytes()
    (tmp_path / "Video" / "A002.mp4").write_bytes(good[: len(good) // 3])
    (tmp_path / "Video" / "A001.mp4").write_bytes(b"")
    report = check_dataset(open_dataset("livevqc", tmp_path))
    assert {u["item_id"] for u in report["unreadable_files"]} == {
        "Video/A001.mp4",
        "Video/A002.mp4",
    }


def test_raw_yuv_size_check(tmp_path):
    layouts.live_qualcomm(tmp_path)
    with open(tmp_path / "Focus" / "1024_TableTennisAtBalboa_HTCOneVx_VIDEO0138.yuv", "ab") as f:
        f.write(b"x")
    report = check_dataset(open_dataset("live-qualcomm", tmp_path))
    assert report["unreadable"] == 1

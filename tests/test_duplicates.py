"""Metadata that lists a file twice (issue 24.3, 23.8): one row per item, conflicting
scores refused with the rows named unless averaging (or the first row) is asked for."""

from __future__ import annotations

import pytest

from qfeat.errors import OptionError
from qfeat.pipeline.datasets import open_dataset
from qfeat.pipeline.datasets.check import check_dataset
from tests.fixtures.media import write_csv, write_media

CSV = {"file": "scores.csv", "path_col": "file", "score_col": "mos"}


@pytest.fixture
def root(tmp_path):
    """good5 twice with conflicting scores, good6 twice with the same score, and
    ``./good7.png`` beside ``good7.png`` (one file, two spellings)."""
    for i in range(4, 9):
        write_media(tmp_path / f"good{i}.png")
    rows = [
        ["good4.png", 2.0], ["good5.png", 3.5], ["good5.png", 1.5], ["good6.png", 4.0],
        ["good6.png", 4.0], ["./good7.png", 2.5], ["good7.png", 2.5], ["good8.png", 3.0],
    ]  # fmt: skip
    write_csv(tmp_path / "scores.csv", ["file", "mos"], rows)
    return tmp_path


def ids(listing):
    return [i.item_id for i in listing.items]


def test_one_row_per_item_and_conflicts_are_rejected_by_default(root):
    listing = open_dataset("csv", root, CSV).listing()
    assert ids(listing) == ["good4.png", "good6.png", "good7.png", "good8.png"]
    conflict = [p for p in listing.problems if p.kind == "duplicate_conflict"]
    assert [p.item_id for p in conflict] == ["good5.png"]
    assert "3.5, 1.5" in conflict[0].reason and "--option duplicates=mean" in conflict[0].reason
    assert sorted(p.item_id for p in listing.duplicates) == ["good6.png", "good7.png"]


@pytest.mark.parametrize(("policy", "score"), [("mean", 2.5), ("first", 3.5)])
def test_asked_for_policies(root, policy, score):
    listing = open_dataset("csv", root, {**CSV, "duplicates": policy}).listing()
    assert ids(listing) == ["good4.png", "good5.png", "good6.png", "good7.png", "good8.png"]
    good5 = listing.items[1]
    assert good5.mos == pytest.approx(score) and not listing.problems
    lo, hi = listing.scale.low, listing.scale.high
    assert good5.mos_01 == pytest.approx((score - lo) / (hi - lo))


def test_unknown_policy_is_a_usage_error(root):
    with pytest.raises(OptionError, match="duplicates must be one of error, mean, first"):
        open_dataset("csv", root, {**CSV, "duplicates": "max"})


def test_check_reports_duplicates_and_the_scale_taken_from_data(root):
    report = check_dataset(open_dataset("csv", root, CSV), decode=False)
    assert report["items"] == 4 and report["rejected"] == 1 and report["duplicates"] == 2
    assert {r["item_id"] for r in report["duplicate_rows"]} == {"good6.png", "good7.png"}
    assert report["rejected_rows"][0]["kind"] == "duplicate_conflict"
    assert report["score_range"] == [1.5, 4.0]  # the fitted range, not [null, null]


def test_features_refuses_conflicts_and_trains_after_averaging(root, tmp_path, qfeat):
    cache = tmp_path / "cache"
    base = ["features", "csv", "--root", str(root), "--cache-dir", str(cache), "--stages",
            "backbone", "--workers", "1", "--preset", "tiny"]  # fmt: skip
    opts = [x for k, v in CSV.items() for x in ("--option", f"{k}={v}")]
    refused = qfeat(*base, *opts)
    assert refused.exit_code == 1 and "good5.png" in refused.output
    assert "different scores" in refused.output
    done = qfeat(*base, *opts, "--option", "duplicates=mean")
    assert done.exit_code == 0, done.output
    from qfeat.cache.items import read_items

    items = read_items(cache, root.name)
    assert sorted(items["item_id"]) == [f"good{i}.png" for i in range(4, 9)]
    assert items.loc[items["item_id"] == "good5.png", "mos"].item() == pytest.approx(2.5)


def test_datasets_check_command_names_duplicates(root, qfeat):
    opts = [x for k, v in CSV.items() for x in ("--option", f"{k}={v}")]
    result = qfeat("datasets", "check", "csv", "--root", str(root), *opts)
    assert result.exit_code == 1  # the conflicting row is rejected
    assert "duplicates 2 items listed more than once" in result.output
    assert "good5.png' is listed 2 times with different scores" in result.output


def test_links_out_of_the_root_are_refused_unless_allowed(tmp_path):
    """Issue 24.6: `link_out.png -> /outside/secret.png` and `linkdir -> /outside` were
    accepted by `datasets check` and processed by every stage."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_media(outside / "secret.png")
    write_media(outside / "other.png")
    write_media(root / "real.png")
    write_media(root / "unlisted.png")
    (root / "link_out.png").symlink_to(outside / "secret.png")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    (root / "inside.png").symlink_to(root / "unlisted.png")  # stays inside: fine
    rows = [["real.png", 1], ["link_out.png", 2], ["linkdir/other.png", 3], ["inside.png", 4]]
    write_csv(root / "scores.csv", ["file", "mos"], rows)
    listing = open_dataset("csv", root, CSV).listing()
    assert ids(listing) == ["real.png", "inside.png"]
    refused = {p.item_id: p.reason for p in listing.problems if p.kind == "link_escapes_root"}
    assert set(refused) == {"link_out.png", "linkdir/other.png"}
    assert "through the link linkdir," in refused["linkdir/other.png"]
    assert "--option follow_links=true" in refused["link_out.png"]
    allowed = open_dataset("csv", root, {**CSV, "follow_links": "true"}).listing()
    assert len(allowed.items) == 4 and not allowed.problems


def _versions_root(tmp_path):
    """Three source clips, each re-encoded at three qualities (as issue 23.4 found)."""
    lines = []
    for source in ("city", "forest", "crowd"):
        for crf in (18, 28, 38):
            name = f"videos/{source}_crf{crf}.mp4"
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"x")
            lines.append(f"{name}, 2.0, 30, {5 - crf / 10:.1f}")
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_labels_group_versions_of_one_source(tmp_path):
    """Issue 23.4: nine versions of one source clip landed in both train and test."""
    import pandas as pd

    from qfeat.trainers.splits import make_splits

    root = _versions_root(tmp_path)
    plain = check_dataset(open_dataset("labels", root), decode=False)
    assert plain["groups"] == 9 and "versions of shared sources" in plain["warnings"][0]
    adapter = open_dataset("labels", root, {"group_pattern": r"([^/]+)_crf\d+"})
    grouped = check_dataset(adapter, decode=False)
    assert grouped["groups"] == 3 and grouped["warnings"] == []
    items = adapter.listing().items
    frame = pd.DataFrame({"item_id": [i.item_id for i in items], "split": None,
                          "group": [i.group for i in items]})  # fmt: skip
    for split in make_splits(frame, n_splits=3, test_frac=0.34, seed=1):
        test_groups = set(frame["group"].to_numpy()[split.test["test"]])
        train_groups = set(frame["group"].to_numpy()[split.train])
        assert test_groups and not test_groups & train_groups
    with pytest.raises(OptionError, match="not a regular expression"):
        open_dataset("labels", root, {"group_pattern": "(unclosed"}).listing()

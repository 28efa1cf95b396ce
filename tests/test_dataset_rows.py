"""Issue 40.3: every row a dataset lists ends as an item or the run refuses up front
(`features` and `datasets check` agree); aliases of one file are one item; a `..` that
stays inside the root is accepted."""

from __future__ import annotations

import os

import pytest

from qfeat.pipeline.datasets import open_dataset
from tests.fixtures.media import write_csv, write_media

CSV = {"file": "scores.csv", "path_col": "file", "score_col": "mos"}
OPTS = [x for k, v in CSV.items() for x in ("--option", f"{k}={v}")]
BAD = ["out.png", "abc.png", "empty.png", "nan.png", "inf.png"]


def _root(tmp_path, rows):
    root = tmp_path / "set"
    for name in ("a.png", "c.png", "img/x.png", *BAD):
        write_media(root / name)
    write_media(tmp_path / "outside.png")
    (root / "out.png").unlink()
    os.symlink(tmp_path / "outside.png", root / "out.png")
    os.symlink("a.png", root / "b.png")  # a second name of a listed file, inside the root
    write_csv(root / "scores.csv", ["file", "mos"], rows)
    return root


GOOD = [["a.png", 2.0], ["c.png", 3.0], ["img/../img/x.png", 4.0]]
BAD_ROWS = [["out.png", 1.0], ["abc.png", "abc"], ["empty.png", ""], ["nan.png", "nan"],
            ["inf.png", "inf"]]  # fmt: skip


def test_features_refuses_the_rows_check_names(tmp_path, qfeat):
    root = _root(tmp_path, GOOD + BAD_ROWS)
    checked = qfeat("datasets", "check", "csv", "--root", str(root), *OPTS, "--no-decode")
    cache = tmp_path / "cache"
    run = qfeat("features", "csv", "--root", str(root), "--cache-dir", str(cache), *OPTS,
                "--preset", "tiny", "--stages", "backbone", "--workers", "1")  # fmt: skip
    assert checked.exit_code == 1 and run.exit_code == 1
    for name in BAD:
        assert name in checked.output and name in run.output, name
    assert "5 metadata row(s) cannot become items" in run.output
    assert not list(cache.rglob("shard-*"))  # refused before any shard ran


def test_aliases_are_one_item_and_dotdot_inside_the_root_is_accepted(tmp_path):
    root = _root(tmp_path, [*GOOD, ["b.png", 2.0]])
    listing = open_dataset("csv", root, CSV).listing()
    assert [i.item_id for i in listing.items] == ["a.png", "c.png", "img/x.png"]
    assert not listing.problems
    [alias] = listing.duplicates
    assert alias.item_id == "a.png" and "also as b.png" in alias.reason


def test_an_alias_with_another_score_is_a_conflict(tmp_path):
    root = _root(tmp_path, [*GOOD, ["b.png", 4.5]])
    listing = open_dataset("csv", root, CSV).listing()
    [conflict] = listing.problems
    assert conflict.kind == "duplicate_conflict" and "also as b.png" in conflict.reason


@pytest.mark.parametrize("path", ["img/../../set/a.png", "lnk/../a.png"])
def test_dotdot_that_leaves_the_root_or_follows_a_link_is_refused(tmp_path, path):
    root = _root(tmp_path, [*GOOD, [path, 1.0]])
    os.symlink(tmp_path, root / "lnk")  # lnk/.. is tmp_path's parent, not the root
    listing = open_dataset("csv", root, CSV).listing()
    assert [p.kind for p in listing.problems] == ["escapes_root"]

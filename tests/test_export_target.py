"""Issue 40.6: `qfeat cache export` never overwrites silently: a folder that holds
anything is refused unless --overwrite, --out naming a file is one line, and only the
files it wrote are listed."""

from __future__ import annotations

import numpy as np

from tests.cache_helpers import manifest_for, write_stage


def _export(qfeat, cache, out, *extra):
    return qfeat("cache", "export", "demo", "backbone", "--format", "npy", "--out", str(out),
                 "--cache-dir", str(cache), *extra)  # fmt: skip


def test_a_non_empty_folder_is_refused_unless_overwrite(tmp_path, qfeat):
    cache = tmp_path / "cache"
    write_stage(cache, manifest_for())
    out = tmp_path / "out"
    out.mkdir()
    (out / "features.npy").write_bytes(b"mine")
    (out / "notes.txt").write_text("unrelated")
    refused = _export(qfeat, cache, out)
    assert refused.exit_code == 1 and "is not empty" in refused.output
    assert "--overwrite" in refused.output
    assert (out / "features.npy").read_bytes() == b"mine"  # untouched
    done = _export(qfeat, cache, out, "--overwrite")
    assert done.exit_code == 0, done.output
    assert "features.npy, manifest.json, table.parquet" in done.output
    assert "notes.txt" not in done.output  # not listed as exported
    assert np.load(out / "features.npy").shape[0] == 10


def test_out_naming_a_file_is_one_line(tmp_path, qfeat):
    cache = tmp_path / "cache"
    write_stage(cache, manifest_for())
    (tmp_path / "file").write_text("x")
    result = _export(qfeat, cache, tmp_path / "file")
    assert result.exit_code == 1 and "is a file" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output

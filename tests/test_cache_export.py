"""`qfeat cache export`: a stage in forms other code reads without qfeat (issue 21)."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from qfeat.cache.reader import open_stage


@pytest.fixture(scope="module")
def cached(demo_images):
    stage = open_stage(demo_images.cache, "demo", "backbone")
    table = stage.table()
    ok = np.flatnonzero(table["status"] == "ok")
    return demo_images, table.iloc[ok].reset_index(drop=True), stage.array("features")[ok]


def test_npy(cached, qfeat, tmp_path):
    demo, table, features = cached
    out = tmp_path / "npy"
    result = qfeat("cache", "export", "demo", "backbone", "--format", "npy", "--out", str(out),
                   "--cache-dir", str(demo.cache))  # fmt: skip
    assert result.exit_code == 0, result.output
    back = np.load(out / "features.npy")
    assert back.dtype == np.float16 and np.array_equal(back, features)
    assert pq.read_table(out / "table.parquet")["item_id"].to_pylist() == list(table["item_id"])
    assert json.loads((out / "manifest.json").read_text())["stage"] == "backbone"


def test_hf_parquet(cached, qfeat, tmp_path):
    demo, table, features = cached
    out = tmp_path / "hf"
    assert qfeat("cache", "export", "demo", "backbone", "--format", "hf", "--out", str(out),
                 "--cache-dir", str(demo.cache)).exit_code == 0  # fmt: skip
    data = pq.read_table(out / "data.parquet")
    shapes = json.loads(data.schema.metadata[b"qfeat.shapes"])
    back = np.asarray(data["features"].to_pylist(), np.float16).reshape(-1, *shapes["features"])
    assert np.array_equal(back, features)
    assert data["item_id"].to_pylist() == list(table["item_id"])


def test_webdataset(cached, qfeat, tmp_path):
    demo, table, features = cached
    out = tmp_path / "wds"
    assert qfeat("cache", "export", "demo", "backbone", "--format", "webdataset", "--out",
                 str(out), "--cache-dir", str(demo.cache)).exit_code == 0  # fmt: skip
    with tarfile.open(out / "shard-000000.tar") as tar:
        names = tar.getnames()
        assert len(names) == 2 * len(table)
        row = json.loads(tar.extractfile("000000001.json").read())
        array = np.load(io.BytesIO(tar.extractfile("000000001.features.npy").read()))
    assert row["item_id"] == table["item_id"][1] and np.array_equal(array, features[1])


def test_bad_format(cached, qfeat, tmp_path):
    demo = cached[0]
    result = qfeat("cache", "export", "demo", "backbone", "--format", "zip", "--cache-dir",
                   str(demo.cache), "--out", str(tmp_path / "x"))  # fmt: skip
    assert result.exit_code == 2 and "npy, hf, webdataset" in result.output


def test_the_cache_doc_dataset_snippet_works(cached):
    """The PyTorch Dataset snippet in docs/cache.md runs on a cache and gives its features."""
    from pathlib import Path

    demo, table, features = cached
    readme = (Path(__file__).resolve().parents[1] / "docs" / "cache.md").read_text()
    start = readme.index("  ```python\n  import torch\n  from qfeat import open_stage")
    block = readme[start : readme.index("  ```\n", start + 10)].splitlines()[1:]
    namespace: dict = {}
    exec("\n".join(line[2:] for line in block), namespace)  # noqa: S102 - our own docs
    data = namespace["CachedFeatures"](demo.cache, "demo")
    assert len(data) == len(table)
    x, mos = data[3]
    assert np.array_equal(x.numpy(), features[3].astype(np.float32)) and 0 <= mos <= 1

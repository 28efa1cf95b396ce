"""The describe stage with the seeded tiny Qwen2-VL: rows, modes, batching, loading,
golden outputs. The parts that need no model: test_describe_contract.py."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from qfeat.cache.fingerprint import model_identity
from qfeat.pipeline.describe.parse import DIMENSIONS
from qfeat.pipeline.describe.prompt import (
    PROMPT_VERSION,
)
from qfeat.pipeline.models import vlm
from qfeat.pipeline.stages.describe import DescribeStage
from tests.describe_helpers import (
    REGIONS_CFG,
    REGIONS_SCHEMA,
    TINY_CFG,
    K,
    picture,
    regions_row,
    upstream,
)
from tests.fixtures.media import bomb_png

GOLDEN = Path(__file__).parent / "golden" / "describe_tiny.json"


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QFEAT_MODELS_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def stage(models_root) -> DescribeStage:
    stage = DescribeStage(dict(TINY_CFG), seed=0)
    stage.load()
    return stage


def configured(stage: DescribeStage, **cfg) -> DescribeStage:
    """The loaded stage with other settings (shares the model)."""
    other = copy.copy(stage)
    other.cfg = {**stage.cfg, **cfg}
    return other


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[list[dict], dict[str, dict]]:
    root = tmp_path_factory.mktemp("images")
    items, rows = [], {}
    for i in range(3):
        path = root / f"good{i}.png"
        Image.fromarray(picture(i)).save(path)
        items.append({"item_id": path.name, "path": str(path)})
        rows[path.name] = regions_row(72, 96)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (root / "empty.png").write_bytes(b"")
    bomb_png(root / "bomb.png")  # regions rows as if the regions stage had read it
    for name in ("corrupt.png", "empty.png", "bomb.png", "missing.png"):
        items.append({"item_id": name, "path": str(root / name)})
        rows[name] = regions_row(72, 96)
    items.append({"item_id": "no-regions.png", "path": str(root / "good0.png")})
    items.append({"item_id": "failed-regions.png", "path": str(root / "good0.png")})
    rows["failed-regions.png"] = {"status": "decode_error", "error": "bad"}
    return items, rows


# -- schema and rows ----------------------------------------------------------------------
def test_generate_rows_good_and_bad_items(stage, dataset, tmp_path):
    items, rows = dataset
    table, arrays = stage.process_shard(items, upstream(rows))
    assert arrays == {}
    pq.write_table(table, tmp_path / "shard.parquet")  # writes as Parquet as it is
    out = {r["item_id"]: r for r in pq.read_table(tmp_path / "shard.parquet").to_pylist()}
    assert [r for r in table.column("item_id").to_pylist()] == [i["item_id"] for i in items]
    status = {k: (r["status"], r["error"]) for k, r in out.items()}
    assert status["corrupt.png"][0] == "decode_error" and "corrupt.png" in status["corrupt.png"][1]
    assert status["empty.png"][0] == "empty_file"
    assert status["bomb.png"][0] == "too_large" and "bomb.png" in status["bomb.png"][1]
    assert status["missing.png"][0] == "missing" and "does not exist" in status["missing.png"][1]
    assert status["no-regions.png"] == ("upstream_error", "no usable regions row")
    assert status["failed-regions.png"][0] == "upstream_error"
    for name in ("corrupt.png", "no-regions.png"):
        assert out[name]["region_id"] is None and out[name]["raw"] is None
    for i in range(3):
        row = out[f"good{i}.png"]
        assert row["status"] == "ok" and row["error"] is None
        assert row["region_id"] == [0, 1, 2, K]
        assert row["prompt_version"] == PROMPT_VERSION
        for key in ("content", *DIMENSIONS, "raw", "parse_ok"):
            assert len(row[key]) == 4, key
        assert all(isinstance(t, str) for t in row["raw"])
        assert all(isinstance(ok, bool) for ok in row["parse_ok"])
        for d in DIMENSIONS:
            assert all(v is None or 1 <= v <= 5 for v in row[d])


def test_item_without_regions_is_ok_with_empty_lists(stage, dataset):
    items, rows = dataset
    row = {**rows["good0.png"], "region_id": [], "rle": [], "bbox": [], "area_frac": []}
    table, _ = stage.process_shard(items[:1], upstream({"good0.png": row}))
    out = table.to_pylist()[0]
    assert out["status"] == "ok" and out["region_id"] == [] and out["raw"] == []
    bad = {**rows["good0.png"], "rle": list(rows["good0.png"]["rle"])[:2]}
    table, _ = stage.process_shard(items[:1], upstream({"good0.png": bad}))
    assert table.column("status").to_pylist() == ["upstream_error"]


def test_random_model_text_is_kept_raw_and_not_parsed(stage, dataset):
    items, rows = dataset
    table, _ = configured(stage, min_new_tokens=6).process_shard(items[:1], upstream(rows))
    row = table.to_pylist()[0]
    assert all(len(t) > 0 for t in row["raw"])  # six tokens of random text, verbatim
    assert row["parse_ok"] == [False] * 4  # garbage is never a strict JSON answer


def test_logprob_mode(stage, dataset):
    items, rows = dataset
    table, _ = configured(stage, mode="logprob").process_shard(items[:2], upstream(rows))
    for row in table.to_pylist():
        assert row["content"] == [None] * 4 and row["parse_ok"] == [True] * 4
        for j, raw in enumerate(row["raw"]):
            data = json.loads(raw)
            for d in DIMENSIONS:
                probs = np.asarray(data["probs"][d])
                assert probs.shape == (5,) and abs(probs.sum() - 1) < 1e-4
                assert row[d][j] == int(np.argmax(probs)) + 1
                assert 0 < data["mass"][d] <= 1


def test_batched_generation_equals_one_by_one(stage, dataset):
    """Left padding is right: views of different token counts share a batch."""
    items, rows = dataset
    views = stage.region_views(items[0], rows[items[0]["item_id"]], REGIONS_CFG["max_side"])
    grids = stage.processor.image_processor(images=views)["image_grid_thw"]
    assert len({int(g.prod()) for g in grids}) > 1  # different lengths, so padding happens
    one = configured(stage, batch_size=1, min_new_tokens=8)
    many = configured(stage, batch_size=12, min_new_tokens=8)
    a, _ = one.process_shard(items[:3], upstream(rows))
    b, _ = many.process_shard(items[:3], upstream(rows))
    assert a.column("raw").to_pylist() == b.column("raw").to_pylist()
    a, _ = configured(one, mode="logprob").process_shard(items[:2], upstream(rows))
    b, _ = configured(many, mode="logprob").process_shard(items[:2], upstream(rows))
    for ra, rb in zip(a.column("raw").to_pylist(), b.column("raw").to_pylist(), strict=True):
        for x, y in zip(ra, rb, strict=True):
            pa_, pb = json.loads(x)["probs"], json.loads(y)["probs"]
            np.testing.assert_allclose(
                [pa_[d] for d in DIMENSIONS], [pb[d] for d in DIMENSIONS], atol=1e-4
            )


def test_failing_batch_is_retried_then_marks_the_item(stage, dataset, monkeypatch):
    items, rows = dataset
    broken = configured(stage, batch_size=16)
    calls = []
    real = broken._generate

    def flaky(images):
        calls.append(len(images))
        if len(images) > 1 or images[0].size == calls_size[0]:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(images)

    views = stage.region_views(items[0], rows[items[0]["item_id"]], REGIONS_CFG["max_side"])
    calls_size = [Image.fromarray(views[1]).size]  # the disc region of every image fails
    monkeypatch.setattr(broken, "_generate", flaky)
    table, _ = broken.process_shard(items[:2], upstream(rows))
    assert calls[0] == 8 and len(calls) == 9  # one batch, then one by one
    for row in table.to_pylist():
        assert row["status"] == "model_error" and "out of memory" in row["error"]
        assert row["raw"] is None


def test_worker_shard_through_the_cache(stage, dataset, tmp_path):
    """Regions rows read back from a cache shard (pandas cells) -> a written describe shard."""
    from qfeat.cache.writer import ShardWriter
    from qfeat.pipeline import worker
    from tests.cache_helpers import stage_folder

    items, rows = dataset
    config = {"max_side": 1024, "max_regions": K}
    regions_dir = stage_folder(tmp_path, "regions", sorted(rows), len(rows), config)
    describe_dir = tmp_path / "describe"
    describe_dir.mkdir()
    schema = pa.schema([("item_id", pa.string()), ("error", pa.string()), *REGIONS_SCHEMA])
    records = [
        {"item_id": k, **{f: v for f, v in r.items() if f in schema.names}} for k, r in rows.items()
    ]
    for r in records:
        r.setdefault("error", None)
    ShardWriter(regions_dir, 0).write(pa.Table.from_pylist(records, schema))
    task = worker.ShardTask(stage=DescribeStage, settings=TINY_CFG, seed=0, device="cpu",
                            threads=0, folder=str(describe_dir), index=0, items=items,
                            upstream={"regions": (str(regions_dir), [0])})  # fmt: skip
    done = worker.run_shard(task=task)
    assert done["rows"] == len(items) and done["ok"] == 3
    out = pq.read_table(next(describe_dir.glob("shard-*.parquet")))
    assert out.schema.field("colour").type == pa.list_(pa.int8())
    assert out.column("status").to_pylist()[:3] == ["ok"] * 3


def test_regions_at_another_size_are_resized(stage, tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(picture(5, 144, 192)).save(path)
    item = {"item_id": "big.png", "path": str(path)}
    views = stage.region_views(item, regions_row(72, 96), REGIONS_CFG["max_side"])
    assert len(views) == 4 and all(v.ndim == 3 for v in views)
    assert views[1].shape[0] > 30  # the disc crop is at image scale, not mask scale


# -- identity, checks, loading ------------------------------------------------------------
def test_model_identity(models_root, tmp_path):
    from qfeat.pipeline.models.vlm import TINY_RECIPE

    assert DescribeStage(dict(TINY_CFG), seed=3).model_identity() == model_identity(
        "tiny-qwen2-vl", seed=3, recipe=TINY_RECIPE
    )
    (tmp_path / "config.json").write_text("{}")
    local = DescribeStage({**TINY_CFG, "model": str(tmp_path)}).model_identity()
    assert local["name"] == tmp_path.name and set(local["sha256"]) == {"config.json"}
    hub = DescribeStage({**TINY_CFG, "model": "Qwen/Qwen2.5-VL-7B-Instruct"}).model_identity()
    assert hub == {"name": "Qwen/Qwen2.5-VL-7B-Instruct", "revision": "main"}
    pinned = DescribeStage({**TINY_CFG, "model": "org/m", "revision": "abc123"})
    assert pinned.model_identity()["revision"] == "abc123"


def test_tiny_model_is_built_once_and_deterministic(models_root, stage, tmp_path):
    folder = vlm.tiny_model_dir(0)
    assert folder.parent == models_root and folder.name == "tiny-qwen2-vl-seed0"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert vlm.ensure_tiny_vlm(0) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # reused
    again = vlm.ensure_tiny_vlm(0, root=tmp_path / "other")

    def digest(d: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}

    assert digest(again) == digest(folder)  # a pure function of the seed
    assert [p.name for p in (tmp_path / "other").iterdir()] == [folder.name]  # no temp left
    (again / vlm.MARKER).write_text("{}")  # a stale recipe is rebuilt
    assert vlm.ensure_tiny_vlm(0, root=tmp_path / "other") == again
    assert digest(again) == digest(folder)
    assert vlm.ensure_tiny_vlm(1, root=tmp_path / "other").name == "tiny-qwen2-vl-seed1"
    assert (
        digest(vlm.tiny_model_dir(1, tmp_path / "other"))["model.safetensors"]
        != (digest(folder)["model.safetensors"])
    )


def test_offline_loading_of_the_tiny_folder(models_root, stage, dataset):
    """A fresh process with HF_HUB_OFFLINE=1 loads the folder and describes an image."""
    items, rows = dataset
    code = (
        "import pickle, sys\n"
        "from qfeat.pipeline.stages.describe import DescribeStage\n"
        "items, rows = pickle.loads(sys.stdin.buffer.read())\n"
        f"s = DescribeStage({TINY_CFG!r}, seed=0)\n"
        "s.check(); s.load()\n"
        "from tests.describe_helpers import upstream\n"
        "t, _ = s.process_shard(items, upstream(rows))\n"
        "print(t.column('status').to_pylist())\n"
    )
    import pickle

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QFEAT_MODELS_DIR": str(models_root)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=pickle.dumps((items[:1], rows)),
        capture_output=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip().endswith("['ok']")


# -- versions and golden outputs ----------------------------------------------------------
def test_golden_outputs(stage, tmp_path):
    """Seeded tiny model, fixed picture and regions -> stored outputs."""
    path = tmp_path / "golden.png"
    Image.fromarray(picture(42)).save(path)
    items = [{"item_id": "golden.png", "path": str(path)}]
    rows = {"golden.png": regions_row(72, 96)}
    gen, _ = configured(stage, min_new_tokens=8).process_shard(items, upstream(rows))
    lp, _ = configured(stage, mode="logprob").process_shard(items, upstream(rows))
    got = {
        "generate_raw": gen.column("raw").to_pylist()[0],
        "logprob": {d: lp.column(d).to_pylist()[0] for d in DIMENSIONS},
        "logprob_probs": [json.loads(r)["probs"] for r in lp.column("raw").to_pylist()[0]],
    }
    if os.environ.get("QFEAT_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert got["generate_raw"] == want["generate_raw"]
    assert got["logprob"] == want["logprob"]
    for g, w in zip(got["logprob_probs"], want["logprob_probs"], strict=True):
        for d in DIMENSIONS:
            np.testing.assert_allclose(g[d], w[d], atol=2e-4)


def test_no_library_progress_bars_in_the_output(demo_image_data, tmp_path):
    """transformers' "Loading weights" and the hub's "Writing model shards" bars (printed
    by the worker processes that build and load the describe model) stay out of qfeat's
    output; qfeat's own progress lines are there."""
    env = {**os.environ, "QFEAT_MODELS_DIR": str(tmp_path / "models")}
    done = subprocess.run(
        [sys.executable, "-m", "qfeat", "features", "demo", "--root", str(demo_image_data),
         "--cache-dir", str(tmp_path / "cache"), "--limit", "4", "--workers", "1",
         "--stages", "regions,describe"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "describe · 4/4 items" in output
    for bar in ("Loading weights", "Writing model shards", "it/s]"):
        assert bar not in output, output

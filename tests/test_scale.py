"""Issue 19: the cost of a run grows linearly with the dataset, and memory stays bounded."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from qfeat.cache import reader
from qfeat.cache.integrity import CacheDamaged
from qfeat.cache.layout import shard_name
from qfeat.cache.plan import plan_shards, shards_holding
from qfeat.cache.reader import open_folder
from qfeat.pipeline import worker
from tests.cache_helpers import IDS, manifest_for, write_stage


@pytest.fixture
def upstream(tmp_path):
    return open_folder(write_stage(tmp_path, manifest_for()))  # 10 items in shards of 4


def test_item_index_and_plan_read_each_upstream_shard_once(upstream):
    where = upstream.item_shards()
    assert where == {item: i // 4 for i, item in enumerate(IDS)}
    reads = [shards_holding(where, s.item_ids) for s in plan_shards(IDS, 4)]
    assert reads == [[0], [1], [2]]  # same plan: one upstream shard per task
    # another shard size downstream still reads only the shards that hold its items
    assert [shards_holding(where, s.item_ids) for s in plan_shards(IDS, 6)] == [[0, 1], [1, 2]]


def test_a_shard_task_reads_only_its_upstream_shards(upstream, monkeypatch):
    opened = []
    real = pq.read_table
    monkeypatch.setattr(
        reader.pq, "read_table", lambda path, **kw: opened.append(path.name) or real(path, **kw)
    )
    items = list(IDS[4:8])
    read = worker.read_upstream({"backbone": (str(upstream.dir), [1])}, items)
    rows, configs = read.rows, read.settings
    assert opened == [shard_name(1, "parquet")]
    assert sorted(rows["backbone"]) == items
    assert rows["backbone"][items[0]]["score"] == float(len(items[0]))
    assert configs["backbone"] == upstream.manifest["config"]


def test_shard_rows_checks_the_shards_it_reads_and_only_those(upstream):
    victim = upstream.dir / shard_name(2, "parquet")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert list(upstream.shard_rows([0, 1])["item_id"]) == IDS[:8]
    with pytest.raises(CacheDamaged, match=shard_name(2, "parquet")):
        open_folder(upstream.dir).shard_rows([2])


def test_scale_benchmark_planning_and_ratio():
    """`make bench-scale`'s planning part on small sizes, and its linearity ratio."""
    from benchmarks.scale import planning, ratios

    out = planning([64, 128], shard_size=8)
    assert [out[n]["shards"] for n in ("64", "128")] == [8, 16]
    assert all(out[n]["us_per_item"] > 0 for n in out)
    runs = [
        {"items": 10, "frames": {"ms_per_item": 2.0}, "wall_s": 1},
        {"items": 40, "frames": {"ms_per_item": 2.5}, "wall_s": 5},
    ]
    assert ratios(runs) == {"frames": 1.25}


CAPPED_TRAIN = """
import json, resource, sys
from pathlib import Path
import numpy as np, pandas as pd, torch
from qfeat.cache.reader import open_folder
from qfeat.pipeline.models.clip_build import build_clip
from qfeat.trainers.loop import LoopConfig, fit, predict
from qfeat.trainers.scma import QCLIP
from qfeat.trainers.scma_train import scorer, tokenizer_for, usable_data

folder, n, capped = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "capped"
torch.set_num_threads(1)
clip, _ = build_clip("tiny-pe", seed=0)
torch.manual_seed(0)  # the adapter's initial weights, as the protocol seeds them
model = QCLIP(clip, tokenizer_for("tiny-pe"), k=2, r=8)
items = pd.DataFrame({"item_id": [f"v{i:04d}" for i in range(n)]})
if capped:  # less anonymous memory left than the hidden-state array holds
    vm = [line for line in open("/proc/self/status") if line.startswith("VmData")][0]
    cap = int(vm.split()[1]) * 1024 + (160 << 20)  # training itself needs ~120 MB
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
stage = open_folder(folder)
data, features, rows = usable_data(items, stage, "full")
if not capped:
    features = np.asarray(features[np.arange(len(features))])  # the whole array in RAM
score = scorer(model, features, rows, "full", torch.device("cpu"))
mos = torch.tensor((np.arange(n) % 7) / 6.0, dtype=torch.float32)
train, val = np.arange(0, n, 48), np.arange(5, n, 240)  # rows from the whole array
state, _ = fit(model, score, mos, train, val, LoopConfig(epochs=1, batch_size=6, seed=0))
model.load_state_dict(state, strict=False)
whole = "n/a"
if capped:
    try:
        stage.array("hidden")  # the whole array in RAM: must not fit under the cap
        whole = "fits"
    except MemoryError:
        whole = "MemoryError"
print(whole)
print(json.dumps(predict(model, score, val, 6).tolist()))
"""


@pytest.mark.slow
def test_scma_trains_under_a_memory_cap_smaller_than_its_hidden_states(tmp_path):
    """Issue 19: SCMA trains an epoch on rows spread over a 383 MB cached hidden-state
    array (tiny-pe: 8 frames x 65 tokens x 64, fp16) with 160 MB of anonymous memory
    left to the process (RLIMIT_DATA; training itself takes ~120 MB of it), and its
    predictions equal a run holding the array in RAM."""
    import json
    import subprocess
    import sys

    from qfeat.cache.writer import ShardWriter
    from tests.cache_helpers import stage_folder

    n = 5760  # x 66.5 KB = 383 MB
    folder = stage_folder(tmp_path, "clip", [f"v{i:04d}" for i in range(n)], n // 2)
    tokens = np.random.default_rng(0).standard_normal((97, 8, 65, 64)).astype(np.float16)
    for index in range(2):
        rows = np.arange(index * n // 2, (index + 1) * n // 2)
        ids = [f"v{i:04d}" for i in rows]
        # the spread of each video's tokens is the signal the adapter can learn
        hidden = tokens[rows % 97] * (rows % 7 / 6.0 + 0.5).astype(np.float16)[:, None, None, None]
        ShardWriter(folder, index).write(
            {"item_id": ids, "status": ["ok"] * len(ids), "error": [None] * len(ids)},
            {"hidden": hidden},
        )
    runs = {}
    for mode in ("capped", "ram"):
        out = subprocess.run([sys.executable, "-c", CAPPED_TRAIN, str(folder), str(n), mode],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        *_, whole, predictions = out.stdout.splitlines()
        runs[mode] = json.loads(predictions)
        assert whole == ("MemoryError" if mode == "capped" else "n/a")
    np.testing.assert_allclose(runs["capped"], runs["ram"], rtol=1e-5, atol=1e-6)

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
    rows, configs = worker._upstream({"backbone": (str(upstream.dir), [1])}, items)
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


CAPPED_READ = """
import resource, sys
from pathlib import Path
from types import SimpleNamespace
import numpy as np, pandas as pd, torch
from qfeat.cache.reader import open_folder
from qfeat.trainers.scma_train import scorer, usable_data

stage = open_folder(Path(sys.argv[1]))
items = pd.DataFrame({"item_id": [f"v{i:04d}" for i in range(int(sys.argv[2]))]})
vm = [line for line in open("/proc/self/status") if line.startswith("VmData")][0]
left = 96 << 20  # less than the array: it cannot be held in anonymous memory
cap = int(vm.split()[1]) * 1024 + left
resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
data = usable_data(items, stage, "full")  # what `qfeat train scma` reads
model = SimpleNamespace(video_from_hidden=lambda x: x.sum(dim=(1, 2, 3)), score=lambda v: v)
score = scorer(model, data[1], data[2], "full", torch.device("cpu"))
sums = np.concatenate([score(np.arange(s, min(s + 12, len(data[0])))).numpy()
                       for s in range(0, len(data[0]), 12)])
try:
    stage.array("hidden")  # the whole array in RAM: must not fit under the cap
    whole = "fits"
except MemoryError:
    whole = "MemoryError"
print(whole, " ".join(f"{v:.0f}" for v in sums))
"""


def test_scma_reads_hidden_states_larger_than_its_memory(tmp_path):
    """Issue 19: the hidden-state array (256 MB) is larger than the memory the process
    has left (RLIMIT_DATA: 96 MB above what it holds after loading); the trainer's reads
    (`usable_data` + `scorer`, batches of 12) still see every row, while reading the
    array whole fails under the same cap."""
    import subprocess
    import sys

    from qfeat.cache.writer import ShardWriter

    n, shape = 512, (8, 128, 256)  # 512 KB per video, 256 MB in all
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"stage": "clip", "shards_total": 2}')
    for index in range(2):
        ids = [f"v{i:04d}" for i in range(index * n // 2, (index + 1) * n // 2)]
        hidden = np.empty((len(ids), *shape), np.float16)
        for k, item in enumerate(ids):
            hidden[k] = int(item[1:]) % 7
        ShardWriter(folder, index).write(
            {"item_id": ids, "status": ["ok"] * len(ids), "error": [None] * len(ids)},
            {"hidden": hidden},
        )
    assert sum(p.stat().st_size for p in folder.glob("*.h5")) > 256 << 20
    out = subprocess.run(
        [sys.executable, "-c", CAPPED_READ, str(folder), str(n)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    whole, *sums = out.stdout.split()
    assert whole == "MemoryError"
    assert [int(s) for s in sums] == [(i % 7) * int(np.prod(shape)) for i in range(n)]


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

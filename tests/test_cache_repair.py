"""Issue 40.2: `qfeat cache verify --repair` repairs whatever a reader refuses, including
an array holding NaN or inf whose checksums and seal were recomputed."""

from __future__ import annotations

import numpy as np
import pytest

from qfeat.cache.integrity import CacheDamaged
from qfeat.cache.plan import plan_shards, split_done
from qfeat.cache.reader import open_stage
from qfeat.cache.writer import ShardWriter
from tests.cache_helpers import IDS, manifest_for, shard_arrays, shard_columns, write_stage


def test_verify_repair_removes_a_sealed_shard_holding_inf(tmp_path, qfeat):
    folder = write_stage(tmp_path, manifest_for())
    ids = IDS[4:8]
    arrays = shard_arrays(ids)
    arrays["features"][2, 1] = np.inf  # written, checksummed and sealed as it is
    ShardWriter(folder, 1).write(shard_columns(ids), arrays)
    with pytest.raises(CacheDamaged, match="NaN or inf"):
        open_stage(tmp_path, "demo", "backbone").array("features")
    result = qfeat("cache", "verify", "--cache-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "shard-00001" in result.output and "NaN or inf" in result.output
    fixed = qfeat("cache", "verify", "--cache-dir", str(tmp_path), "--repair")
    assert fixed.exit_code == 0 and "removed shard 00001" in fixed.output
    done, todo = split_done(folder, plan_shards(IDS, 4))
    assert [s.index for s in todo] == [1]  # so the next `features` run recomputes it

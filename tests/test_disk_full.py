"""Issue 22: a cache that runs out of space mid-shard (a file-size limit stands in for a
full disk: the same failed write, without mounting anything)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qfeat.cache.reader import open_folder
from tests.cache_helpers import IDS, manifest_for, write_stage

WRITE = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from qfeat.cache.writer import ShardWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
ids = [f"images/{i:03d}.png" for i in range(4)]
try:
    ShardWriter(Path(sys.argv[1]), 0).write(
        {"item_id": ids, "status": ["ok"] * 4, "error": [None] * 4},
        {"features": np.ones((4, 256, 256), np.float32)},  # 512 KB as fp16
    )
except OSError as exc:
    print(exc)
    sys.exit(1)
"""


def test_a_full_disk_leaves_no_shard_and_names_the_folder(tmp_path):
    folder = write_stage(tmp_path, manifest_for(), skip=(0,))  # shards 1 and 2 written
    out = subprocess.run([sys.executable, "-c", WRITE, str(folder)], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"no space left writing shard 0 to {folder}" in out.stdout
    assert "run the same command again" in out.stdout
    assert not list(Path(folder).glob("shard-00000*"))  # no marker, no file, no temp file
    stage = open_folder(folder)
    assert 0 not in stage.markers and list(stage.table()["item_id"]) == IDS[4:]
    retried = subprocess.run(  # with room again, the same write completes
        [sys.executable, "-c", WRITE.replace("256 << 10", "64 << 20"), str(folder)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert 0 in open_folder(folder).markers

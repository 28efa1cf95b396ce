"""Every stage on the demo sets: items/s and peak resident memory per stage.

The first ``--items`` demo images go through regions -> describe -> text and backbone,
and the first ``--videos`` demo-video clips through frames -> clip, with the tiny
preset, in this process (no Dask), one stage after the other, shards of 32 as the
runner would give them. Time includes building the model. Peak memory is the
process's peak RSS while the stage ran (Linux: reset through /proc/self/clear_refs
before each stage), so it includes the Python interpreter and libraries (~0.5 GB).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import demo_root, options, record

DATASETS = {"image": "demo", "video": "demo-video"}
SHARD = 32


def _reset_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux: the peak covers the whole run
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(modality: str, items: int) -> dict[str, dict[str, Any]]:
    from qfeat.pipeline.config import load_preset
    from qfeat.pipeline.datasets import open_dataset
    from qfeat.pipeline.stages import get_stage, run_order
    from qfeat.pipeline.stages.base import Upstream

    preset = load_preset("tiny")
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = open_dataset(DATASETS[modality], demo_root(Path(tmp), DATASETS[modality]))
        adapter.prepare()
        listing = [
            {"item_id": i.item_id, "path": str(i.path)} for i in adapter.list_items().items[:items]
        ]
        rows: dict[str, dict[str, dict]] = {}
        for name in run_order(modality):
            cls = get_stage(name)
            _reset_peak()
            t0 = time.perf_counter()
            stage = cls(preset[name], seed=preset["seed"])
            stage.load()
            ok = 0
            rows[name] = {}
            for start in range(0, len(listing), SHARD):
                shard = listing[start : start + SHARD]
                ups = Upstream(
                    rows={
                        u: {i["item_id"]: rows[u][i["item_id"]] for i in shard}
                        for u in cls.upstream
                    },
                    settings={u: preset[u] for u in cls.upstream},
                )
                table, _ = stage.process_shard(shard, ups)
                for row in table.to_pylist():
                    rows[name][row["item_id"]] = row
                    ok += row["status"] == "ok"
            seconds = time.perf_counter() - t0
            out[name] = {
                "items_per_s": round(len(listing) / seconds, 2),
                "peak_rss_mb": round(_peak_mb(), 1),
                "ok": ok,
                "seconds": round(seconds, 2),
            }
            print(f"{name:9s} {out[name]}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=128)
    parser.add_argument("--videos", type=int, default=64)
    args = options(parser, argv)
    if args.dry_run:
        args.items, args.videos = 2, 2
    stages = {**run("image", args.items), **run("video", args.videos)}
    record("stages", {k: {"items_per_s": v["items_per_s"], "peak_rss_mb": v["peak_rss_mb"]}
                      for k, v in stages.items()})  # fmt: skip
    record("stage_details", {"images": args.items, "videos": args.videos, **stages})


if __name__ == "__main__":
    main()

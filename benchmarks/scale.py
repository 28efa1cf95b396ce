"""Scale: per-item cost and memory of a whole run at several dataset sizes.

For each size, a synthetic set of N items (copies of the demo images or demo-video
clips under distinct names, listed in a CSV for the ``csv`` adapter) goes through
`qfeat features` (the runner with its embedded Dask cluster, tiny preset), then
`qfeat cache ls`, `qfeat cache verify` and the matching trainer's data loading. It
reports per stage items/s and seconds per item, the driver's and the workers' peak
RSS, cache bytes per item, the cache commands' time, and the trainer's load time and
peak RSS. ``ratio`` = per-item cost at the largest size / at the smallest (goal: at most
1.2 for every stage, i.e. linear total cost).

A second part measures only the driver's planning at up to 40,000 items (LSVQ-sized):
the shard plan, the media size/mtime hash of every file, the done-marker check of every
shard (planned over a cache whose shards are all done) and the upstream item index.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import record

DEMO = {"image": ("demo", "images", ".png"), "video": ("demo-video", "videos", ".mp4")}


class PeakRSS:
    """Peak resident memory (MB) of this process and, separately, of its children,
    sampled every ``every`` seconds in a thread while the ``with`` block runs."""

    def __init__(self, pid: int | None = None, every: float = 0.2):
        import psutil

        self.proc = psutil.Process(pid or os.getpid())
        self.every, self.own, self.children = every, 0.0, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                self.own = max(self.own, self.proc.memory_info().rss / 2**20)
                kids = self.proc.children(recursive=True)
                rss = [k.memory_info().rss for k in kids if k.is_running()]
                self.children = max(self.children, max(rss, default=0) / 2**20)
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def synthetic_set(root: Path, modality: str, n: int) -> Path:
    """``root/items.csv`` listing ``n`` distinct files (hard links to the demo media)."""
    from qfeat.pipeline.datasets import open_dataset

    name, folder, ext = DEMO[modality]
    demo = open_dataset(name, root / "demo")
    demo.prepare()
    sources = [i.path for i in demo.list_items().items]
    scores = [i.mos for i in demo.list_items().items]
    (root / "media").mkdir(parents=True, exist_ok=True)
    with open(root / "items.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["path", "mos"])
        for k in range(n):
            rel = f"media/{k:06d}{ext}"
            try:
                os.link(sources[k % len(sources)], root / rel)
            except OSError:
                shutil.copy(sources[k % len(sources)], root / rel)
            out.writerow([rel, f"{scores[k % len(scores)]:.4f}"])
    return root


def features_at(root: Path, cache: Path, modality: str, n: int) -> dict[str, Any]:
    from qfeat.pipeline import runner

    request = runner.RunRequest(
        dataset="csv",
        root=root,
        name=f"scale-{modality}-{n}",
        cache_dir=cache,
        preset="tiny",
        options={"file": "items.csv", "path_col": "path", "score_col": "mos",
                 "modality": modality},
    )  # fmt: skip
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        reports = runner.run(runner.prepare(request))
    out: dict[str, Any] = {"items": n, "wall_s": round(time.perf_counter() - t0, 2)}
    for r in reports:
        done = r.items_ok + r.items_failed
        out[r.stage] = {
            "items_per_s": round(r.items_per_s, 2),
            "ms_per_item": round(1000 * r.seconds / max(done, 1), 2),
            "cache_bytes_per_item": round(_bytes(r.path) / n),
        }
    out["driver_peak_rss_mb"] = round(rss.own)
    out["worker_peak_rss_mb"] = round(rss.children)
    out.update(cache_commands(cache))
    out.update(trainer_load(cache, request.name, modality))
    return out


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _qfeat(*args: str, cache: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `qfeat` command in a child process."""
    exe = Path(sys.executable).with_name("qfeat")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), *args, "--cache-dir", str(cache)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with PeakRSS(proc.pid) as rss:
        _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"qfeat {' '.join(args)} failed: {err.decode()[-500:]}")
    return round(time.perf_counter() - t0, 2), round(rss.own)


def cache_commands(cache: Path) -> dict[str, Any]:
    ls_s, _ = _qfeat("cache", "ls", cache=cache)
    verify_s, verify_mb = _qfeat("cache", "verify", cache=cache)
    return {"cache_ls_s": ls_s, "cache_verify_s": verify_s, "cache_verify_peak_rss_mb": verify_mb}


def trainer_load(cache: Path, name: str, modality: str) -> dict[str, Any]:
    """The trainer's data loading from the cache, in a child process (time, peak RSS)."""
    code = {
        "image": "from qfeat.trainers.rsa_data import load_rsa_data, needed_stages; "
        "load_rsa_data(C, N, needed_stages('rsa', True, True))",
        "video": "from qfeat.cache.reader import open_stage; "
        "from qfeat.cache.items import read_items; "
        "from qfeat.trainers.scma_train import usable_data; "
        "usable_data(read_items(C, N), open_stage(C, N, 'clip'), 'full')",
    }[modality]
    script = f"from pathlib import Path; C, N = Path({str(cache)!r}), {name!r}; {code}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    with PeakRSS(proc.pid) as rss:
        _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"trainer load failed: {err.decode()[-800:]}")
    return {"trainer_load_s": round(time.perf_counter() - t0, 2),
            "trainer_load_peak_rss_mb": round(rss.own)}  # fmt: skip


def ratios(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per stage: per-item cost at the largest size / at the smallest."""
    small, large = runs[0], runs[-1]
    return {
        stage: round(large[stage]["ms_per_item"] / small[stage]["ms_per_item"], 2)
        for stage in small
        if isinstance(small[stage], dict) and small[stage]["ms_per_item"] > 0
    }


def planning(sizes: list[int], shard_size: int = 32) -> dict[str, Any]:
    """Driver-side planning cost at each size over a cache whose shards are all done."""
    from qfeat.cache.fingerprint import media_hash
    from qfeat.cache.plan import plan_shards, shards_holding, split_done
    from qfeat.cache.reader import Stage
    from qfeat.cache.writer import ShardWriter

    out = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            media, stage_dir = Path(tmp) / "media", Path(tmp) / "stage"
            media.mkdir()
            stage_dir.mkdir()
            ids = [f"{k:06d}.mp4" for k in range(n)]
            for i in ids:
                (media / i).write_bytes(b"x")
            shards = plan_shards(ids, shard_size)
            for s in shards:
                ShardWriter(stage_dir, s.index).write(
                    {
                        "item_id": list(s.item_ids),
                        "status": ["ok"] * len(s.item_ids),
                        "error": [None] * len(s.item_ids),
                    }  # fmt: skip
                )
            t0 = time.perf_counter()
            plan = plan_shards(ids, shard_size)
            hashes = {s.index: media_hash(str(media / i) for i in s.item_ids) for s in plan}
            t1 = time.perf_counter()
            done, todo = split_done(stage_dir, plan, media=hashes)
            t2 = time.perf_counter()
            where = Stage(stage_dir, {"shards_total": len(plan)}).item_shards()
            reads = sum(len(shards_holding(where, s.item_ids)) for s in plan)
            t3 = time.perf_counter()
            assert len(done) == len(plan) and not todo and reads == len(plan)
            out[str(n)] = {
                "shards": len(plan),
                "plan_and_media_hash_s": round(t1 - t0, 3),
                "done_markers_s": round(t2 - t1, 3),
                "upstream_index_s": round(t3 - t2, 3),
                "us_per_item": round(1e6 * (t3 - t0) / n, 1),
            }
            print(f"planning {n:6d} items: {out[str(n)]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="250,1000", help="comma-separated sizes")
    parser.add_argument("--videos", default="96,384", help="comma-separated sizes")
    parser.add_argument("--plan", default="4000,40000", help="planning-only sizes")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes (for the tests)")
    args = parser.parse_args()
    if args.dry_run:
        args.images, args.videos, args.plan = "6,12", "4,8", "64,128"
    results: dict[str, Any] = {"planning": planning([int(n) for n in args.plan.split(",")])}
    for modality, sizes in (("image", args.images), ("video", args.videos)):
        runs = []
        for n in (int(s) for s in sizes.split(",") if s):
            with tempfile.TemporaryDirectory() as tmp:
                root = synthetic_set(Path(tmp) / "data", modality, n)
                runs.append(features_at(root, Path(tmp) / "cache", modality, n))
            print(f"{modality} {n}: {runs[-1]}", flush=True)
        if runs:
            ratio = ratios(runs)
            results[modality] = {"runs": runs, "ratio_largest_vs_smallest": ratio}
            print(f"{modality} per-item cost ratio (largest / smallest size): {ratio}")
    path = record("scale", results)
    print(f"results: {path}")


if __name__ == "__main__":
    main()

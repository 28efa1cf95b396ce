"""The ridge probe against the learned heads on the same features and splits.

Three comparisons, each in one run on the tiny preset (random seeded models, so the
numbers say how much a head learns from these features, not how good real models are):

1. ``demo``: rsa and probe on the whole demo image set, the same content-disjoint
   random splits (``--splits``, seed 0);
2. held out: the demo's first 16 contents as one dataset (``demo-a``) and the other 8
   as another (``demo-b``, read through the ``csv`` adapter); rsa and probe trained on
   demo-a, then scored on demo-b (``qfeat evaluate``: contents neither has seen);
3. ``demo-video``: scma and probe on the whole demo video set, the same splits.

Per comparison: the mean (and std) test SRCC over splits, the mean per-split difference
head - probe, and the two-sided Wilcoxon signed-rank p-value on the per-split SRCC.
``--dry-run`` does all of it on a few items with one epoch (a check that the script runs,
not a figure; results to ``results/dry-run.json``).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import demo_root, options, record


def features(cache: Path, dataset: str, root: Path, limit: int | None, **extra) -> None:
    from qfeat.pipeline.runner import RunRequest, prepare, run

    request = RunRequest(
        dataset=dataset, root=root, cache_dir=cache, limit=limit, workers=1, **extra
    )
    run(prepare(request))


def train(trainer: str, cache: Path, runs: Path, dataset: str, splits: int, epochs: int | None):
    """Train ``trainer`` through its registry entry; returns the run folder."""
    from qfeat.trainers.registry import get_trainer

    entry = get_trainer(trainer)
    fields: dict[str, Any] = {"epochs": epochs} if trainer != "probe" else {}
    request = entry.hook("request")(
        dataset=dataset, cache_dir=cache, runs_dir=runs, run=f"{trainer}-{dataset}",
        splits=splits, seed=0, device="cpu", **fields,
    )  # fmt: skip
    folder, _ = entry.hook("train")(request)
    return folder


def per_split(run: Path) -> dict[int, float]:
    from qfeat.trainers.runfolder import RunFolder
    from qfeat.trainers.runs_table import _per_split

    return _per_split(RunFolder(run), "srcc")


def compare(head: dict[int, float], probe: dict[int, float]) -> dict[str, Any]:
    from qfeat.trainers.runs_table import wilcoxon_p

    common = sorted(set(head) & set(probe))
    h = np.array([head[i] for i in common])
    p = np.array([probe[i] for i in common])
    return {
        "splits": len(common),
        "head_srcc": round(float(h.mean()), 4),
        "head_std": round(float(h.std()), 4),
        "probe_srcc": round(float(p.mean()), 4),
        "probe_std": round(float(p.std()), 4),
        "head_minus_probe": round(float((h - p).mean()), 4),
        "wilcoxon_p": wilcoxon_p(head, probe),
    }


def held_out_lists(root: Path, out: Path) -> tuple[Path, Path]:
    """``out/demo-a.csv`` (the demo's first 16 contents) and ``out/demo-b.csv`` (the
    other 8), paths relative to the demo ``root``."""
    with open(root / "mos.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    contents = sorted({r["content"] for r in rows})
    first = set(contents[:16])
    paths = []
    for name, keep in (("demo-a", True), ("demo-b", False)):
        path = out / f"{name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r in rows if (r["content"] in first) == keep)
        paths.append(path)
    return paths[0], paths[1]


def held_out(tmp: Path, root: Path, splits: int, epochs: int | None, limit: int | None):
    from qfeat.trainers.evaluate import evaluate_run

    cache, runs = tmp / "held-cache", tmp / "held-runs"
    a, b = held_out_lists(root, tmp)
    for name, path in (("demo-a", a), ("demo-b", b)):
        options = {"file": str(path), "path_col": "image", "score_col": "mos",
                   "group_col": "content", "score_min": "1", "score_max": "5"}  # fmt: skip
        features(cache, "csv", root, limit, name=name, options=options, preset="tiny")
    out = {}
    for trainer in ("rsa", "probe"):
        run = train(trainer, cache, runs, "demo-a", splits, epochs)
        result = evaluate_run(run, "demo-b", cache, "cpu")
        out[trainer] = {s["split"]: s["srcc"] for s in result["splits"]}
    return compare(out["rsa"], out["probe"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    args = options(parser, argv)
    limit, epochs, splits = (48, 1, 2) if args.dry_run else (None, None, args.splits)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        cache, runs = tmp / "cache", tmp / "runs"
        features(cache, "demo", demo_root(tmp, "demo"), limit)
        rsa, probe = (train(t, cache, runs, "demo", splits, epochs) for t in ("rsa", "probe"))
        results["demo"] = compare(per_split(rsa), per_split(probe))
        results["held_out"] = held_out(tmp, demo_root(tmp, "demo"), splits, epochs, limit)
        features(cache, "demo-video", demo_root(tmp, "demo-video"), limit)
        runs_video = [
            train(t, cache, runs, "demo-video", splits, epochs) for t in ("scma", "probe")
        ]
        results["demo_video"] = compare(*(per_split(r) for r in runs_video))
    results["seconds"] = round(time.perf_counter() - started, 1)
    for key, value in results.items():
        print(f"{key}: {value}")
    print(f"-> {record('probe_vs_heads', results)}")


if __name__ == "__main__":
    main()

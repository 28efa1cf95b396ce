"""`qfeat report RUN`: one self-contained HTML page about a trained run.

The page holds the run summary (trainer, dataset, preset, trainable parameters, train
time, the cache fingerprints it was trained on), the metrics per split with mean /
median / std, the run's scatter and curve plots, and for about three test items each
with the best, median and worst absolute error (predictions mapped to MOS per split):

- rsa runs: the picture with its regions coloured by the split checkpoint's region
  weights, a colour bar, and per region its description, ratings and weight;
- scma runs: the frame-difference curve with the chosen frames, those frames, and the
  cosine similarity of the video to the five quality prompts.

Everything is embedded (``data:`` images, inline CSS, one hashed inline script), so the
file opens offline and loads nothing from the network.
"""

from __future__ import annotations

import logging
from pathlib import Path

from qfeat.errors import DatasetError
from qfeat.trainers.registry import get_trainer
from qfeat.trainers.report.html import join, page, tag
from qfeat.trainers.report.run import resolve_cache_dir
from qfeat.trainers.report.samples import choose_samples, map_predictions
from qfeat.trainers.runfolder import RunFolder

log = logging.getLogger(__name__)

__all__ = ["build_report", "summary_line"]


def _details(run: RunFolder, samples, cache_dir: Path) -> tuple[dict, str | None]:
    """Per-sample details, or ``({}, reason)`` when the run's cache cannot give them."""
    if not samples:
        return {}, None
    try:
        details = get_trainer(run.config.trainer, run.path).hook("details")
        return details(run, samples, cache_dir), None
    except DatasetError as exc:  # the cache is gone or moved: the rest of the report stands
        log.warning("report: no per-item details: %s", exc)
        return {}, str(exc)


def build_report(run_dir: Path, out: Path | None = None, cache_dir: Path | None = None) -> Path:
    """Write the report of the run in ``run_dir`` to ``out`` (default
    ``<run_dir>/report.html``) and return its path. ``cache_dir`` overrides the cache
    recorded in the run's config.json."""
    from qfeat.trainers.report.sections import (
        metrics_section,
        plots_section,
        samples_section,
        summary,
    )

    run = RunFolder(Path(run_dir)).complete()
    cache = resolve_cache_dir(run, cache_dir)
    samples = choose_samples(map_predictions(run.predictions))
    details, problem = _details(run, samples, cache)
    title = f"qfeat report: {run.path.name}"
    header = tag("header", join([
        tag("h1", title),
        tag("p", f"{run.config.trainer} on {run.config.dataset}", class_="muted"),
    ]))  # fmt: skip
    body = join([
        header,
        summary(run),
        metrics_section(run),
        plots_section(run),
        samples_section(run, samples, details, problem),
        tag("footer", "Made by qfeat report; self-contained, opens offline.", class_="muted"),
    ])  # fmt: skip
    target = Path(out) if out is not None else run.path / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page(title, body), encoding="utf-8")
    tmp.replace(target)
    log.info("report of %s written to %s", run.path, target)
    return target


def summary_line(run_dir: Path) -> str:
    """One line about the run: trainer, dataset and the mean test metrics."""
    run = RunFolder(Path(run_dir)).complete()
    test = run.metrics.get("test", {})

    def fmt(key: str) -> str:
        value = test.get(key)
        return "–" if value is None else f"{value:.3f}"

    splits = len({s.get("split") for s in run.metrics.get("splits", [])})
    return (
        f"{run.config.trainer} on {run.config.dataset}: test SRCC {fmt('srcc')}, "
        f"PLCC {fmt('plcc')} "
        f"(logistic), mean of {splits} split{'s' * (splits != 1)}"
    )

"""What an scma run's report shows per test video: the frame-difference curve with the
chosen frames, those frames, and the video's cosine similarity to the five quality
prompts under the split's checkpoint.

Frames are decoded from the item's file (the path in ``items.parquet``) at the indices
the cached ``frames`` row chose; the similarities come from the cached ``clip`` features
(the fingerprints in ``config.json``) through :class:`qfeat.trainers.scma.QCLIP`, and the
recomputed score is compared with ``predictions.csv``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qfeat.cache.items import read_items
from qfeat.trainers.loop import load_trained
from qfeat.trainers.report import plots
from qfeat.trainers.report.html import Html, figure, join, notes, number, table, tag
from qfeat.trainers.report.run import open_recorded
from qfeat.trainers.report.samples import Sample
from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import RunFolder
from qfeat.trainers.scma import mode_of

log = logging.getLogger(__name__)


@dataclass
class VideoDetail:
    curve: bytes | None = None  # PNG: difference curve, chosen frames marked
    frames: list[tuple[int, bytes]] = field(default_factory=list)  # (index, JPEG)
    similarities: list[float] | None = None  # cosine similarity to bad..excellent
    bars: bytes | None = None  # PNG bar chart of the similarities
    score_weights: list[float] | None = None  # the learned 5 -> 1 map w
    score: float | None = None  # the checkpoint's score recomputed from the cache
    n_frames: int | None = None
    fps: float | None = None
    notes: list[str] = field(default_factory=list)

    def html(self) -> Html:
        """The item's section of the report page (escaped: see report/html.py)."""
        from qfeat.pipeline.levels import LEVELS

        caption = "frame-difference curve"
        if self.n_frames is not None:
            caption += f" ({self.n_frames} frames), chosen frames marked"
        parts = [tag("div", join([figure(self.curve, caption, "difference curve"),
                                  figure(self.bars, "cosine similarity to the five prompts",
                                         "prompt similarities")]), class_="media")]  # fmt: skip
        if self.frames:
            thumbs = [figure(d, f"frame {i}", f"frame {i}") for i, d in self.frames]
            parts.append(tag("div", join(thumbs), class_="frames"))
        parts.append(notes(self.notes))
        if self.similarities is not None:
            weights = self.score_weights or [None] * len(LEVELS)
            rows = [["cosine similarity", *(number(v) for v in self.similarities)],
                    ["score weight w", *(number(v) for v in weights)]]  # fmt: skip
            parts.append(table(["prompt “… a video of X quality”", *LEVELS], rows,
                               numeric=set(range(1, 6))))  # fmt: skip
        return join(parts)


def video_details(
    run: RunFolder, samples: list[Sample], cache_dir: Path
) -> dict[tuple[str, str], VideoDetail]:
    """``(item_id, split) -> VideoDetail`` for every sample (raises DatasetError when the
    run's cache is gone)."""
    from qfeat.trainers.scma import LEVELS, QCLIP
    from qfeat.trainers.scma_train import feature_array, load_clip_for, tokenizer_for

    clip_stage = open_recorded(cache_dir, run, "clip")
    frames_stage = open_recorded(cache_dir, run, "frames")
    mode = mode_of(run.config)
    items = read_items(cache_dir, run.config.dataset).drop_duplicates("item_id")
    items = items.set_index("item_id")
    clip_rows = _rows(clip_stage.table(["item_id", "status"]))
    frame_table = frames_stage.table()
    frame_table = frame_table[frame_table["status"] == "ok"].drop_duplicates("item_id")
    frame_rows = frame_table.set_index("item_id")
    features = clip_stage.array(feature_array(mode), mmap=True)
    base, _, clip_cfg = load_clip_for(clip_stage)
    tokenizer = tokenizer_for(clip_cfg["model"])
    k = int(clip_cfg["adapted_blocks"])
    r = int(run.config.setting("r"))

    models: dict[int, Any] = {}
    out: dict[tuple[str, str], VideoDetail] = {}
    for sample in samples:
        detail = out.setdefault((sample.item_id, sample.split), VideoDetail())
        if sample.item_id in frame_rows.index:
            _frames(detail, frame_rows.loc[sample.item_id], items["path"].get(sample.item_id))
        else:
            detail.notes.append("no frames row for this video in the run's cache")
        if sample.item_id not in clip_rows:
            detail.notes.append("no clip features for this video in the run's cache")
            continue
        if sample.split_index not in models:
            model = QCLIP(copy.deepcopy(base), tokenizer, k=k, r=r, mode=mode)
            load_trained(model, run.split_state(sample.split_index), run.name)
            models[sample.split_index] = model.eval()
        model = models[sample.split_index]
        x = torch.from_numpy(np.asarray(features[[clip_rows[sample.item_id]]], np.float32))
        with torch.no_grad():
            video = model.video_from_hidden(x) if mode == "full" else model.video_from_pooled(x)
            sims = model.similarities(video)
            detail.score = float(model.score_from_similarities(sims)[0])
        detail.similarities = [float(v) for v in sims[0]]
        detail.score_weights = [float(v) for v in model.score_proj.detach()[:, 0]]
        detail.bars = plots.similarity_bars(LEVELS, detail.similarities)
    return out


def _rows(table) -> dict[str, int]:
    """item_id -> row in the stage's arrays, for ok rows."""
    rows = {}
    for i, (item_id, status) in enumerate(zip(table["item_id"], table["status"], strict=True)):
        if status == "ok":
            rows.setdefault(str(item_id), i)
    return rows


def _frames(detail: VideoDetail, row: Any, path: str | None) -> None:
    from qfeat.pipeline.video.reader import read_video

    diff = np.asarray(row["diff"], np.float32)
    indices = [int(i) for i in row["indices"]]
    detail.n_frames, detail.fps = int(row["n_frames"]), float(row["fps"])
    detail.curve = plots.difference_curve(diff, indices, detail.fps)
    unique = sorted(set(indices))
    try:
        decoded, _ = read_video(Path(str(path)), lambda reader: reader.frames(unique))
    except Exception as exc:  # noqa: BLE001 - a moved or unreadable file: say so, go on
        log.warning("report: cannot decode frames of %s: %s", path, exc)
        detail.notes.append(f"the chosen frames cannot be decoded from {path}: {exc}")
        return
    detail.frames = [
        (index, plots.jpeg(np.asarray(frame, np.uint8), plots.FRAME_SIDE))
        for index, frame in zip(unique, decoded, strict=True)
    ]


def summary_rows(config: RunConfig) -> list[list[Any]]:
    """An scma run's own settings for the report's summary: its training mode."""
    return [["mode", mode_of(config)]]

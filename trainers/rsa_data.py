"""Everything the RSA head reads, loaded from the cache once (never from pixels).

- ``backbone``: ``features`` ``[N, C, h, w]``, read once (memory-mapped) and reduced to
  per-region moments, the only thing the head uses of the map;
- ``regions``: COCO RLE masks, decoded once and averaged onto the backbone's ``h x w``
  grid as area fractions (the backbone squashes the image to a square, so cell (i, j)
  covers the same share of the image either way);
- ``describe``: the five ratings per region (0 = unknown);
- ``text``: ``embeddings`` ``[N, K+1, D]`` and ``mask``.

Which stages are needed depends on the ablation: ``global`` needs only ``backbone``;
``--no-text`` skips ``text``; ``--no-ratings`` skips ``describe``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from qfeat.cache.basis import Basis, Selection, select_basis
from qfeat.cache.items import read_items
from qfeat.pipeline.stages.text import DIMENSIONS
from qfeat.trainers.rsa import RSABatch, region_moments


def head_of(config) -> dict[str, Any]:
    """An rsa run's head settings (attention, use_text, use_ratings, sizes) from its
    :class:`qfeat.trainers.runconfig.RunConfig`."""
    return dict(config.detail("head") or {})


def needed_stages(attention: str, use_text: bool, use_ratings: bool) -> list[str]:
    if attention == "global":
        return ["backbone"]
    return ["backbone", "regions"] + ["describe"] * use_ratings + ["text"] * use_text


def text_has_ratings(stage) -> bool:
    """Whether a cached text stage embedded the rating words (caches made before the
    ``text.ratings`` setting did)."""
    return bool(stage.manifest["config"].get("ratings", True))


def text_fits(stages: list[str]) -> tuple[Callable[[Basis], bool], str]:
    """``(fits, unfit)`` for :func:`qfeat.cache.basis.select_basis`: a set whose text
    stage embeds the rating words exactly when the head reads ratings, and the message
    when no cached set does."""
    ratings = "describe" in stages

    def fits(basis: Basis) -> bool:
        return "text" not in basis.stages or text_has_ratings(basis.stages["text"]) == ratings

    if ratings:
        return fits, (
            "the cached text stages embed no rating words; make one with them: "
            "`qfeat stage text DATASET --set text.ratings=true`"
        )
    return fits, (
        "--no-ratings with text needs the region texts embedded without the rating words "
        "(the cached text stage has them); make it with `qfeat stage text DATASET --set "
        "text.ratings=false`, or add --no-text"
    )


def select_needed(cache_dir: Path, dataset: str, stages: list[str], **named) -> Selection:
    """The basis (one coherent set of cached stages, :mod:`qfeat.cache.basis`) the head
    reads; ``named``: :func:`qfeat.cache.basis.select_basis`'s options."""
    fits, unfit = text_fits(stages)
    return select_basis(
        cache_dir,
        dataset,
        stages,
        fits=fits,
        unfit=unfit.replace("DATASET", dataset),
        trainer="the RSA trainer",
        **named,
    )


def open_needed(cache_dir: Path, dataset: str, stages: list[str]) -> dict[str, Any]:
    """The cached stages the head needs by default, as one coherent set."""
    return dict(select_needed(cache_dir, dataset, stages).basis.stages)


def grid_masks(row: dict[str, Any], slots: int, grid: tuple[int, int]) -> np.ndarray:
    """``[slots, h, w]`` float32 area fractions of each region (slot = region_id)."""
    from pycocotools import mask as mask_utils

    height, width = int(row["height"]), int(row["width"])
    out = np.zeros((slots, *grid), np.float32)
    for rid, counts in zip(row["region_id"], row["rle"], strict=True):
        full = mask_utils.decode({"size": [height, width], "counts": counts.encode()})
        pooled = torch.nn.functional.adaptive_avg_pool2d(
            torch.from_numpy(full.astype(np.float32))[None], grid
        )
        out[int(rid)] = pooled[0].numpy()
    return out


def ratings_of(row: dict[str, Any], slots: int) -> np.ndarray:
    """``[slots, 5]`` int64 levels 1..5, 0 where unknown or no region."""
    out = np.zeros((slots, len(DIMENSIONS)), np.int64)
    for j, rid in enumerate(row["region_id"]):
        for d, name in enumerate(DIMENSIONS):
            value = row[name][j]
            if value is not None and not (isinstance(value, float) and np.isnan(value)):
                out[int(rid), d] = int(value) if 1 <= int(value) <= 5 else 0
    return out


@dataclass
class RSAData:
    """Usable items (``data``: item_id, mos, split, group, ...) and their inputs by row.

    The backbone map enters only through its per-region moments (see
    :func:`qfeat.trainers.rsa.region_moments`): ``mean``/``square`` ``[N, R, C]``, ``area``
    ``[N, R]``; in ``global`` mode R = 1, a region covering the whole map.
    """

    data: pd.DataFrame
    mean: torch.Tensor
    square: torch.Tensor
    area: torch.Tensor
    valid: torch.Tensor  # [N, R]
    masks: torch.Tensor  # [N, R, h, w] area fractions on the backbone grid
    text: torch.Tensor  # [N, R, D]
    text_valid: torch.Tensor  # [N, R]
    ratings: torch.Tensor  # [N, R, 5]
    grid: tuple[int, int] = (0, 0)
    stages: dict[str, Any] = field(default_factory=dict)
    dropped: int = 0
    basis: Basis | None = None
    ok: dict[str, int] = field(default_factory=dict)  # stage -> items with an ok row

    @property
    def channels(self) -> int:
        return int(self.mean.shape[-1])

    @property
    def text_dim(self) -> int:
        return int(self.text.shape[-1])

    def batch(self, rows: np.ndarray, device) -> RSABatch:
        idx = torch.tensor(np.asarray(rows))
        return RSABatch(
            *(
                t[idx].to(device)
                for t in (
                    self.mean,
                    self.square,
                    self.area,
                    self.valid,
                    self.text,
                    self.text_valid,
                    self.ratings,
                )
            )
        )


def moments(features, rows: np.ndarray, masks: torch.Tensor, chunk: int = 64):
    """:func:`qfeat.trainers.rsa.region_moments` of every item, read from the (memory-mapped)
    feature array a chunk at a time."""
    parts = []
    for start in range(0, len(rows), chunk):
        x = torch.from_numpy(np.asarray(features[rows[start : start + chunk]], np.float32))
        parts.append(region_moments(x, masks[start : start + chunk]))
    if not parts:
        c = int(features.shape[1])
        return (
            torch.zeros(0, masks.shape[1], c),
            torch.zeros(0, masks.shape[1], c),
            torch.zeros(0, masks.shape[1]),
        )
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


def _ok_rows(stage, columns: list[str] | None = None) -> pd.DataFrame:
    table = stage.table(columns)
    table["_row"] = np.arange(len(table))
    return table[table["status"] == "ok"]


def build_rsa_data(
    data: pd.DataFrame,
    features,
    feature_rows: np.ndarray,
    slots: int,
    *,
    regions_rows: list | None = None,
    describe_rows: list | None = None,
    text: tuple[Any, Any, np.ndarray] | None = None,
    stages: dict[str, Any] | None = None,
    dropped: int = 0,
    basis: Basis | None = None,
) -> RSAData:
    """The head's inputs for the items of ``data`` (one per row, in order).

    Shared by the cache loader (:func:`load_rsa_data`) and live prediction
    (:mod:`qfeat.trainers.predict_rsa`), so both turn stage outputs into inputs the same way.

    - ``features``: backbone maps ``[M, C, h, w]`` (fp16 or fp32, may be memory-mapped);
      ``feature_rows`` ``[N]``: each item's row in it;
    - ``slots``: regions per item (``max_regions + 1``; 1 in ``global`` mode);
    - ``regions_rows`` / ``describe_rows``: per item the stage's row (a mapping with the
      stage's list columns), or None when the ablation does not use the stage;
    - ``text``: ``(embeddings [M, slots, D], mask [M, slots], rows [N])`` or None.
    """
    grid = tuple(int(v) for v in features.shape[2:])
    n = len(data)
    masks = np.zeros((n, slots, *grid), np.float32)
    valid = np.zeros((n, slots), np.float32)
    ratings = np.zeros((n, slots, len(DIMENSIONS)), np.int64)
    if regions_rows is None:  # global pooling: one region, the whole map
        masks[:], valid[:] = 1.0, 1.0
    for i in range(n):
        if regions_rows is not None:
            row = regions_rows[i]
            masks[i] = grid_masks(row, slots, grid)
            valid[i, [int(r) for r in row["region_id"]]] = 1.0
        if describe_rows is not None:
            ratings[i] = ratings_of(describe_rows[i], slots)
    if text is not None:
        emb, tmask, rows = text
        text_emb = np.asarray(emb[rows], np.float32)
        text_valid = np.asarray(tmask[rows], np.float32)
    else:
        text_emb, text_valid = np.zeros((n, slots, 1), np.float32), np.zeros((n, slots), np.float32)
    mean, square, area = moments(features, np.asarray(feature_rows), torch.from_numpy(masks))
    return RSAData(
        data=data,
        mean=mean,
        square=square,
        area=area,
        grid=grid,
        valid=torch.from_numpy(valid),
        masks=torch.from_numpy(masks),
        text=torch.from_numpy(text_emb),
        text_valid=torch.from_numpy(text_valid),
        ratings=torch.from_numpy(ratings),
        stages=stages or {},
        dropped=dropped,
        basis=basis,
    )


def load_rsa_data(
    cache_dir: Path, dataset: str, stages: list[str], selection: Selection | None = None
) -> RSAData:
    """The head's inputs from ``selection``'s basis (by default the newest complete set)."""
    selection = selection or select_needed(cache_dir, dataset, stages)
    opened = dict(selection.basis.stages)
    items = read_items(cache_dir, dataset)
    backbone = _ok_rows(opened["backbone"], ["item_id", "status"])
    data = items.merge(backbone.rename(columns={"_row": "feature_row"})[["item_id", "feature_row"]])
    tables = {n: _ok_rows(opened[n]).set_index("item_id") for n in stages if n != "backbone"}
    known = set(items["item_id"])
    ok = {"backbone": len(known & set(backbone["item_id"]))}
    ok.update({n: len(known & set(t.index)) for n, t in tables.items()})
    for table in tables.values():
        data = data[data["item_id"].isin(table.index)]
    data = data.reset_index(drop=True)
    slots = (
        int(opened["regions"].manifest["config"]["max_regions"]) + 1 if "regions" in opened else 1
    )

    def rows_of(name: str) -> list | None:
        if name not in tables:
            return None
        return [tables[name].loc[item_id] for item_id in data["item_id"]]

    text = None
    if "text" in opened:
        rows = tables["text"].loc[data["item_id"], "_row"].to_numpy()
        text = (opened["text"].array("embeddings"), opened["text"].array("mask"), rows)
    loaded = build_rsa_data(
        data,
        opened["backbone"].array("features", mmap=True),
        data["feature_row"].to_numpy(),
        slots,
        regions_rows=rows_of("regions"),
        describe_rows=rows_of("describe"),
        text=text,
        stages=opened,
        dropped=len(items) - len(data),
        basis=selection.basis,
    )
    loaded.ok = ok
    return loaded

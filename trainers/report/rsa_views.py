"""What an rsa run's report shows per test image: the picture, its regions coloured by
the weight the split's checkpoint gives them, and each region's description and ratings.

The weights are recomputed from the run's own cache folders (the fingerprints in
``config.json``) for the chosen items only, with the head's
``forward(..., return_weights=True)``; the recomputed score is compared with
``predictions.csv``, so a changed cache or checkpoint is noticed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from qfeat.cache.items import read_items
from qfeat.cache.reader import Stage, list_stages
from qfeat.pipeline.levels import DIMENSIONS, LEVELS
from qfeat.trainers.loop import load_trained
from qfeat.trainers.report import plots
from qfeat.trainers.report.html import Html, figure, join, notes, number, table, tag
from qfeat.trainers.report.run import open_recorded
from qfeat.trainers.report.samples import Sample
from qfeat.trainers.rsa_data import head_of
from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import RunFolder

log = logging.getLogger(__name__)


@dataclass
class RegionInfo:
    region_id: int
    name: str  # "0".."K-1", or "rest" for the region of left-over pixels (id K)
    area: float  # share of the image, 0..1
    weight: float | None  # sigmoid(a_j), None when the head has no region weights
    colour: str | None  # "#rrggbb" of the weight in the overlay
    content: str | None = None
    raw: str | None = None
    ratings: dict[str, str] = field(default_factory=dict)  # dimension -> level word


@dataclass
class ImageDetail:
    picture: bytes | None = None  # JPEG thumbnail
    overlay: bytes | None = None  # JPEG, regions tinted by weight, with a colour bar
    regions: list[RegionInfo] = field(default_factory=list)
    score: float | None = None  # the checkpoint's score recomputed from the cache
    notes: list[str] = field(default_factory=list)

    def html(self) -> Html:
        """The item's section of the report page (escaped: see report/html.py)."""
        media = [figure(self.picture, "picture", "picture")]
        if self.overlay is not None:
            media.append(figure(self.overlay, "regions coloured by RSA weight (colour bar: "
                                "weight)", "regions coloured by weight"))  # fmt: skip
        parts = [tag("div", join(media), class_="media"), notes(self.notes)]
        if self.regions:
            dims = list(self.regions[0].ratings) or list(DIMENSIONS)
            rows = []
            for r in self.regions:
                swatch = tag("span", "", class_="swatch", style=f"background:{r.colour}")
                if r.content:
                    content: Any = r.content
                elif r.raw:
                    content = join([tag("span", "no content parsed; raw: ", class_="muted"),
                                    tag("span", r.raw[:300], class_="raw")])  # fmt: skip
                else:
                    content = tag("span", "–", class_="muted")
                rows.append([swatch, r.name, f"{100 * r.area:.1f}%", number(r.weight, 3), content,
                             *(r.ratings.get(d, "–") for d in dims)])  # fmt: skip
            parts.append(table(["", "region", "area", "weight", "description", *dims], rows,
                               numeric={2, 3}))  # fmt: skip
        return join(parts)


def _level(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    value = int(value)
    return LEVELS[value - 1] if 1 <= value <= len(LEVELS) else "unknown"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _ok_table(stage: Stage, ids: list[str]) -> pd.DataFrame:
    table = stage.table()
    table["_row"] = np.arange(len(table))
    table = table[(table["status"] == "ok") & table["item_id"].isin(ids)]
    return table.drop_duplicates("item_id").set_index("item_id")


def find_describe(cache_dir: Path, run: RunFolder, opened: dict[str, Stage]) -> Stage | None:
    """The describe rows of the run's regions: the recorded fingerprint, else the one
    the text stage was made from, else the newest complete one made from these regions."""
    if "describe" in opened:
        return opened["describe"]
    fingerprint = run.config.fingerprint("describe")
    if fingerprint is None and "text" in opened:
        fingerprint = opened["text"].manifest.get("upstream", {}).get("describe")
    if fingerprint is not None:
        found = [
            s
            for s in list_stages(cache_dir, run.config.dataset, "describe")
            if s.fingerprint == fingerprint
        ]
        return found[0] if found else None
    regions = opened["regions"].fingerprint
    made_from = [
        s
        for s in list_stages(cache_dir, run.config.dataset, "describe")
        if s.complete and s.manifest.get("upstream", {}).get("regions") == regions
    ]
    return made_from[-1] if made_from else None


def _label_map(row: Any) -> np.ndarray:
    """``int16 [height, width]``: region id per pixel (-1 where no region)."""
    from pycocotools import mask as mask_utils

    height, width = int(row["height"]), int(row["width"])
    labels = np.full((height, width), -1, np.int16)
    for rid, counts in zip(row["region_id"], row["rle"], strict=True):
        full = mask_utils.decode({"size": [height, width], "counts": str(counts).encode()})
        labels[full > 0] = int(rid)
    return labels


def _picture(path: str, size: tuple[int, int] | None, max_side: int) -> np.ndarray:
    """The image as the regions stage segmented it, ``size`` = (width, height)."""
    from PIL import Image

    from qfeat.pipeline.images import open_image

    picture = open_image(Path(path), max_side=max_side)
    if size is not None and (picture.shape[1], picture.shape[0]) != size:
        picture = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS))
    return picture


def image_details(
    run: RunFolder, samples: list[Sample], cache_dir: Path
) -> dict[tuple[str, str], ImageDetail]:
    """``(item_id, split) -> ImageDetail`` for every sample (raises DatasetError when the
    run's cache is gone)."""
    from qfeat.trainers.rsa_data import build_rsa_data, needed_stages
    from qfeat.trainers.rsa_train import build_head

    head = head_of(run.config)
    names = needed_stages(head["attention"], head["use_text"], head["use_ratings"])
    opened = {name: open_recorded(cache_dir, run, name) for name in names}
    ids = sorted({s.item_id for s in samples})
    tables = {name: _ok_table(stage, ids) for name, stage in opened.items()}
    usable = [i for i in ids if all(i in t.index for t in tables.values())]
    items = read_items(cache_dir, run.config.dataset).drop_duplicates("item_id")
    items = items.set_index("item_id")
    data = pd.DataFrame({"item_id": usable})
    data["mos"] = items["mos"].reindex(usable).to_numpy()
    regions_cfg = opened["regions"].manifest["config"] if "regions" in opened else {}
    slots = int(regions_cfg["max_regions"]) + 1 if "regions" in opened else 1

    def rows_of(name: str) -> list | None:
        return [tables[name].loc[i] for i in usable] if name in tables else None

    text = None
    if "text" in opened:
        text_rows = tables["text"].loc[usable, "_row"].to_numpy()
        stage = opened["text"]
        text = (stage.array("embeddings", mmap=True), stage.array("mask", mmap=True), text_rows)
    inputs = build_rsa_data(
        data,
        opened["backbone"].array("features", mmap=True),
        tables["backbone"].loc[usable, "_row"].to_numpy() if usable else np.zeros(0, int),
        slots,
        regions_rows=rows_of("regions"),
        describe_rows=rows_of("describe"),
        text=text,
        stages=opened,
    )
    describe = find_describe(cache_dir, run, opened) if "regions" in opened else None
    described = _ok_table(describe, ids) if describe is not None else None
    position = {item_id: i for i, item_id in enumerate(usable)}

    out: dict[tuple[str, str], ImageDetail] = {}
    models: dict[int, Any] = {}
    for sample in samples:
        detail = out.setdefault((sample.item_id, sample.split), ImageDetail())
        if sample.item_id not in position:
            detail.notes.append("this item has no usable rows in the run's cache")
            continue
        if sample.split_index not in models:
            model = build_head(inputs, head)
            load_trained(model, run.split_state(sample.split_index), run.name)
            models[sample.split_index] = model.eval()
        with torch.no_grad():
            batch = inputs.batch(np.array([position[sample.item_id]]), "cpu")
            score, weights = models[sample.split_index](batch, return_weights=True)
        detail.score = float(score[0])
        _describe_item(detail, sample, run, items, tables=tables, described=described,
                       weights=weights[0].numpy(), regions_cfg=regions_cfg,
                       attention=head["attention"])  # fmt: skip
    return out


def _describe_item(
    detail: ImageDetail,
    sample: Sample,
    run: RunFolder,
    items: pd.DataFrame,
    *,
    tables: dict[str, pd.DataFrame],
    described: pd.DataFrame | None,
    weights: np.ndarray,
    regions_cfg: dict[str, Any],
    attention: str,
) -> None:
    path = items["path"].get(sample.item_id)
    row = tables["regions"].loc[sample.item_id] if "regions" in tables else None
    size = (int(row["width"]), int(row["height"])) if row is not None else None
    picture = None
    try:
        picture = _picture(str(path), size, int(regions_cfg.get("max_side", 4096)))
    except Exception as exc:  # noqa: BLE001 - any unreadable picture: say so, go on
        log.warning("report: cannot read %s: %s", path, exc)
        detail.notes.append(f"the picture cannot be read ({path}): {exc}")
    if picture is not None:
        detail.picture = plots.jpeg(plots.resize(picture, plots.THUMB_SIDE))
    if row is None:
        detail.notes.append(
            "global pooling (--attention global): the head pools the whole feature map and "
            "has no region weights to show"
        )
        return
    if attention == "uniform":
        detail.notes.append("uniform ablation: every region has the same weight σ(0) = 0.5")
    max_regions = int(regions_cfg["max_regions"])
    ids = [int(r) for r in row["region_id"]]
    region_weights = {rid: float(weights[rid]) for rid in ids}
    colours = dict(zip(ids, plots.weight_colours([region_weights[r] for r in ids]), strict=True))
    names = {rid: "rest" if rid == max_regions else str(rid) for rid in ids}
    words: dict[int, dict[str, Any]] = {}
    if described is not None and sample.item_id in described.index:
        d = described.loc[sample.item_id]
        for j, rid in enumerate(d["region_id"]):
            words[int(rid)] = {
                "content": _text(d["content"][j]),
                "raw": _text(d["raw"][j]),
                "ratings": {dim: _level(d[dim][j]) for dim in DIMENSIONS},
            }
    elif "regions" in tables:
        detail.notes.append("no describe rows for this item in the cache")
    for j, rid in enumerate(ids):
        detail.regions.append(
            RegionInfo(region_id=rid, name=names[rid], area=float(row["area_frac"][j]),
                       weight=region_weights[rid], colour=colours[rid], **words.get(rid, {}))
        )  # fmt: skip
    detail.regions.sort(key=lambda r: -(r.weight or 0.0))
    if picture is not None:
        labels = plots.resize(_label_map(row).astype(np.int32) + 1, plots.THUMB_SIDE, True) - 1
        thumb = plots.resize(picture, plots.THUMB_SIDE)
        detail.overlay = plots.region_overlay(thumb, labels, region_weights, names)


def summary_rows(config: RunConfig) -> list[list[Any]]:
    """An rsa run's own settings for the report's summary: attention and ablations."""
    head = head_of(config)
    switches = (("no text", head.get("use_text")), ("no ratings", head.get("use_ratings")))
    ablation = [name for name, on in switches if on is False]
    return [["attention", ", ".join([str(head.get("attention", "?")), *ablation])]]

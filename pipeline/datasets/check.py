"""Validate a dataset root: items, missing and unreadable files, scores, split sizes.

Readability is checked cheaply: images are decoded at reduced size (JPEG draft mode, so a
truncated file still fails), videos are opened and their first frame decoded.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from qfeat.errors import ItemError
from qfeat.pipeline.datasets.base import DatasetAdapter, Item

MAX_LISTED = 50  # file names listed per problem kind in the report


def image_problem(path: Path) -> str | None:
    """None when the image decodes, else the reason: under the same pixel limit the
    stages apply (:func:`qfeat.pipeline.images.open_checked`), not Pillow's default."""
    from qfeat.pipeline.images import open_checked

    try:
        with open_checked(path) as img:
            img.draft("RGB", (64, 64))
            img.load()
    except ItemError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "unreadable"
        return f"{type(exc).__name__}: {exc}"
    return None


def video_problem(path: Path) -> str | None:
    """None when the file has a video stream whose first frame decodes, else the reason."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream"
            for _frame in container.decode(video=0):
                return None
            return "no decodable video frame"
    except Exception as exc:  # noqa: BLE001 - any demuxer/decoder failure
        return f"{type(exc).__name__}: {exc}"


def raw_video_problem(path: Path, width: int, height: int) -> str | None:
    """Headerless yuv420p: the size must be a whole, non-zero number of frames."""
    frame = width * height * 3 // 2
    size = path.stat().st_size
    if size == 0 or size % frame:
        return f"size {size} bytes is not a whole number of {width}x{height} yuv420p frames"
    return None


def _file_status(item: Item, adapter: DatasetAdapter, decode: bool) -> tuple[str, str | None]:
    if not item.path.is_file():
        return "missing", None
    if not decode:
        return "ok", None
    if adapter.raw_video is not None:
        why = raw_video_problem(item.path, *adapter.raw_video[:2])
    elif adapter.modality == "image":
        why = image_problem(item.path)
    else:
        why = video_problem(item.path)
    return ("unreadable", why) if why else ("ok", None)


def check_dataset(
    adapter: DatasetAdapter,
    decode: bool = True,
    workers: int = 4,
    on_total: Callable[[int], None] | None = None,
    on_item: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Check ``adapter``'s root and return the report (the ``datasets check --json`` dict)."""
    adapter.prepare()
    listing = adapter.listing()
    items = listing.items
    if on_total:
        on_total(len(items))

    def run(item: Item) -> tuple[str, str | None]:
        result = _file_status(item, adapter, decode)
        if on_item:
            on_item()
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        statuses = list(pool.map(run, items))

    missing = [it.item_id for it, (s, _) in zip(items, statuses, strict=True) if s == "missing"]
    unreadable = [
        {"item_id": it.item_id, "reason": why}
        for it, (s, why) in zip(items, statuses, strict=True)
        if s == "unreadable"
    ]
    scores = [it.mos for it in items]
    scale = listing.scale or adapter.scale  # generic adapters fit theirs to the data
    splits = Counter(it.split for it in items if it.split is not None)
    return {
        "name": adapter.name,
        "modality": adapter.modality,
        "root": str(adapter.root),
        "items": len(items),
        "missing": len(missing),
        "unreadable": len(unreadable),
        "rejected": len(listing.problems),
        "score_min": min(scores) if scores else None,
        "score_max": max(scores) if scores else None,
        "score_mean": statistics.fmean(scores) if scores else None,
        "score_range": [scale.low, scale.high],
        "higher_is_better": scale.higher_is_better,
        "splits": dict(sorted(splits.items())),
        "groups": len({it.group for it in items if it.group is not None}),
        "warnings": group_warnings(items),
        "missing_folders": missing_media_folders(adapter.root, missing),
        "missing_files": missing[:MAX_LISTED],
        "unreadable_files": unreadable[:MAX_LISTED],
        "rejected_rows": [
            {"item_id": p.item_id, "kind": p.kind, "reason": p.reason}
            for p in listing.problems[:MAX_LISTED]
        ],
        "duplicates": len(listing.duplicates),
        "duplicate_rows": [
            {"item_id": p.item_id, "reason": p.reason} for p in listing.duplicates[:MAX_LISTED]
        ],
        "decoded": decode,
    }


def missing_media_folders(root: Path, item_ids: list[str]) -> list[str]:
    """The topmost folders (relative to ``root``) that hold items but do not exist (a
    KonIQ root without ``1024x768/``)."""
    root = Path(root)
    missing: set[str] = set()
    for parent in sorted({PurePosixPath(i).parent for i in item_ids}):
        if str(parent) in (".", "") or (root / parent).is_dir():
            continue
        top = parent
        while str(top.parent) not in (".", "") and not (root / top.parent).is_dir():
            top = top.parent
        missing.add(str(top))
    return sorted(missing)


def _source_stem(item_id: str) -> str:
    """The file name without extension and without its last ``_``/``-``/``.`` part: what
    versions of one source usually share (``city_crf23.mp4`` -> ``city``)."""
    stem = PurePosixPath(item_id).stem
    return re.split(r"[_\-.](?=[^_\-.]*$)", stem)[0] if re.search(r"[_\-.]", stem) else stem


def group_warnings(items: list[Item]) -> list[str]:
    """A warning when every item is its own content group although many names look like
    versions of shared sources: random splits would then put versions of one source in
    both training and test (content leakage)."""
    if len(items) < 4 or len({it.group for it in items}) < len(items):
        return []
    stems = Counter(_source_stem(it.item_id) for it in items)
    shared = sum(n for n in stems.values() if n > 1)
    if shared < max(4, len(items) // 5):
        return []
    example = next(stem for stem, n in stems.most_common(1))
    names = [it.item_id for it in items if _source_stem(it.item_id) == example][:2]
    return [
        f"every item is its own content group, but {shared} of {len(items)} names look like "
        f"versions of shared sources (e.g. {', '.join(names)}): random splits would put "
        "versions of one source in both training and test; group them with "
        "--option group_pattern=REGEX (its first group is the source, e.g. '^(.*)_[^_]*$')"
    ]


def has_problems(report: dict[str, Any]) -> bool:
    return bool(
        report["missing"] or report["unreadable"] or report["rejected"] or not report["items"]
    )

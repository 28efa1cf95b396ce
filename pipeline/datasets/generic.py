"""Adapters for data in no official layout: a VQA label file, or any CSV table.

Both store their features under ``--name`` (default: the root folder's name). The score
range is taken from ``--option score_min=/score_max=`` or, when absent, from the data.
"""

from __future__ import annotations

import re
from pathlib import Path

from qfeat.errors import OptionError
from qfeat.pipeline.datasets.base import (
    DatasetAdapter,
    ItemProblem,
    Listing,
    ScoreScale,
    fit_scale,
    parse_score,
)
from qfeat.pipeline.datasets.tables import read_csv, require_columns

_SCALE_OPTIONS = {
    "score_min": "",
    "score_max": "",
    "higher_is_better": "true",
    # a regular expression on the item's path: its first group (or the whole match) is
    # the content group, so versions of one source never land on both sides of a split
    "group_pattern": "",
}


class GenericAdapter(DatasetAdapter):
    takes_name = True
    scale = ScoreScale(None, None)

    def _group(self, rel: str, given: str | None = None) -> str:
        """The content group of the item at ``rel``: ``given`` (a group column), else the
        ``group_pattern`` match, else the path itself (every item its own group)."""
        if given:
            return given
        pattern = self.opts["group_pattern"]
        if not pattern:
            return rel
        if not hasattr(self, "_group_re"):
            try:
                self._group_re = re.compile(pattern)
            except re.error as exc:
                raise OptionError(
                    f"--option group_pattern={pattern!r} is not a regular expression ({exc})"
                ) from exc
        found = self._group_re.search(rel)
        if found is None:
            return rel
        return found.group(1) if found.groups() and found.group(1) else found.group(0)

    def _scale(self, raw_scores: list[object]) -> ScoreScale:
        hib_text = self.opts["higher_is_better"].lower()
        if hib_text not in ("true", "false", "1", "0", "yes", "no"):
            raise OptionError(f"--option higher_is_better must be true or false, not {hib_text!r}")
        hib = hib_text in ("true", "1", "yes")
        fitted = fit_scale([parse_score(s) for s in raw_scores], hib)
        bounds = []
        for key, fallback in (("score_min", fitted.low), ("score_max", fitted.high)):
            text = self.opts[key]
            value = parse_score(text) if text else fallback
            if value is None:
                raise OptionError(f"--option {key} must be a number, not {text!r}")
            bounds.append(value)
        return ScoreScale(bounds[0], bounds[1], hib)


class LabelsFile(GenericAdapter):
    name = "labels"
    modality = "video"
    layout = "a label file (default labels.txt): 'relative/path, duration, fps, mos' per line"
    options = {"labels": "labels.txt", **_SCALE_OPTIONS}

    def list_items(self) -> Listing:
        path = self.require_file(self.opts["labels"])
        entries: list[tuple[str, str]] = []
        listing = Listing()
        for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [f.strip() for f in line.split(",")]
            if len(fields) != 4:
                listing.problems.append(
                    self._bad_line(path, lineno, f"expected 4 comma-separated fields, got {line!r}")
                )
                continue
            entries.append((fields[0], fields[3]))
        scale = self._scale([score for _, score in entries])
        for rel, score in entries:
            self.make_item(listing, rel, score, group=self._group(rel), scale=scale)
        return listing

    def _bad_line(self, path: Path, lineno: int, why: str) -> ItemProblem:
        return ItemProblem(f"{path.name}:{lineno}", "bad_row", f"{path.name} line {lineno}: {why}")


class CsvTable(GenericAdapter):
    name = "csv"
    modality = "image"
    layout = "any CSV: --option file=, path_col=, score_col= (optional group_col=, split_col=)"
    options = {
        "file": "",
        "path_col": "",
        "score_col": "",
        "group_col": "",
        "split_col": "",
        "modality": "image",
        **_SCALE_OPTIONS,
    }
    required_options = ("file", "path_col", "score_col")

    def __init__(self, root: Path, options: dict[str, str] | None = None):
        super().__init__(root, options)
        if self.opts["modality"] not in ("image", "video"):
            raise OptionError("--option modality must be image or video")
        self.modality = self.opts["modality"]  # type: ignore[misc]

    def list_items(self) -> Listing:
        path = self.require_file(self.opts["file"])
        rows = read_csv(path)
        cols = [self.opts[k] for k in ("path_col", "score_col", "group_col", "split_col")]
        require_columns(rows, [c for c in cols if c], path)
        path_col, score_col, group_col, split_col = cols
        scale = self._scale([r[score_col] for r in rows])
        listing = Listing()
        for row in rows:
            rel = row[path_col]
            self.make_item(
                listing,
                rel,
                row[score_col],
                split=(row[split_col] or None) if split_col else None,
                group=self._group(rel, row[group_col] if group_col else None),
                scale=scale,
            )
        return listing

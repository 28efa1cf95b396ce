"""Dataset adapter interface: an official on-disk layout in, a list of items out.

An adapter never decodes media. It reads the release's metadata file(s), turns every row
into an :class:`Item` whose ``item_id`` is the media file's POSIX path relative to the
dataset root, and reports rows it must reject (paths escaping the root, unusable scores)
as :class:`ItemProblem` instead of raising, so one bad row never hides the others.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

from qfeat.errors import DatasetError, OptionError


@dataclass(frozen=True)
class Item:
    """One media file with its score.

    ``mos`` is on the dataset's native scale; ``mos_01`` maps it to 0–1 with 1 = best
    quality whatever the dataset's direction. ``split`` is the official split label or
    None; ``group`` is the content key used for content-disjoint random splits.
    """

    item_id: str
    path: Path
    mos: float
    mos_01: float
    split: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class ItemProblem:
    """A metadata row that could not become an item. ``kind`` is a short machine word."""

    item_id: str
    kind: str
    reason: str


@dataclass
class Listing:
    """What an adapter found: usable items (in the release's order) and rejected rows."""

    items: list[Item] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)
    # the native score scale behind every item's mos_01 (the adapter's, or one fitted to
    # the data by generic adapters); stored with the cache's item table
    scale: ScoreScale | None = None
    # rows merged into an item listed before them (see qfeat.pipeline.datasets.duplicates)
    duplicates: list[ItemProblem] = field(default_factory=list)


@dataclass(frozen=True)
class ScoreScale:
    """A dataset's score range. ``low``/``high`` None means "taken from the data"."""

    low: float | None
    high: float | None
    higher_is_better: bool = True

    def describe(self) -> str:
        lo = "min" if self.low is None else f"{self.low:g}"
        hi = "max" if self.high is None else f"{self.high:g}"
        return f"{lo}–{hi}"


class DatasetAdapter:
    """Base class. Subclasses set the class attributes and implement :meth:`list_items`.

    ``options`` maps option names to their defaults (all values are strings, as typed on
    the command line); ``required_options`` must be given by the user.
    """

    name: ClassVar[str]
    modality: ClassVar[str]  # "image" or "video"
    layout: ClassVar[str]  # human-readable expected layout, shown by `qfeat datasets`
    scale: ClassVar[ScoreScale]
    has_official_splits: ClassVar[bool] = False
    options: ClassVar[dict[str, str]] = {}
    required_options: ClassVar[tuple[str, ...]] = ()
    takes_name: ClassVar[bool] = False  # generic adapters store under --name
    # (width, height, fps) for datasets of headerless yuv420p files, else None
    raw_video: ClassVar[tuple[int, int, float] | None] = None

    @property
    def data_version(self) -> int | None:
        """Version of generated data (the demo sets), part of every stage fingerprint so a
        regenerated set never reuses features of the old one; ``None`` for user data."""
        return None

    def __init__(self, root: Path, options: dict[str, str] | None = None):
        from qfeat.pipeline.datasets.duplicates import POLICIES

        self.root = Path(root)
        given = dict(options or {})
        # every adapter's option; kept out of ``opts`` (and so out of the fingerprints of
        # caches made before it existed) because it changes scores, not which files
        self.duplicates = given.pop("duplicates", "error")
        if self.duplicates not in POLICIES:
            raise OptionError(
                f"--option duplicates must be one of {', '.join(POLICIES)}, not {self.duplicates!r}"
            )
        follow = given.pop("follow_links", "false").strip().lower()
        if follow not in ("true", "false"):
            raise OptionError(f"--option follow_links must be true or false, not {follow!r}")
        self.follow_links = follow == "true"
        self._real_root: Path | None = None
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise OptionError(
                f"dataset '{self.name}' has no option {', '.join(unknown)} (its options: {known})"
            )
        missing = [k for k in self.required_options if not given.get(k)]
        if missing:
            raise OptionError(
                f"dataset '{self.name}' needs --option {missing[0]}=... "
                f"({self.options.get(missing[0]) or 'no default'})"
            )
        self.opts = {**self.options, **given}

    # -- to implement -------------------------------------------------------------------
    def list_items(self) -> Listing:  # pragma: no cover - abstract
        raise NotImplementedError

    def listing(self) -> Listing:
        """:meth:`list_items` with one row per item (the ``duplicates`` option decides
        what happens to rows of one file with different scores)."""
        from qfeat.pipeline.datasets.duplicates import merge_duplicates

        return merge_duplicates(self.list_items(), self.duplicates, self.name)

    # -- shared helpers ------------------------------------------------------------------
    def _link_out_of_root(self, item_id: str) -> str | None:
        """The link (relative to the root) through which ``item_id`` leaves the root, or
        None when its real path stays inside (or the file does not exist)."""
        if self._real_root is None:
            self._real_root = self.root.resolve()
        real = (self.root / item_id).resolve()
        if real == self._real_root or self._real_root in real.parents:
            return None
        return _first_link(self.root, item_id) or item_id

    def prepare(self) -> None:
        """Make sure the root exists. The demo adapters generate their data here."""
        if not self.root.is_dir():
            raise DatasetError(
                f"dataset root {self.root} does not exist; unpack {self.name} there, "
                f"pass --root DIR, or set QFEAT_DATA_ROOT (expected layout: {self.layout})"
            )

    def require_file(self, rel: str) -> Path:
        path = self.root / rel
        if not path.is_file():
            raise DatasetError(
                f"{self.name}: metadata file {path} not found; is --root the folder that "
                f"holds it? (expected layout: {self.layout})"
            )
        return path

    def make_item(
        self,
        listing: Listing,
        rel_path: str,
        score: object,
        *,
        split: str | None = None,
        group: str | None = None,
        scale: ScoreScale | None = None,
        source: str | None = None,
    ) -> None:
        """Validate one metadata row and append an item or a problem to ``listing``.

        ``rel_path`` is the media path relative to the root. When the adapter built it
        from a metadata value (``Images/`` + name), pass that value as ``source``: it
        must itself be a safe relative path, so ``/etc/x`` is not turned into
        ``Images/etc/x``.
        """
        scale = scale or self.scale
        rel = str(rel_path).strip().replace("\\", "/")
        item_id = safe_relative_path(rel)
        if source is not None and safe_relative_path(str(source).strip()) is None:
            item_id, rel = None, str(source).strip()
        if item_id and ".." in PurePosixPath(rel).parts and not _same_file(self.root, rel, item_id):
            item_id = None  # a `..` after a link: folding it would name another file
        if item_id is None:
            listing.problems.append(
                ItemProblem(
                    rel,
                    "escapes_root",
                    f"{self.name}: path '{rel}' escapes the dataset root; metadata paths "
                    "must be relative and stay inside the root (fix the metadata row)",
                )
            )
            return
        if not self.follow_links and (link := self._link_out_of_root(item_id)):
            listing.problems.append(
                ItemProblem(
                    item_id,
                    "link_escapes_root",
                    f"{self.name}: '{item_id}' is reached through the link {link}, which points "
                    "outside the dataset root; copy the file into the root, or pass "
                    "--option follow_links=true to allow links out of it",
                )
            )
            return
        mos = parse_score(score)
        if mos is None or not _in_range(mos, scale):
            # a range is said only when there is one (a generic csv's comes from the data)
            known = scale.low is not None and scale.high is not None
            expected = f"a number in {scale.describe()}" if known and mos is not None else ""
            why = f"expected {expected}" if expected else "which is not a number"
            listing.problems.append(
                ItemProblem(
                    item_id,
                    "bad_score",
                    f"{self.name}: item '{item_id}' has score {score!r}, {why} (fix or drop "
                    "the metadata row)",
                )
            )
            return
        listing.scale = scale
        listing.items.append(
            Item(
                item_id=item_id,
                path=self.root / item_id,
                mos=mos,
                mos_01=normalise(mos, scale),
                split=split,
                group=group,
            )
        )


def _same_file(root: Path, rel: str, item_id: str) -> bool:
    return os.path.realpath(root / rel) == os.path.realpath(root / item_id)


def _first_link(root: Path, item_id: str) -> str | None:
    """The first symlink on the way from ``root`` to ``item_id`` (relative), or None."""
    here = root
    for part in PurePosixPath(item_id).parts:
        here = here / part
        if here.is_symlink():
            return str(here.relative_to(root))
    return None


def safe_relative_path(rel: str) -> str | None:
    """Return ``rel`` as a clean POSIX relative path, or None when it escapes the root.

    Absolute paths, Windows drive paths and a ``..`` that climbs above the root are
    rejected; ``./`` components are dropped and ``x/..`` pairs folded (``img/../img/a.png``
    is ``img/a.png``), so the item id is canonical.
    """
    if not rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        return None
    parts: list[str] = []
    for part in PurePosixPath(rel).parts:
        if part == "..":
            if not parts:
                return None  # above the root
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts) or None


def parse_score(value: object) -> float | None:
    """A finite float, or None for blanks, text and NaN/inf."""
    if isinstance(value, bool):
        return None
    try:
        x = float(str(value).strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _in_range(x: float, scale: ScoreScale) -> bool:
    return (scale.low is None or x >= scale.low) and (scale.high is None or x <= scale.high)


def normalise(x: float, scale: ScoreScale) -> float:
    """Map ``x`` to 0–1 with 1 = best. Needs a bounded scale (see :func:`fit_scale`)."""
    if scale.low is None or scale.high is None:
        raise ValueError("normalise() needs a bounded scale")
    span = scale.high - scale.low
    t = 0.5 if span == 0 else (x - scale.low) / span
    return t if scale.higher_is_better else 1.0 - t


def fit_scale(scores: list[float], higher_is_better: bool = True) -> ScoreScale:
    """A scale spanning the observed scores (for generic adapters with no declared range)."""
    finite = [s for s in scores if s is not None]
    if not finite:
        return ScoreScale(0.0, 1.0, higher_is_better)
    return ScoreScale(min(finite), max(finite), higher_is_better)

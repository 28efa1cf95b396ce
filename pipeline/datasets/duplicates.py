"""One row per item: metadata that lists a file more than once.

Paths are already canonical (``./a.png`` and ``a.png`` are one item id, see
:func:`qfeat.pipeline.datasets.base.safe_relative_path`), and names of one file inside
the root (a link ``b.png -> a.png``) are one item under the first name listed. Rows of
one item that agree
(same score, split and group) become one item, noted in ``Listing.duplicates``. Rows
that disagree follow the dataset option ``duplicates``:

- ``error`` (default): the item is rejected with a ``duplicate_conflict`` problem naming
  its scores, and ``qfeat features`` refuses to run until the metadata is fixed;
- ``mean``: one item with the mean score (split and group of the first row);
- ``first``: the first row wins.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import replace

from qfeat.pipeline.datasets.base import Item, ItemProblem, Listing

POLICIES = ("error", "mean", "first")
CONFLICT = "duplicate_conflict"


def merge_duplicates(listing: Listing, policy: str, dataset: str) -> Listing:
    """``listing`` with one item per item id, in first-seen order (see module doc)."""
    rows: dict[str, list[Item]] = {}
    for item in listing.items:
        rows.setdefault(os.path.realpath(item.path), []).append(item)
    if all(len(r) == 1 for r in rows.values()):
        return listing
    items, problems, merged = [], list(listing.problems), list(listing.duplicates)
    for group in rows.values():
        item_id = group[0].item_id
        if len(group) == 1:
            items.append(group[0])
            continue
        aliases = [n for n in dict.fromkeys(r.item_id for r in group) if n != item_id]
        named = f"'{item_id}'" + (f" (also as {', '.join(aliases)}: one file)" if aliases else "")
        scores = ", ".join(f"{r.mos:g}" for r in group)
        agree = len({(r.mos, r.split) for r in group}) == 1  # groups follow the spelling
        if agree or policy == "first":
            items.append(group[0])
            kept = "identical rows" if agree else "kept the first row"
        elif policy == "mean":
            mos = statistics.fmean(r.mos for r in group)
            mos_01 = statistics.fmean(r.mos_01 for r in group)  # linear in mos
            items.append(replace(group[0], mos=mos, mos_01=mos_01))
            kept = f"averaged to {mos:g}"
        else:
            problems.append(
                ItemProblem(
                    item_id,
                    CONFLICT,
                    f"{dataset}: item {named} is listed {len(group)} times with different "
                    f"scores ({scores}); fix the metadata, or pass --option duplicates=mean "
                    "(average them) or --option duplicates=first",
                )
            )
            continue
        merged.append(
            ItemProblem(
                item_id,
                "duplicate",
                f"{dataset}: item {named} is listed {len(group)} times (scores {scores}): {kept}",
            )  # fmt: skip
        )
    return replace(listing, items=items, problems=problems, duplicates=merged)


def refuse_rejected(listing: Listing, dataset: str) -> None:
    """A DatasetError naming the metadata rows that cannot become items (a path out of
    the root, a score that is no number, one file listed with different scores):
    ``qfeat features`` refuses up front rather than leave such rows without a row in
    the cache, so it agrees with ``qfeat datasets check``."""
    from qfeat.errors import DatasetError

    found = listing.problems
    if found:
        lines = "\n".join(f"  {p.reason}" for p in found[:10])
        more = f"\n  ... and {len(found) - 10} more" if len(found) > 10 else ""
        raise DatasetError(
            f"{dataset}: {len(found)} metadata row(s) cannot become items; fix or remove "
            f"them (`qfeat datasets check` lists them all):\n{lines}{more}"
        )

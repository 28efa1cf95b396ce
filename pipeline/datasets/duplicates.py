"""One row per item: metadata that lists a file more than once.

Paths are already canonical (``./a.png`` and ``a.png`` are one item id, see
:func:`qfeat.pipeline.datasets.base.safe_relative_path`). Rows of one item that agree
(same score, split and group) become one item, noted in ``Listing.duplicates``. Rows
that disagree follow the dataset option ``duplicates``:

- ``error`` (default): the item is rejected with a ``duplicate_conflict`` problem naming
  its scores, and ``qfeat features`` refuses to run until the metadata is fixed;
- ``mean``: one item with the mean score (split and group of the first row);
- ``first``: the first row wins.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from qfeat.pipeline.datasets.base import Item, ItemProblem, Listing

POLICIES = ("error", "mean", "first")
CONFLICT = "duplicate_conflict"


def merge_duplicates(listing: Listing, policy: str, dataset: str) -> Listing:
    """``listing`` with one item per item id, in first-seen order (see module doc)."""
    rows: dict[str, list[Item]] = {}
    for item in listing.items:
        rows.setdefault(item.item_id, []).append(item)
    if all(len(r) == 1 for r in rows.values()):
        return listing
    items, problems, merged = [], list(listing.problems), list(listing.duplicates)
    for item_id, group in rows.items():
        if len(group) == 1:
            items.append(group[0])
            continue
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
                    f"{dataset}: item '{item_id}' is listed {len(group)} times with different "
                    f"scores ({scores}); fix the metadata, or pass --option duplicates=mean "
                    "(average them) or --option duplicates=first",
                )
            )
            continue
        merged.append(
            ItemProblem(
                item_id,
                "duplicate",
                f"{dataset}: item '{item_id}' is listed "
                f"{len(group)} times (scores {scores}): {kept}",
            )  # fmt: skip
        )
    return replace(listing, items=items, problems=problems, duplicates=merged)


def refuse_conflicts(listing: Listing, dataset: str) -> None:
    """A DatasetError naming every item listed with different scores (the ``error``
    policy): ``qfeat features`` does not guess which score is right."""
    from qfeat.errors import DatasetError

    found = [p for p in listing.problems if p.kind == CONFLICT]
    if found:
        lines = "\n".join(f"  {p.reason}" for p in found[:10])
        more = f"\n  ... and {len(found) - 10} more" if len(found) > 10 else ""
        raise DatasetError(
            f"{dataset}: {len(found)} item(s) listed more than once with different scores:\n"
            f"{lines}{more}"
        )

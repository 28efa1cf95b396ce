"""Train / validation / test splits for the evaluation protocol.

Official splits are used where the item table has them (KonIQ-10k: train/val/test;
LSVQ: train/test/test-1080p, every non-train/val label is a test set reported on its
own). Otherwise ``n`` random 80/20 splits with fixed seeds, content-disjoint: all items
of one group (reference image, source video) fall on the same side. A validation part
is always carved from the training part (group-disjoint too) for early stopping and
model selection; test items are never seen during training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qfeat.errors import DatasetError

TRAIN, VAL = "train", "val"
# the fewest usable items a trainer takes: two to train on, one to validate, one to test
# (metrics on so few items mean little; the paper-preset test trains on four)
MIN_ROWS = 4
log = logging.getLogger(__name__)
MIN_GROUPS = 2  # one content group each for training and test (a third for validation)


@dataclass(frozen=True)
class Split:
    """Row indices into the item table. ``test`` maps a test-set name to its rows."""

    index: int
    seed: int | None
    train: np.ndarray
    val: np.ndarray
    test: dict[str, np.ndarray] = field(default_factory=dict)
    official: bool = False


def _groups(items: pd.DataFrame) -> np.ndarray:
    groups = items["group"].where(items["group"].notna(), items["item_id"])
    return groups.to_numpy(dtype=object)


def refuse_too_few_groups(groups: np.ndarray) -> None:
    """Content-disjoint random splits put whole groups in training, validation and test.
    Fewer than :data:`MIN_GROUPS` groups leave the test part empty (``SRCC -, n=0`` on
    every split): refused before any training. With exactly :data:`MIN_GROUPS` there is
    no validation part: said up front, and model selection keeps the last epoch (the
    loop's stated rule for an undefined validation SRCC)."""
    found = len(set(groups))
    counted = f"{found} content group{'s' * (found != 1)} ({len(groups)} items)"
    if found < MIN_GROUPS:
        raise DatasetError(
            f"the cached items hold {counted}; content-disjoint random splits need at least "
            f"{MIN_GROUPS} (training and test), {MIN_GROUPS + 1} for a validation part. "
            "`qfeat features --limit N` takes the first N items in the dataset's order (the "
            "demo sets are ordered by content): compute more items"
        )
    if found == MIN_GROUPS:
        log.warning(
            "the cached items hold %s: no validation part is left, so validation SRCC is "
            "undefined and each split keeps its last epoch; cache items of a third group "
            "for model selection",
            counted,
        )


def _carve(rows: np.ndarray, groups: np.ndarray, frac: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (rest, part) with about ``frac`` of rows in ``part``, by group."""
    unique = np.array(sorted(set(groups[rows])), dtype=object)
    rng.shuffle(unique)
    n_part = max(1, int(round(len(unique) * frac))) if len(unique) > 1 else 0
    chosen = set(unique[:n_part])
    in_part = np.array([g in chosen for g in groups[rows]], dtype=bool)
    return rows[~in_part], rows[in_part]


def make_splits(
    items: pd.DataFrame,
    n_splits: int = 10,
    test_frac: float = 0.2,
    val_frac: float = 0.1,
    seed: int = 0,
) -> list[Split]:
    """The splits for ``items`` (columns item_id, split, group; row order = index space)."""
    groups = _groups(items)
    labels = items["split"]
    rows = np.arange(len(items))
    if labels.notna().any():
        labels = labels.fillna("").to_numpy(dtype=object)
        train = rows[labels == TRAIN]
        val = rows[labels == VAL]
        if not len(val):
            train, val = _carve(train, groups, val_frac, np.random.default_rng(seed))
        tests = {str(name): rows[labels == name] for name in sorted(set(labels) - {TRAIN, VAL, ""})}
        return [Split(0, None, train, val, tests, official=True)]
    refuse_too_few_groups(groups)
    splits = []
    for i in range(n_splits):
        rng = np.random.default_rng([seed, i])
        rest, test = _carve(rows, groups, test_frac, rng)
        train, val = _carve(rest, groups, val_frac, rng)
        splits.append(Split(i, seed * 1000 + i, train, val, {"test": test}))
    return splits

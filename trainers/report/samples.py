"""Which test items a report shows: the best, median and worst predicted ones.

A run's ``predictions.csv`` holds raw model scores. To compare them with MOS, each test
split's scores are mapped onto the MOS scale with the 4-parameter logistic of
:mod:`qfeat.trainers.metrics` fitted on that split (the mapping ``plcc`` and ``rmse`` use);
when the fit fails, a least-squares line; when the scores are constant, the split's
mean MOS. The absolute error of the mapped prediction ranks the items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qfeat.trainers.metrics import fit_mapping

KINDS = ("best", "median", "worst")


@dataclass(frozen=True)
class Sample:
    """One test prediction picked for the report."""

    kind: str  # best | median | worst
    item_id: str
    split: str  # the predictions.csv split, e.g. "test@3"
    split_index: int  # 3: the checkpoint split-03.safetensors made it
    mos: float
    pred: float  # raw model score
    mapped: float  # pred on the MOS scale
    error: float  # |mapped - mos|
    mapping: str  # logistic | linear | constant


def split_index(split: str) -> int:
    """``"test@3"`` -> 3 (the split number after the last ``@``)."""
    _, _, number = str(split).rpartition("@")
    return int(number)


def map_split(pred: np.ndarray, mos: np.ndarray) -> tuple[np.ndarray, str]:
    """``(mapped, kind)``: ``pred`` mapped onto the MOS scale by a monotonic fit
    (:func:`qfeat.trainers.metrics.fit_mapping`, unclipped)."""
    mapping = fit_mapping(pred, mos, bounds=(-np.inf, np.inf))
    return mapping(pred), mapping.kind


def map_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` (item_id, split, mos, pred) plus ``mapped``, ``error`` and
    ``mapping``; rows with a non-finite score or MOS are dropped."""
    frame = predictions.copy()
    frame = frame[np.isfinite(frame["pred"].astype(float)) & np.isfinite(frame["mos"])]
    frame["mapped"] = np.nan
    frame["mapping"] = ""
    for _, group in frame.groupby("split", sort=False):
        mapped, kind = map_split(group["pred"].to_numpy(), group["mos"].to_numpy())
        frame.loc[group.index, "mapped"] = mapped
        frame.loc[group.index, "mapping"] = kind
    frame["error"] = (frame["mapped"] - frame["mos"]).abs()
    return frame.reset_index(drop=True)


def choose_samples(mapped: pd.DataFrame, per_kind: int = 3) -> list[Sample]:
    """Up to ``per_kind`` items each with the smallest, the median and the largest
    absolute error (an output of :func:`map_predictions`); an item appears once even
    when several splits tested it, and fewer than ``3 * per_kind`` distinct items are
    shared out evenly between the three kinds. Order: best (smallest error first), median, worst
    (largest error first). Ties are broken by item id, then split, so the choice is
    deterministic."""
    order = mapped.sort_values(["error", "item_id", "split"], kind="mergesort")
    order = order.reset_index(drop=True)
    n = len(order)
    # with fewer than 3 * per_kind distinct items, share them out evenly between the kinds
    per_kind = min(per_kind, max(1, order["item_id"].nunique() // len(KINDS)))
    taken: set[str] = set()

    def take(indices, kind: str) -> list[Sample]:
        out = []
        for i in indices:
            if len(out) == per_kind:
                break
            row = order.iloc[i]
            if row["item_id"] in taken:
                continue
            taken.add(row["item_id"])
            out.append(
                Sample(
                    kind=kind,
                    item_id=str(row["item_id"]),
                    split=str(row["split"]),
                    split_index=split_index(row["split"]),
                    mos=float(row["mos"]),
                    pred=float(row["pred"]),
                    mapped=float(row["mapped"]),
                    error=float(row["error"]),
                    mapping=str(row["mapping"]),
                )
            )
        return out

    best = take(range(n), "best")
    worst = take(range(n - 1, -1, -1), "worst")
    middle = n // 2
    median = take(sorted(range(n), key=lambda i: (abs(i - middle), i)), "median")
    median.sort(key=lambda s: (s.error, s.item_id))
    return best + median + worst

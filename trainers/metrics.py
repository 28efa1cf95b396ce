"""Evaluation metrics as pure functions of predictions and MOS (1-D arrays).

SRCC and KRCC are rank correlations; PLCC is reported twice and always labelled:
``plcc`` is after the 4-parameter logistic mapping of VQEG,
``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` fitted from predictions to MOS,
and ``plcc_raw`` without it; ``rmse`` is after that mapping (in MOS units). Degenerate
input (constant predictions or MOS, fewer than 3 items) gives NaN with a ``note``, never
an exception.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -60.0, 60.0)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def fit_logistic(pred: np.ndarray, mos: np.ndarray) -> np.ndarray | None:
    """Parameters ``[b1, b2, b3, b4]`` mapping predictions to MOS, or None if the fit fails
    (it needs at least as many items as its four parameters)."""
    if pred.size < 4:
        return None
    p0 = [float(mos.max()), float(mos.min()), float(np.mean(pred)), float(np.std(pred)) or 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(logistic4, pred, mos, p0=p0, maxfev=20000)
    except (RuntimeError, ValueError, TypeError, optimize.OptimizeWarning):
        return None
    return params if np.all(np.isfinite(params)) else None


@dataclass(frozen=True)
class Mapping:
    """A monotonic increasing map from raw model scores to MOS (:func:`fit_mapping`):
    ``logistic`` (params b1..b4 of :func:`logistic4`), ``linear`` (slope, intercept) or
    ``constant``;
    the output is clipped to ``bounds`` (a fit on a small test set can extrapolate far
    outside the MOS scale; clipping keeps the map monotonic)."""

    kind: str
    params: tuple[float, ...]
    bounds: tuple[float, float] = (-np.inf, np.inf)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.kind == "logistic":
            y = logistic4(x, *self.params)
        elif self.kind == "linear":
            y = self.params[0] * x + self.params[1]
        else:
            y = np.full_like(x, self.params[0])
        return np.clip(y, *self.bounds)


def fit_mapping(pred, mos, bounds: tuple[float, float] | None = None) -> Mapping:
    """A monotonic increasing map from raw model scores ``pred`` to ``mos`` (1-D, same
    length), never a step, so distinct raw scores keep their order and stay distinct.

    In order of preference:

    - the 4-parameter logistic, bounded: its scale ``|b4|`` at least 1/8 of the
      predictions' range (an unbounded fit on ~20 test items can become a step with
      ``b4`` near 0 and put most items on one plateau), its ends ``b1 > b2`` inside the MOS
      scale (so the clipping below never flattens it inside the calibration range), and
      ``b1 - b2`` at least 5 % of the MOS range (else it is nearly flat or decreasing);
    - a least-squares line, when it rises;
    - the line mapping the predictions' range onto the MOS range (a model that ranks the
      calibration items against their MOS still keeps its order);
    - the mean MOS, when the predictions (or the MOS) are constant.

    Outputs are clipped to ``bounds`` (default: the range of ``mos`` widened by a quarter
    of its span on each side, room for the logistic's ends). The reported
    ``plcc`` (:func:`evaluate`) keeps the standard unbounded VQEG fit, for comparison with
    published numbers."""
    pred, mos = np.asarray(pred, np.float64).ravel(), np.asarray(mos, np.float64).ravel()
    keep = np.isfinite(pred) & np.isfinite(mos)
    pred, mos = pred[keep], mos[keep]
    if bounds is None and mos.size:
        margin = 0.25 * float(np.ptp(mos))
        bounds = (float(mos.min()) - margin, float(mos.max()) + margin)
    bounds = bounds or (-np.inf, np.inf)
    if pred.size < 2 or np.ptp(pred) == 0 or np.ptp(mos) == 0:
        return Mapping("constant", (float(mos.mean()) if mos.size else float("nan"),), bounds)
    params = bounded_logistic(pred, mos, bounds)
    if params is not None:
        return Mapping("logistic", params, bounds)
    slope, intercept = np.polyfit(pred, mos, 1)
    if not (np.isfinite(slope) and slope > 0):
        slope = np.ptp(mos) / np.ptp(pred)
        intercept = float(mos.min()) - slope * float(pred.min())
    return Mapping("linear", (float(slope), float(intercept)), bounds)


def bounded_logistic(
    pred: np.ndarray, mos: np.ndarray, bounds: tuple[float, float]
) -> tuple[float, ...] | None:
    """:func:`fit_mapping`'s bounded logistic fit, or None (too few items, no
    convergence, or nearly flat)."""
    if pred.size < 4:
        return None
    width, span = float(np.ptp(pred)), float(np.ptp(mos))
    lo = min(max(bounds[0], mos.min() - span), mos.min())
    hi = max(min(bounds[1], mos.max() + span), mos.max())
    lower = [lo, lo, float(pred.min()) - width, width / 8]
    upper = [hi, hi, float(pred.max()) + width, width * 10]
    p0 = [float(mos.max()), float(mos.min()), float(np.median(pred))]
    p0.append(float(np.clip(np.std(pred), lower[3], upper[3])))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(
                logistic4, pred, mos, p0=p0, bounds=(lower, upper), maxfev=20000
            )
    except (RuntimeError, ValueError, TypeError, optimize.OptimizeWarning):
        return None
    if not np.all(np.isfinite(params)) or params[0] - params[1] < 0.05 * span:
        return None
    return tuple(float(p) for p in params)


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = fn(a, b)[0]
    return float(value) if np.isfinite(value) else math.nan


def srcc(pred, mos) -> float:
    return _corr(stats.spearmanr, np.asarray(pred, float), np.asarray(mos, float))


def krcc(pred, mos) -> float:
    return _corr(stats.kendalltau, np.asarray(pred, float), np.asarray(mos, float))


def plcc(pred, mos) -> float:
    return _corr(stats.pearsonr, np.asarray(pred, float), np.asarray(mos, float))


def evaluate(pred, mos) -> dict[str, Any]:
    """All metrics: ``srcc``, ``krcc``, ``plcc`` (logistic), ``plcc_raw``, ``rmse``,
    ``n``, ``logistic_fit``, ``mapping`` and ``note``.

    ``logistic_fit``: ``ok``; ``linear`` when the logistic cannot be fitted (too few
    items, no convergence) and ``plcc``/``rmse`` are after a least-squares line instead;
    ``decreasing`` when the fitted logistic falls; ``skipped`` (degenerate input).
    ``mapping``: ``increasing`` or ``decreasing`` (the fitted curve or line), None when
    skipped. A decreasing mapping means the model ranks the items against their MOS:
    ``plcc`` then keeps the sign of that relation (negative, like ``srcc`` and
    ``plcc_raw``) instead of turning positive through the mapping. ``note`` (None unless
    degenerate, linear or decreasing) says it in words."""
    pred = np.asarray(pred, dtype=np.float64).ravel()
    mos = np.asarray(mos, dtype=np.float64).ravel()
    if pred.shape != mos.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {mos.shape[0]} scores")
    out: dict[str, Any] = {
        "n": int(pred.size),
        "srcc": math.nan,
        "krcc": math.nan,
        "plcc_raw": math.nan,
        "plcc": math.nan,
        "rmse": math.nan,
        "logistic_fit": "skipped",
        "mapping": None,
        "note": None,
    }
    if pred.size < 3:
        out["note"] = f"only {pred.size} items: correlations undefined"
        return out
    if not np.all(np.isfinite(pred)):
        out["note"] = "non-finite predictions"
        return out
    if np.ptp(mos) == 0:
        out["note"] = "constant MOS: correlations undefined"
        return out
    if np.ptp(pred) == 0:
        out["note"] = "constant predictions: correlations undefined"
        out["rmse"] = float(np.sqrt(np.mean((mos - mos.mean()) ** 2)))
        return out
    out["srcc"], out["krcc"], out["plcc_raw"] = srcc(pred, mos), krcc(pred, mos), plcc(pred, mos)
    params = fit_logistic(pred, mos)
    notes = []
    if params is None:
        slope, intercept = np.polyfit(pred, mos, 1)
        mapped = slope * pred + intercept
        out["logistic_fit"], falls = "linear", bool(slope < 0)
        notes.append(
            f"the 4-parameter logistic could not be fitted on {pred.size} items: plcc and "
            "rmse are after a least-squares line"
        )
    else:
        mapped = logistic4(pred, *params)
        falls = bool(params[0] < params[1])  # b1 < b2: the fitted curve falls
        out["logistic_fit"] = "decreasing" if falls else "ok"
    out["mapping"] = "decreasing" if falls else "increasing"
    if falls:
        notes.append(
            "the fitted mapping decreases: the model ranks these items against their MOS "
            "(see srcc and plcc_raw), so plcc keeps that negative sign"
        )
    out["note"] = "; ".join(notes) or None
    fitted = plcc(mapped, mos)
    out["plcc"] = -fitted if falls else fitted
    out["rmse"] = float(np.sqrt(np.mean((mapped - mos) ** 2)))
    return out

"""The ridge probe's settings (preset section ``[probe]``) and its ``qfeat train probe``
request (a light module: the CLI builds the command from it without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass

from qfeat.pipeline.settings import Settings
from qfeat.trainers.request import TrainRequest

SELECTIONS = ("loo", "val")


@dataclass(frozen=True)
class ProbeSettings(Settings):
    """Closed-form ridge regression on pooled cached features (``qfeat train probe``).

    The penalty is chosen per split from ``alpha_steps`` values spaced evenly in log
    between ``alpha_min`` and ``alpha_max`` (features standardised on the split's
    training part, so one grid fits every feature size): by the exact leave-one-out
    error on the training part (``loo``, as scikit-learn's RidgeCV does) or by SRCC on
    the split's validation part (``val``)."""

    section = "probe"
    alpha_min: float = 1e-3  # smallest ridge penalty tried (> 0)
    alpha_max: float = 1e5  # largest ridge penalty tried
    alpha_steps: int = 17  # penalties tried, log-spaced (1 = alpha_min only)
    selection: str = "loo"  # loo (leave-one-out on the training part) | val (validation SRCC)

    def validate(self) -> None:
        self.one_of("selection", SELECTIONS)
        self.at_least(1, "alpha_steps")
        if not self.alpha_min > 0:
            raise self._fail("alpha_min", "a number > 0", type(self)().alpha_min)
        if not self.alpha_max >= self.alpha_min:
            raise self._fail("alpha_max", f">= alpha_min ({self.alpha_min})", 1e5)


@dataclass
class ProbeRequest(TrainRequest):
    """``qfeat train probe`` takes only the options every trainer shares."""

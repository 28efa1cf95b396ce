"""What a trainer hands back for one split: the trainer contract's only result type.

The shared protocol (:mod:`qfeat.trainers.protocol`) owns splits, checkpoints, resume,
metrics, predictions and the run folder; a trainer only fits one split and returns a
:class:`FittedSplit`. Nothing here assumes gradient descent: the RSA and SCMA heads are
fitted by :func:`qfeat.trainers.loop.gradient_fit`, the ridge probe in closed form
(:mod:`qfeat.trainers.probe`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class FittedSplit:
    """One split's fitted model.

    - ``state``: tensors saved as the split's ``split-NN.safetensors`` (what ``evaluate``,
      ``predict`` and ``report`` load back through the trainer's hooks);
    - ``score(rows) -> float array [len(rows)]``: scores for rows of the job's data table;
    - ``history``: one record per epoch or fitting step, each with ``epoch`` (1-based) and
      optionally ``train_loss``, ``val_srcc``, ``lr`` (``history.csv``'s columns) and any
      trainer-specific keys;
    - ``params``: how many numbers were fitted (trainable parameters, coefficients).
    """

    state: dict[str, torch.Tensor]
    score: Callable[[np.ndarray], np.ndarray]
    history: list[dict[str, Any]] = field(default_factory=list)
    params: int = 0


#: ``fit(split, seed, on_epoch) -> FittedSplit``: fit one split's training part (select on
#: its validation part), calling ``on_epoch(record)`` after each history record.
FitSplit = Callable[[Any, int, Callable[[dict[str, Any]], None]], FittedSplit]

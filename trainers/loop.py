"""The training loop, readable top to bottom.

AdamW over the trainable parameters, linear warm-up then cosine decay (per step),
validation SRCC after every epoch, the best epoch's weights kept (and optional early
stopping), seeds fixed. Test items never enter this function.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from qfeat.trainers.fitted import FitSplit, FittedSplit
from qfeat.trainers.losses import training_loss
from qfeat.trainers.metrics import srcc

log = logging.getLogger(__name__)


@dataclass
class LoopConfig:
    epochs: int = 8
    batch_size: int = 12
    lr: float = 1e-3
    weight_decay: float = 5e-2
    warmup_epochs: float = 1.0
    rank_weight: float = 0.3
    loss: str = "qclip"  # the PLCC + ranking form (qfeat.trainers.losses)
    patience: int = 0  # epochs without validation improvement before stopping; 0 = never
    seed: int = 0


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def load_trained(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """``model`` with the trainable weights ``state`` saved (the frozen parts stay as
    built). A state that lacks one of the model's trainable weights, or holds weights the
    model does not have (a run trained by another qfeat version, or by another model),
    is refused with a DatasetError naming ``source`` instead of scoring with random
    weights."""
    from qfeat.errors import DatasetError

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a weight of another shape
        what = f"does not fit this model ({str(exc).splitlines()[-1].strip()})"
    else:
        missing = sorted(trainable & set(result.missing_keys))
        unexpected = ", ".join(result.unexpected_keys[:3])
        what = (
            f"lacks {', '.join(missing[:3])}"
            if missing
            else f"holds weights this model does not have ({unexpected})"
            if unexpected
            else ""
        )
    if what:
        raise DatasetError(
            f"{source} {what}: it was saved by another qfeat version or model; retrain the "
            "run with this qfeat"
        )
    return model


def predict(model: nn.Module, score: Callable, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Scores for ``rows`` (``score(rows) -> tensor``), in eval mode without gradients."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            out.append(score(rows[start : start + batch_size]).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def fit(
    model: nn.Module,
    score: Callable[[np.ndarray], torch.Tensor],
    mos: torch.Tensor,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    cfg: LoopConfig,
    *,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Train; returns the best epoch's trainable weights and the per-epoch history.

    ``score(rows)`` maps row indices to predicted scores (a differentiable tensor);
    ``mos[rows]`` are the targets (any scale: the losses are scale-free).
    """
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_rows) / cfg.batch_size))
    schedule = warmup_cosine(cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    loss_fn = training_loss(cfg.loss, cfg.rank_weight)
    best_state, best_srcc, stale = trainable_state(model), -math.inf, 0
    history: list[dict[str, Any]] = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
        losses = []
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            if len(rows) < 2:
                continue  # correlation losses need at least two items
            loss = loss_fn(score(rows), mos[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        val_pred = predict(model, score, val_rows, cfg.batch_size)
        val_srcc = srcc(val_pred, mos[val_rows].cpu().numpy()) if len(val_rows) > 2 else math.nan
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "val_srcc": val_srcc,
            "lr": scheduler.get_last_lr()[0],
        }
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if not math.isnan(val_srcc) and val_srcc > best_srcc:
            best_srcc, best_state, stale = val_srcc, trainable_state(model), 0
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience:
                break
    if best_srcc == -math.inf:  # no usable validation: keep the last epoch, and say so
        best_state = trainable_state(model)
        rule = (
            f"validation SRCC undefined on every epoch ({len(val_rows)} validation items, "
            "or constant scores): kept the last epoch"
        )
        if history:
            history[-1]["selection"] = rule
        log.warning("%s", rule)
    return best_state, history


def gradient_fit(
    build: Callable[[int], nn.Module],
    make_score: Callable[[nn.Module], Callable[[np.ndarray], torch.Tensor]],
    cfg: LoopConfig,
    mos: torch.Tensor,
    device: torch.device,
) -> FitSplit:
    """The trainer contract's ``fit`` for a head trained by :func:`fit`.

    ``build(split_index)`` returns a fresh model (seeded by the caller: the run's seed +
    the split index); ``make_score(model)(rows)`` maps rows of the data table to
    differentiable scores; ``mos`` holds every row's target. The best epoch's trainable
    weights are the split's state."""

    def fit_split(split, seed: int, on_epoch: Callable[[dict[str, Any]], None]) -> FittedSplit:
        torch.manual_seed(seed)
        model = build(split.index).to(device)
        score = make_score(model)
        split_cfg = LoopConfig(**{**cfg.__dict__, "seed": seed})
        best, history = fit(model, score, mos, split.train, split.val, split_cfg, on_epoch=on_epoch)
        model.load_state_dict(best, strict=False)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return FittedSplit(
            state=best,
            score=lambda rows: predict(model, score, rows, cfg.batch_size),
            history=history,
            params=params,
        )

    return fit_split

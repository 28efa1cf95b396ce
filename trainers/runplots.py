"""The pictures every run folder holds: ``scatter.png`` (prediction vs. MOS, every test
item of every split) and ``curves.png`` (training loss and validation SRCC per epoch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def plot_scatter(path: Path, predictions: pd.DataFrame, summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for name, group in predictions.groupby(predictions["split"].str.split("@").str[0]):
        ax.scatter(group["pred"], group["mos"], s=10, alpha=0.6, label=name)
    ax.set_xlabel("prediction (model score)")
    ax.set_ylabel("MOS")
    srcc, plcc = summary.get("srcc"), summary.get("plcc")
    ax.set_title(
        f"test SRCC {srcc:.3f}, PLCC {plcc:.3f}"
        if srcc is not None and plcc is not None
        else "test"
    )
    if ax.get_legend_handles_labels()[0]:  # no test item: no legend, no matplotlib warning
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(path: Path, histories: list[list[dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    for i, history in enumerate(histories):
        epochs = [h.get("epoch", k + 1) for k, h in enumerate(history)]
        # a trainer's history may lack either (the contract requires only "epoch")
        style = {"alpha": 0.7, "marker": "o" if len(history) == 1 else None}
        a.plot(epochs, [h.get("train_loss", np.nan) for h in history], label=f"split {i}", **style)
        b.plot(epochs, [h.get("val_srcc", np.nan) for h in history], **style)
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    b.set_xlabel("epoch")
    b.set_ylabel("validation SRCC")
    if 0 < len(histories) <= 10:
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

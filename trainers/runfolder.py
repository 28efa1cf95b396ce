"""A run folder: metrics.json, predictions.csv, config.json, checkpoints, plots.

``metrics.json`` keys: ``test`` (means over splits of ``srcc``, ``krcc``, ``plcc``,
``plcc_raw``, ``rmse``), ``median`` and ``std`` (same keys), ``splits`` (one object per
split with ``split`` and the same keys, per test set), ``trainable_params``,
``train_seconds``. ``predictions.csv``: ``item_id, split, mos, pred`` (``split`` is the
test-set name and split number, e.g. ``test@3``; ``pred`` is the raw model score).
``history.csv``: ``split, epoch, train_loss, val_srcc, lr``, one row per trained epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qfeat.errors import DatasetError, OptionError
from qfeat.trainers.metrics import evaluate

KEYS = ("srcc", "krcc", "plcc", "plcc_raw", "rmse")
CONFIG = "config.json"


def run_folder(runs_dir: Path, name: str) -> Path:
    """Where a new (or resumed) run called ``name`` lives: directly under ``runs_dir``.
    A name that is not one plain folder name (``../x``, ``a/b``, an absolute path) is
    refused, so ``--run`` never writes outside the runs dir."""
    plain = name and name not in (".", "..") and "/" not in name and "\\" not in name
    if not plain or Path(name).is_absolute():
        raise OptionError(
            f"--run must be a plain folder name (created under {runs_dir}), not {name!r}"
        )
    return Path(runs_dir) / name


def find_run(run: str | Path, runs_dir: Path | None = None) -> Path:
    """An existing run: a run folder, or a run name under ``runs_dir`` (default
    ``$QFEAT_RUNS_DIR``). Every command that takes a RUN resolves it here."""
    from qfeat.pipeline.paths import runs_dir as default_runs_dir

    path = Path(run).expanduser()
    folder = path if path.is_dir() else default_runs_dir(runs_dir) / str(run)
    if not (folder / CONFIG).is_file():
        raise DatasetError(
            f"no run folder {run}: {folder.absolute()} holds no {CONFIG} (give a run folder, "
            f"or a run name under {default_runs_dir(runs_dir)} / --runs-dir)"
        )
    return folder.absolute()


def read_config(folder: Path) -> dict[str, Any]:
    """A run's ``config.json`` (what it was trained on and how)."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise DatasetError(f"{folder} is not a qfeat run folder (no {CONFIG})")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def summarise(per_split: list[dict[str, Any]], test_name: str = "test") -> dict[str, Any]:
    """``{"test": means, "median": ..., "std": ...}`` over the splits of ``test_name``."""
    """Mean, median and std over splits of one test set's metrics."""
    rows = [s for s in per_split if s["test_set"] == test_name]
    out: dict[str, dict[str, float | None]] = {"test": {}, "median": {}, "std": {}}
    for key in KEYS:
        values = np.array([r[key] for r in rows if r[key] is not None], dtype=float)
        out["test"][key] = _clean(float(values.mean())) if values.size else None
        out["median"][key] = _clean(float(np.median(values))) if values.size else None
        out["std"][key] = _clean(float(values.std())) if values.size else None
    return out


def split_metrics(
    split: int, test_set: str, item_ids, mos, pred
) -> tuple[dict[str, Any], pd.DataFrame]:
    m = evaluate(pred, mos)
    record = {"split": split, "test_set": test_set, "n": m["n"], "note": m["note"]}
    record.update({k: _clean(m[k]) for k in KEYS})
    frame = pd.DataFrame(
        {"item_id": item_ids, "split": f"{test_set}@{split}", "mos": mos, "pred": pred}
    )
    return record, frame


def write_run(
    folder: Path,
    per_split: list[dict[str, Any]],
    predictions: pd.DataFrame,
    config: dict[str, Any],
    histories: list[list[dict[str, Any]]],
    trainable_params: int,
    train_seconds: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    test_sets = sorted({s["test_set"] for s in per_split})
    main = "test" if "test" in test_sets else (test_sets[0] if test_sets else "test")
    metrics = summarise(per_split, main)
    metrics["splits"] = per_split
    metrics["trainable_params"] = trainable_params
    metrics["train_seconds"] = round(train_seconds, 3)
    for name in test_sets:
        if name != main:
            metrics[name] = summarise(per_split, name)["test"]  # e.g. LSVQ test-1080p
    metrics.update(extra or {})
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    predictions.to_csv(folder / "predictions.csv", index=False)
    (folder / CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n")
    plot_scatter(folder / "scatter.png", predictions, metrics["test"])
    history = [{"split": i, **record} for i, h in enumerate(histories) for record in h]
    pd.DataFrame(history, columns=["split", "epoch", "train_loss", "val_srcc", "lr"]).to_csv(
        folder / "history.csv", index=False
    )
    plot_curves(folder / "curves.png", histories)
    return metrics


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
        epochs = [h["epoch"] for h in history]
        a.plot(epochs, [h["train_loss"] for h in history], alpha=0.7, label=f"split {i}")
        b.plot(epochs, [h["val_srcc"] for h in history], alpha=0.7)
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    b.set_xlabel("epoch")
    b.set_ylabel("validation SRCC")
    if len(histories) <= 10:
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

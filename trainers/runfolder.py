"""A run folder: the one object that reads and writes what a training run leaves.

Files: ``config.json`` (:class:`qfeat.trainers.runconfig.RunConfig`), ``metrics.json``,
``predictions.csv``, ``history.csv``, ``split-NN.safetensors`` (each split's trainable
weights), ``split-NN.json`` and ``resume.json`` (resuming, :mod:`qfeat.trainers.protocol`),
``eval-<dataset>.json`` (``qfeat evaluate``), ``scatter.png`` and ``curves.png``.

``metrics.json`` keys: ``test`` (means over splits of ``srcc``, ``krcc``, ``plcc``,
``plcc_raw``, ``rmse``), ``median`` and ``std`` (same keys), ``splits`` (one object per
split with ``split``, the same keys, ``n``, ``logistic_fit``, ``mapping`` and ``note``, per
test set: see :func:`qfeat.trainers.metrics.evaluate`), ``trainable_params``,
``train_seconds``. ``predictions.csv``: ``item_id, split, mos, pred`` (``split`` is the
test-set name and split number, e.g. ``test@3``; ``pred`` is the raw model score).
``history.csv``: ``split, epoch, train_loss, val_srcc, lr``, one row per trained epoch.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qfeat.errors import DatasetError, OptionError
from qfeat.trainers.metrics import evaluate
from qfeat.trainers.runconfig import RunConfig

KEYS = ("srcc", "krcc", "plcc", "plcc_raw", "rmse")
CONFIG = "config.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
CHECKPOINT = "split-{:02d}.safetensors"
RESUME = "resume.json"  # the settings a run was started with (qfeat.trainers.protocol)


class RunFolder:
    """One run folder. Build it with :meth:`find` (an existing run, by folder or name)
    or :meth:`create` (where a new or resumed run writes)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> RunFolder:
        """Where a new (or resumed) run called ``name`` lives: directly under
        ``runs_dir``. A name that is not one plain folder name (``../x``, ``a/b``, an
        absolute path) is refused, so ``--run`` never writes outside the runs dir."""
        plain = name and name not in (".", "..") and "/" not in name and "\\" not in name
        if not plain or Path(name).is_absolute():
            raise OptionError(
                f"--run must be a plain folder name (created under {runs_dir}), not {name!r}"
            )
        return cls(Path(runs_dir) / name)

    @classmethod
    def find(cls, run: str | Path, runs_dir: Path | None = None) -> RunFolder:
        """An existing run: a run folder, or a run name under ``runs_dir`` (default
        ``$QFEAT_RUNS_DIR``). Every command that takes a RUN resolves it here."""
        from qfeat.pipeline.paths import runs_dir as default_runs_dir

        path = Path(run).expanduser()
        folder = path if path.is_dir() else default_runs_dir(runs_dir) / str(run)
        cls(folder).require_finished()
        if not (folder / CONFIG).is_file():
            raise DatasetError(
                f"no run folder {run}: {folder.absolute()} holds no {CONFIG} (give a run "
                f"folder, or a run name under {default_runs_dir(runs_dir)} / --runs-dir)"
            )
        return cls(folder.absolute())

    def started(self) -> dict[str, Any] | None:
        """The settings training was started with (``resume.json``), or None when no
        training started here."""
        path = self.path / RESUME
        if not path.is_file():
            return None
        try:
            spec = json.loads(path.read_text() or "{}")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc
        return spec if isinstance(spec, dict) else {}

    def require_finished(self) -> None:
        """A DatasetError naming the resume command when training started in this folder
        (``resume.json``) but has not finished (no ``metrics.json`` yet)."""
        if self.started() is not None and not (self.path / METRICS).is_file():
            done = len(self.checkpoints())
            raise DatasetError(
                f"run {self.name} has not finished ({done} split(s) done): run the same "
                f"`qfeat train` command with --run {self.name} to resume it; its metrics, "
                "predictions and config are written when every split is done"
            )

    # --- reading --------------------------------------------------------------------
    def _json(self, name: str) -> Any:
        path = self.path / name
        if name != CONFIG:
            self.require_finished()
        if not path.is_file():
            raise DatasetError(f"{self.path} is not a complete qfeat run folder: no {name}")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc

    @cached_property
    def config(self) -> RunConfig:
        """What the run was trained on and how (``config.json``)."""
        return RunConfig.from_json(self._json(CONFIG), str(self.path / CONFIG))

    @cached_property
    def metrics(self) -> dict[str, Any]:
        return self._json(METRICS)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """``predictions.csv``: every test item of every split, raw model scores."""
        path = self.path / PREDICTIONS
        self.require_finished()
        if not path.is_file():
            raise DatasetError(f"{self.path} is not a complete qfeat run folder: no {PREDICTIONS}")
        try:
            frame = pd.read_csv(path, dtype={"item_id": str, "split": str})
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc
        missing = {"item_id", "split", "mos", "pred"} - set(frame.columns)
        if missing:
            raise DatasetError(f"{path} lacks the columns {sorted(missing)}")
        split = frame["split"].astype(str)
        broken = ~split.str.fullmatch(r".+@\d+") | frame["mos"].isna() | frame["item_id"].isna()
        if broken.any():  # e.g. a file name with a bare '\r', written unquoted before
            row = int(broken.to_numpy().argmax()) + 2  # the file's line: header is 1
            raise DatasetError(
                f"{path} has {int(broken.sum())} malformed rows (first at line {row}): "
                "not as qfeat writes it; train the run again"
            )
        return frame

    def complete(self) -> RunFolder:
        """This folder, once its config, metrics and predictions all read (a
        DatasetError names what is missing)."""
        if not self.path.is_dir():
            raise DatasetError(f"no run folder at {self.path} (give a run folder or a run name)")
        _ = self.config, self.metrics, self.predictions
        return self

    def checkpoints(self) -> list[Path]:
        """Every split's saved weights, in split order."""
        return sorted(self.path.glob(CHECKPOINT.replace("{:02d}", "*")))

    def states(self) -> list[dict[str, Any]]:
        """Every split's trainable weights, in split order (safetensors, no pickle); a
        DatasetError when the run saved none."""
        paths = self.checkpoints()
        if not paths:
            raise DatasetError(f"{self.path} has no checkpoints (split-NN.safetensors)")
        return [_read_checkpoint(p) for p in paths]

    def split_state(self, index: int) -> dict[str, Any]:
        """The trainable weights split ``index`` saved (safetensors, no pickle)."""
        path = self.path / CHECKPOINT.format(index)
        if not path.is_file():
            raise DatasetError(f"{self.path} has no checkpoint {path.name}")
        return _read_checkpoint(path)

    def eval_path(self, dataset: str) -> Path:
        return self.path / f"eval-{dataset}.json"

    # --- writing --------------------------------------------------------------------
    def write_eval(self, dataset: str, result: dict[str, Any]) -> Path:
        path = self.eval_path(dataset)
        path.write_text(json.dumps(result, indent=2) + "\n")
        return path

    def write(
        self,
        config: RunConfig,
        per_split: list[dict[str, Any]],
        predictions: pd.DataFrame,
        histories: list[list[dict[str, Any]]],
        trainable_params: int,
        train_seconds: float,
        *,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Every file of a finished run; returns ``metrics.json``'s content."""
        from qfeat.trainers.runplots import plot_curves, plot_scatter

        folder = self.path
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
        (folder / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
        write_predictions(predictions, folder / PREDICTIONS)
        (folder / CONFIG).write_text(json.dumps(config.to_json(), indent=2, default=str) + "\n")
        plot_scatter(folder / "scatter.png", predictions, metrics["test"])
        history = [{"split": i, **record} for i, h in enumerate(histories) for record in h]
        columns = ["split", "epoch", "train_loss", "val_srcc", "lr"]
        pd.DataFrame(history, columns=columns).to_csv(folder / "history.csv", index=False)
        plot_curves(folder / "curves.png", histories)
        for name in ("config", "metrics", "predictions"):
            self.__dict__.pop(name, None)  # read back fresh
        return metrics


@contextmanager
def run_lock(folder: RunFolder) -> Iterator[None]:
    """One ``qfeat train`` writing a run folder at a time: a second one with the same
    ``--run`` is refused at once (both would write the same splits). The lock is the
    folder's ``.train.lock`` (an OS lock, flock: it dies with its process)."""
    from filelock import FileLock, Timeout

    folder.path.mkdir(parents=True, exist_ok=True)
    path = folder.path / ".train.lock"
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DatasetError(
            f"another `qfeat train` is writing run {folder.name} in {folder.path.parent} (it "
            f"holds {path}); wait for it to finish, or pass another --run name"
        ) from None
    try:
        yield
    finally:
        lock.release()


def write_predictions(frame: pd.DataFrame, path: Path) -> None:
    """``predictions.csv`` with every text field quoted: Python's csv quotes only the
    line terminator's characters, so a ``\\r`` in a file name split its row in two."""
    frame.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def summarise(per_split: list[dict[str, Any]], test_name: str = "test") -> dict[str, Any]:
    """``{"test": means, "median": ..., "std": ..., "valid_splits", "n_splits"}`` over the
    splits of ``test_name``. A split whose metric is undefined (NaN: constant predictions,
    too few items) is left out of that metric's statistics and counted: ``valid_splits``
    is the number of splits with a defined SRCC, ``n_splits`` all of them."""
    rows = [s for s in per_split if s["test_set"] == test_name]
    out: dict[str, Any] = {"test": {}, "median": {}, "std": {}}
    out["valid_splits"] = sum(1 for r in rows if r.get("srcc") is not None)
    out["n_splits"] = len(rows)
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
    record.update(logistic_fit=m["logistic_fit"], mapping=m["mapping"])
    record.update({k: _clean(m[k]) for k in KEYS})
    frame = pd.DataFrame(
        {"item_id": item_ids, "split": f"{test_set}@{split}", "mos": mos, "pred": pred}
    )
    return record, frame


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A run's safetensors checkpoint; a file safetensors cannot parse (damaged, or
    something else renamed into the run: it is never unpickled) is one DatasetError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise DatasetError(
            f"{path} is not a readable safetensors checkpoint ({exc}); train the run again"
        ) from exc

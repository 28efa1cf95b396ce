"""The split protocol's reporting: per-epoch progress events and per-split log lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from qfeat.errors import DatasetError
from qfeat.trainers.loop import LoopConfig, gradient_fit
from qfeat.trainers.protocol import TrainJob, run_splits, targets
from qfeat.trainers.splits import make_splits


def _data(n: int = 60) -> tuple[pd.DataFrame, torch.Tensor]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    data = pd.DataFrame(
        {
            "item_id": [f"i{k:03d}" for k in range(n)],
            "split": [None] * n,
            "group": [f"g{k // 2}" for k in range(n)],
            "mos": x + 0.1 * rng.normal(size=n),
        }
    )
    return data, torch.tensor(x, dtype=torch.float32)


def _run(tmp_path, cfg: LoopConfig, progress=None, spec=None, log=None):
    data, x = _data()
    splits = make_splits(data, n_splits=2, seed=0)

    def make_score(model):
        return lambda rows: model(x[torch.as_tensor(rows)].unsqueeze(-1)).squeeze(-1)

    lines: list[str] = []
    fit = gradient_fit(
        lambda _: nn.Linear(1, 1), make_score, cfg, targets(data, "cpu"), torch.device("cpu")
    )
    job = TrainJob(data, splits, fit, tmp_path, steps=cfg.epochs, seed=cfg.seed)
    out = run_splits(job, log or lines.append, progress, spec)
    return out if spec is not None else lines


def test_progress_counts_every_epoch_of_every_split(tmp_path):
    events: list[dict] = []
    lines = _run(tmp_path, LoopConfig(epochs=4, batch_size=8, lr=1e-2), events.append)
    assert [(e["split"], e["epoch"], e["done"]) for e in events] == [
        (s, e, s * 4 + e) for s in (0, 1) for e in (1, 2, 3, 4)
    ]
    assert {e["total"] for e in events} == {8}
    assert all(np.isfinite(e["val_srcc"]) for e in events)
    # with a progress callback the log holds only the test results, one per split
    assert len(lines) == 2 and all(
        line.startswith(f"split {i} test: SRCC ") for i, line in enumerate(lines)
    )


def test_a_split_stopped_early_counts_as_finished(tmp_path):
    """lr 0: validation never improves after epoch 1, so patience 1 stops at epoch 2; the
    bar still reaches the end of that split before the next one starts."""
    events: list[dict] = []
    _run(tmp_path, LoopConfig(epochs=5, batch_size=8, lr=0.0, patience=1), events.append)
    assert [(e["split"], e["epoch"], e["done"]) for e in events] == [
        (0, 1, 1), (0, 2, 2), (0, 2, 5), (1, 1, 6), (1, 2, 7), (1, 2, 10),
    ]  # fmt: skip


def test_without_progress_every_epoch_is_a_log_line(tmp_path):
    lines = _run(tmp_path, LoopConfig(epochs=3, batch_size=8, lr=1e-2))
    epochs = [line for line in lines if " epoch " in line]
    assert len(epochs) == 6 and epochs[0].startswith("split 0 epoch 1: loss ")


def test_resume_skips_finished_splits_and_refuses_other_settings(tmp_path):
    cfg = LoopConfig(epochs=3, batch_size=8, lr=1e-2)
    spec = {"trainer": "test", "epochs": 3}
    first = _run(tmp_path, cfg, spec=spec)
    assert first.resumed_seconds == 0.0 and (tmp_path / "resume.json").is_file()
    assert sorted(p.name for p in tmp_path.glob("split-*")) == [
        "split-00.json", "split-00.safetensors", "split-01.json", "split-01.safetensors",
    ]  # fmt: skip
    (tmp_path / "split-01.json").unlink()  # killed while split 1 was being written
    lines, events = [], []
    again = _run(tmp_path, cfg, events.append, spec=spec, log=lines.append)
    assert lines[:2] == [
        f"resuming {tmp_path}: 1 of 2 splits already finished",
        f"split 0: already finished in {tmp_path.name}, kept",
    ]
    assert again.records == first.records and again.histories == first.histories
    assert again.params == first.params
    pd.testing.assert_frame_equal(again.predictions, first.predictions)
    assert again.resumed_seconds > 0  # split 0's recorded training time
    assert [e["done"] for e in events] == [3, 4, 5, 6]
    try:
        _run(tmp_path, cfg, spec={**spec, "epochs": 4})
    except DatasetError as exc:
        assert "(epochs differ)" in str(exc)
    else:
        raise AssertionError("a run folder accepted other settings")


def test_undefined_validation_falls_back_to_the_last_epoch_and_says_so(caplog):
    """Issue 36 item 7: with too few validation items the SRCC is NaN on every epoch;
    the loop kept the last epoch without saying so."""
    import torch

    from qfeat.trainers.loop import fit
    from qfeat.trainers.protocol import epoch_line

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, mos = torch.randn(10, 3), torch.rand(10)
    train, val = np.arange(8), np.arange(8, 10)  # two validation items: SRCC undefined
    with caplog.at_level("WARNING"):
        _, history = fit(model, lambda rows: model(x[rows]).squeeze(-1), mos, train, val,
                         LoopConfig(epochs=2, batch_size=4, lr=1e-2))  # fmt: skip
    assert all(np.isnan(r["val_srcc"]) for r in history)
    assert "kept the last epoch" in history[-1]["selection"]
    assert "kept the last epoch" in caplog.text
    assert "(validation SRCC undefined on every epoch" in epoch_line(0, history[-1])

"""Cache stages run live, in-process, on files that were never cached.

:class:`LiveStages` builds each stage exactly as a run's ``config.json`` recorded it
(the stage's fully resolved config and seed) and refuses when the model a stage would
build now is not the one the run's cache was made with (its ``model_identity()``:
weights sha256, hub revision or seed). :meth:`LiveStages.run` then does what a Dask
worker does for a shard (see :mod:`qfeat.pipeline.worker`): ``process_shard`` on a chunk of
items, with the upstream stages' rows as ``item_id -> row`` and their configs in one
:class:`~qfeat.pipeline.stages.base.Upstream`. Nothing is written; floating arrays are
rounded to fp16 exactly as the cache writer stores them, so a file scores the same live
as from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from qfeat.cache.writer import prepare_arrays
from qfeat.errors import DatasetError
from qfeat.pipeline.stages import get_stage
from qfeat.pipeline.stages.base import Upstream
from qfeat.trainers.compat import stage_difference

log = logging.getLogger(__name__)


@dataclass
class StageOutput:
    """One stage's result for a chunk: ``rows`` (one dict per item, in order, with
    ``item_id``, ``status``, ``error`` and the stage's columns) and its dense arrays
    (``[items, ...]``, fp16 for floating arrays, zeros for failed items)."""

    rows: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]


def recorded_config(record: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``(stage config without seed, seed)`` from a run's stage record."""
    cfg = dict(record["config"])
    seed = int(cfg.pop("seed", 0))
    return cfg, seed


class LiveStages:
    """The stages ``order`` (dependency order) built from ``records`` (``config.json``
    ``stages``: per stage ``{"config", "model", ...}``), checked and loaded."""

    def __init__(
        self,
        records: dict[str, dict[str, Any]],
        order: list[str],
        device: str = "cpu",
        run_name: str = "the run",
    ):
        self.order = list(order)
        self.stages = {}
        for name in self.order:
            if name not in records:
                raise DatasetError(
                    f"{run_name} does not record the '{name}' stage it was trained on, so it "
                    "cannot score new files; retrain it with this version of qfeat"
                )
            cfg, seed = recorded_config(records[name])
            stage = get_stage(name)(cfg, seed=seed, device=device)
            stage.check()  # e.g. a weights file that is gone: says which setting to fix
            now = {"model": stage.model_identity(), "config": records[name]["config"]}
            why = stage_difference(name, records[name], now)
            if why is not None:
                raise DatasetError(
                    f"the {name} stage's model differs from the one {run_name}'s cache was "
                    f"made with ({why.replace('its model', 'now it')}); its scores "
                    f"would mean nothing. Restore the original weights of the {name} model "
                    "or retrain the run on a cache made with the new ones"
                )
            self.stages[name] = stage
        for name in self.order:
            log.info("loading the %s stage's model", name)
            self.stages[name].load()

    def run(self, items: list[dict[str, Any]]) -> dict[str, StageOutput]:
        """Every stage on ``items`` (``[{"item_id", "path"}]``), in dependency order."""
        outputs: dict[str, StageOutput] = {}
        for name in self.order:
            stage = self.stages[name]
            upstream = Upstream(
                rows={
                    up: {row["item_id"]: row for row in outputs[up].rows} for up in stage.upstream
                },
                settings={up: self.stages[up].cfg for up in stage.upstream if up in self.stages},
            )
            table, arrays = stage.process_shard(items, upstream)
            rows = table.to_pylist()
            outputs[name] = StageOutput(rows, prepare_arrays(arrays, len(rows)))
        return outputs

    def run_checked(
        self, items: list[dict[str, Any]]
    ) -> tuple[dict[str, StageOutput], list[tuple[str, str | None]], np.ndarray]:
        """:meth:`run`, plus each item's ``(status, error)`` and the indices of the items
        every stage succeeded on."""
        outputs = self.run(items)
        statuses = self.statuses(outputs, len(items))
        ok = np.array([i for i, (status, _) in enumerate(statuses) if status == "ok"], int)
        return outputs, statuses, ok

    def statuses(self, outputs: dict[str, StageOutput], n: int) -> list[tuple[str, str | None]]:
        """Per item ``(status, error)``: ``("ok", None)`` when every stage succeeded, else
        the first failing stage's row (the cause, not the ``upstream_error`` after it)."""
        out: list[tuple[str, str | None]] = [("ok", None)] * n
        for i in range(n):
            for name in self.order:
                row = outputs[name].rows[i]
                if row["status"] != "ok":
                    out[i] = (row["status"], row.get("error") or f"{name} stage failed")
                    break
        return out

"""What a stage is: a model built once per worker, applied to one shard of items.

A stage computes; the cache writes. ``process_shard`` returns plain columns and dense
arrays for exactly the shard's items, in order; an item that fails becomes a row with
``status`` set to an error kind and ``error`` to a readable reason, and zero arrays.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from qfeat.errors import ItemError
from qfeat.pipeline.models.weights_facts import WeightsFacts
from qfeat.pipeline.settings import Settings

log = logging.getLogger(__name__)


FP16_MAX = float(np.finfo(np.float16).max)


def storable(result: dict[str, Any], arrays: tuple[str, ...]) -> dict[str, Any]:
    """``result``, or an error row when one of its float arrays holds NaN, inf or a value
    beyond fp16's range (the cache stores floats as fp16: it would become inf, and
    readers refuse a stage holding inf)."""
    if result.get("status") != "ok":
        return result
    for name in arrays:
        values = np.asarray(result.get(name, 0))
        if not np.issubdtype(values.dtype, np.floating) or values.size == 0:
            continue
        finite = np.isfinite(values).all()
        peak = float(np.abs(values).max()) if finite else float("inf")
        if peak > FP16_MAX:
            return {
                "status": "value_out_of_range",
                "error": f"array '{name}' holds {'NaN or inf' if not finite else f'{peak:.4g}'}"
                f", beyond fp16's range (±{FP16_MAX:g}) that the cache stores; the model "
                "overflowed on this item (check its weights and dtype)",
            }
    return result


@dataclasses.dataclass(frozen=True)
class Upstream:
    """What a shard reads of its upstream stages, handed to :meth:`Stage.process_shard`:
    ``rows``: stage -> item_id -> row (this shard's items only); ``settings``: stage ->
    the resolved settings of the upstream cache folder read (e.g. ``regions.max_regions``
    sizes the text stage's arrays)."""

    rows: Mapping[str, Mapping[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    settings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)


NO_UPSTREAM = Upstream()


def item_upstream(
    item: dict[str, Any], upstream: Upstream
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The item's row of each upstream stage, and the result to store instead of
    computing when one is missing or failed. Every stage, batched or not, uses this one
    guard, so the failure reads the same everywhere."""
    rows = {name: by_id.get(item["item_id"]) for name, by_id in upstream.rows.items()}
    bad = [name for name, row in rows.items() if row is None or row.get("status") != "ok"]
    if not bad:
        return rows, None
    return rows, {"status": "upstream_error", "error": f"no usable {', '.join(bad)} row"}


class Stage:
    name: ClassVar[str]
    help: ClassVar[str]  # one line for `qfeat features --help`: what the stage computes
    version: ClassVar[int] = 1
    modality: ClassVar[str]
    upstream: ClassVar[tuple[str, ...]] = ()
    arrays: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[type[Settings]]  # every setting with its default (stages/settings.py)
    # the setting naming its weights file or folder (``qfeat weights``, and the run
    # compatibility check, which compares the weights' sha256 instead of this path)
    weights_setting: ClassVar[str | None] = None
    # what `qfeat weights` knows of them: official files, format, the meta-device check
    weights: ClassVar[WeightsFacts | None] = None
    uses_torch: ClassVar[bool] = True  # False: its worker never imports torch (frames)

    def __init__(self, cfg: dict[str, Any], seed: int = 0, device: str = "cpu"):
        # every field, defaults filled in and validated (OptionError for a bad value)
        self.cfg = self.settings.build(cfg, source=f"the {self.name} settings").as_dict()
        self.seed = seed
        self.device = device

    # -- identity and checks (driver side, cheap) ---------------------------------------
    @classmethod
    def constants(cls) -> dict[str, Any]:
        """The module-level constants (and fixed texts) the stage's output depends on:
        part of its fingerprint, so changing one never reuses a cache made with the old
        value. Limits that only decide speed or memory (batch sizes) stay out."""
        return {}

    def model_identity(self) -> dict[str, Any]:
        return {"name": str(self.cfg.get("model", self.name))}

    def check(self) -> None:
        """Raise DatasetError when the stage cannot run (e.g. missing weights)."""

    # -- work (worker side) --------------------------------------------------------------
    def load(self) -> None:
        """Build the model; called once per worker and reused across shards."""

    def schema(self) -> pa.Schema:
        """The stage's own columns (item_id, status and error are added)."""
        return pa.schema([])

    def array_shape(self, name: str, upstream: Upstream) -> tuple[int, ...]:
        """Per-item shape of dense array ``name`` (for zero rows of failed items)."""
        raise NotImplementedError

    def process_item(self, item: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
        """Columns and arrays of one item; raise ItemError (or anything) on failure."""
        raise NotImplementedError

    def process_shard(
        self, items: list[dict[str, Any]], upstream: Upstream = NO_UPSTREAM
    ) -> tuple[pa.Table, dict[str, np.ndarray]]:
        """Default: item by item. Stages that batch on the GPU override this."""
        results = []
        for item in items:
            ups, failure = item_upstream(item, upstream)
            results.append(failure or self.guarded(item, ups))
        return self.assemble(items, results, upstream)

    def guarded(self, item: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
        try:
            out = self.process_item(item, upstream)
        except ItemError as exc:
            return {"status": exc.kind, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the shard
            log.warning("%s failed on %s: %s", self.name, item["item_id"], exc)
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        return {"status": "ok", "error": None, **out}

    def assemble(
        self, items: list[dict[str, Any]], results: list[dict[str, Any]], upstream: Upstream
    ) -> tuple[pa.Table, dict[str, np.ndarray]]:
        results = [storable(r, self.arrays) for r in results]
        schema = self.schema()
        columns: dict[str, Any] = {
            "item_id": pa.array([i["item_id"] for i in items], pa.string()),
            "status": pa.array([r["status"] for r in results], pa.string()),
            "error": pa.array([r.get("error") for r in results], pa.string()),
        }
        for field in schema:
            columns[field.name] = pa.array([r.get(field.name) for r in results], type=field.type)
        arrays = {}
        for name in self.arrays:
            shape = self.array_shape(name, upstream)
            ok = [np.asarray(r[name]) for r in results if r["status"] == "ok"]
            dtype = ok[0].dtype if ok else np.float32  # masks stay integer
            arrays[name] = (
                np.stack(
                    [
                        np.asarray(r[name]) if r["status"] == "ok" else np.zeros(shape, dtype)
                        for r in results
                    ]
                )
                if results
                else np.zeros((0, *shape), np.float32)
            )
        return pa.table(columns), arrays

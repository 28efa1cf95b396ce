"""`qfeat features` / `qfeat stage`: plan shards, run them as Dask tasks, report.

Everything that can make the run impossible (unknown dataset or stage, missing root,
missing weights, missing upstream stage, unreachable scheduler) is checked before any
heavy work starts. Complete shards are skipped; one Dask task per remaining shard, with
retries; a shard whose worker dies every time is reported as failed and retried by the
next run. Per-item failures are rows in the cache, not run failures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qfeat.cache.fingerprint import build_manifest, items_hash, media_hash
from qfeat.cache.items import write_items
from qfeat.cache.plan import plan_shards, shards_holding, split_done
from qfeat.cache.reader import mark_latest, open_folder
from qfeat.cache.writer import create_stage_dir
from qfeat.errors import DatasetError, OptionError
from qfeat.pipeline import paths
from qfeat.pipeline.cluster import connect, plan_resources, resolve_device
from qfeat.pipeline.config import default_preset, require_sections, resolve_config
from qfeat.pipeline.datasets import open_dataset, storage_name
from qfeat.pipeline.datasets.duplicates import refuse_rejected
from qfeat.pipeline.failures import (  # noqa: F401 - failure_reason, lost_scheduler: as before
    ShardFailure,
    failure_reason,
    lost_scheduler,
    shard_outcome,
)
from qfeat.pipeline.resolution import data_version, manifest_config, own_sets, upstream_folder
from qfeat.pipeline.stages import Stage, get_stage, stage_settings

TASK_RETRIES = 2  # retries of a shard task that raised (worker deaths: cluster.ALLOWED_FAILURES)


@dataclass
class RunRequest:
    dataset: str
    root: Path | None = None
    name: str | None = None
    cache_dir: Path | None = None
    preset: str | None = None
    sets: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    stages: list[str] | None = None
    scheduler: str | None = None
    workers: int | None = None
    device: str = "auto"
    shard_size: int = 32
    limit: int | None = None
    force: bool = False
    retry_failed: bool = False  # rerun the shards that hold error rows
    dashboard: bool = False
    single_stage: bool = False  # `qfeat stage`: upstream must already be cached


@dataclass
class StageReport:
    stage: str
    fingerprint: str
    path: Path
    items_ok: int = 0
    items_failed: int = 0
    items_skipped: int = 0
    shards_total: int = 0
    shards_skipped: int = 0
    shards_failed: list[ShardFailure] = field(default_factory=list)
    seconds: float = 0.0
    skipped_reason: str | None = None

    @property
    def items_per_s(self) -> float:
        done = self.items_ok + self.items_failed
        return done / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """Callbacks the CLI implements (the runner itself never prints)."""

    def stage_started(self, stage: str, items: int, shards: int, done_shards: int) -> None: ...

    def shard_finished(self, stage: str, rows: int, failed: bool = False) -> None: ...

    def stage_finished(self, report: StageReport) -> None: ...

    def waiting_for_workers(self, address: str, seconds: float) -> None: ...


@dataclass
class Plan:
    request: RunRequest
    dataset: str  # storage name
    adapter: Any
    config: dict[str, Any]
    stages: list[str]
    device: str
    cache_dir: Path
    # the driver's stage objects, built once: checked in prepare(), identified in run()
    # (workers build their own, with the model, once per worker process)
    built: dict[str, Stage] = field(default_factory=dict)


def wait_for_workers(
    client, address: str, progress: Progress, first: float = 3.0, every: float = 10.0
) -> None:
    """Block until the scheduler at ``address`` has a worker, telling ``progress`` after
    ``first`` seconds and every ``every`` seconds after that (an external cluster whose
    workers have not started yet, or never will, must not look like a hang)."""
    start, tell = time.monotonic(), first
    while not client.scheduler_info().get("workers"):
        waited = time.monotonic() - start
        if waited >= tell:
            progress.waiting_for_workers(address, waited)
            tell += every
        time.sleep(0.25)


def prepare(request: RunRequest) -> Plan:
    """All checks that need no heavy work (:mod:`qfeat.pipeline.preflight`); raises
    OptionError / DatasetError, or Problems listing every problem found."""
    from qfeat.pipeline import preflight

    if request.shard_size < 1:
        raise OptionError("--shard-size must be at least 1")
    if request.limit is not None and request.limit < 1:
        raise OptionError("--limit must be at least 1")
    adapter = open_dataset(request.dataset, request.root, request.options)
    dataset = storage_name(adapter, request.name)
    preset = request.preset or default_preset(request.dataset)
    config = resolve_config(preset, request.sets, stage_settings())
    stages = preflight.choose_stages(request.stages, adapter.modality)
    require_sections(preset, stages)
    device = resolve_device(request.device)
    cache_dir = paths.cache_dir(request.cache_dir)
    # in input order: dataset, weights, each stage's own checks, upstream caches, output
    checks = preflight.Checks()
    with checks.collect():
        preflight.check_dataset(adapter, request.limit)
    bad_weights = preflight.check_weights(checks, config, stages)
    built = {}
    for name in stages:
        with checks.collect():
            built[name] = get_stage(name)(config[name], seed=config.get("seed", 0), device=device)
            if name not in bad_weights:
                built[name].check()
    for name in stages:
        for up in get_stage(name).upstream:
            if up not in stages or request.single_stage:
                with checks.collect():
                    _require_cached(cache_dir, dataset, request.dataset, name, up, config)
    with checks.collect():
        preflight.check_writable(cache_dir, "--cache-dir")
    checks.raise_any()
    adapter.prepare()  # generates the demo sets
    return Plan(request, dataset, adapter, config, stages, device, cache_dir, built)


def _require_cached(cache_dir: Path, dataset: str, given: str, stage: str, up: str, config) -> None:
    upstream_folder(cache_dir, dataset, up, config, "", needed_by=(stage, given))


def run(plan: Plan, progress: Progress | None = None) -> list[StageReport]:
    """Compute the plan's stages, holding the dataset's run lock (see :func:`run_lock`)."""
    with run_lock(plan.cache_dir, plan.dataset):
        return _run(plan, progress or Progress())


@contextmanager
def run_lock(cache_dir: Path, dataset: str) -> Iterator[None]:
    """One ``qfeat features`` run per dataset and cache at a time: a second one (Enter
    pressed twice, two cluster jobs) is refused at once instead of computing the same
    shards beside the first. The lock is the OS's (flock), so a killed run leaves none."""
    from filelock import FileLock, Timeout

    folder = Path(cache_dir) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".features.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DatasetError(
            f"another `qfeat features` run is computing {dataset} in {cache_dir} (it holds "
            f"{folder / '.features.lock'}); wait for it to finish, then run the same command "
            "again: its finished shards are kept"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _run(plan: Plan, progress: Progress) -> list[StageReport]:
    request = plan.request
    listing = plan.adapter.listing()
    refuse_rejected(listing, plan.dataset)
    items = listing.items[: request.limit] if request.limit else listing.items
    if not items:
        raise DatasetError(f"{plan.dataset}: no usable items (see `qfeat datasets check`)")
    scale = listing.scale
    bounded = scale is not None and scale.low is not None and scale.high is not None
    write_items(
        plan.cache_dir,
        plan.dataset,
        items,
        scale={"min": scale.low, "max": scale.high, "higher_is_better": scale.higher_is_better}
        if bounded
        else None,
    )
    item_ids = [i.item_id for i in items]
    payload = [{"item_id": i.item_id, "path": str(i.path)} for i in items]
    resources = plan_resources(plan.device, request.workers)
    reports: list[StageReport] = []
    fingerprints: dict[str, str] = {}
    folders: dict[str, Path] = {}
    incomplete: set[str] = set()
    with connect(request.scheduler, resources, request.dashboard) as client:
        if request.scheduler:
            wait_for_workers(client, request.scheduler, progress)
        for name in plan.stages:
            stage = plan.built[name]
            stage_cls = type(stage)
            upstream = {}
            for up in stage_cls.upstream:
                if up in fingerprints:
                    upstream[up] = fingerprints[up]
                else:
                    cached = upstream_folder(
                        plan.cache_dir, plan.dataset, up, plan.config, items_hash(item_ids),
                        needed_by=(name, request.dataset),
                    )  # fmt: skip
                    upstream[up], folders[up] = cached.fingerprint, cached.dir
            manifest = build_manifest(
                stage=name,
                stage_version=stage_cls.version,
                config=manifest_config(plan.config, name),
                model=stage.model_identity(),
                upstream=upstream,
                dataset={
                    "adapter": plan.adapter.name,
                    "name": plan.dataset,
                    "options": dict(sorted(plan.adapter.opts.items())),
                    **data_version(plan.adapter),
                },
                item_ids=item_ids,
                shard_size=request.shard_size,
                arrays=list(stage_cls.arrays),
                preset=plan.config.get("preset"),
                sets=own_sets(request.sets, name),
                constants=stage_cls.constants(),
            )
            folder = create_stage_dir(plan.cache_dir, plan.dataset, manifest)
            fingerprints[name], folders[name] = manifest["fingerprint"], folder
            report = StageReport(name, manifest["fingerprint"], folder)
            blocked = [u for u in stage_cls.upstream if u in incomplete]
            if blocked:
                report.skipped_reason = f"upstream {', '.join(blocked)} incomplete"
                incomplete.add(name)
                reports.append(report)
                progress.stage_finished(report)
                continue
            _run_stage(
                client,
                plan,
                stage_cls=stage_cls,
                resources=resources,
                folder=folder,
                items=payload,
                upstream_dirs={u: folders[u] for u in stage_cls.upstream},
                report=report,
                progress=progress,
                model=manifest["model"],
            )
            if report.shards_failed:
                incomplete.add(name)
            else:  # complete: what the trainers read from now on
                mark_latest(plan.cache_dir, plan.dataset, name, manifest["fingerprint"])
            reports.append(report)
            progress.stage_finished(report)
    return reports


def _run_stage(
    client,
    plan: Plan,
    *,
    stage_cls: type[Stage],
    resources,
    folder: Path,
    items: list[dict[str, str]],
    upstream_dirs: dict[str, Path],
    report: StageReport,
    progress: Progress,
    model: dict,
) -> None:
    """Submit one task per shard that is not done (``items``: ``{item_id, path}`` in
    order) and collect the outcomes into ``report``."""
    from distributed import as_completed

    from qfeat.pipeline.worker import ShardTask, release_on_workers, run_shard

    payload = {i["item_id"]: i for i in items}
    item_ids = list(payload)
    shards = plan_shards(item_ids, plan.request.shard_size)
    media = {s.index: media_hash(payload[i]["path"] for i in s.item_ids) for s in shards}
    done, todo = split_done(
        folder, shards, force=plan.request.force, media=media,
        retry_failed=plan.request.retry_failed,
    )  # fmt: skip
    report.shards_total, report.shards_skipped = len(shards), len(done)
    report.items_skipped = sum(len(s.item_ids) for s in done)
    progress.stage_started(stage_cls.name, len(item_ids), len(shards), len(done))
    t0 = time.perf_counter()
    # item -> upstream shard, read once here: each task then reads only its own shards
    where = {name: open_folder(folder).item_shards() for name, folder in upstream_dirs.items()}
    futures = {}
    for shard in todo:
        upstream = {
            name: (str(upstream_dirs[name]), shards_holding(at, shard.item_ids))
            for name, at in where.items()
        }
        task = ShardTask(
            stage=stage_cls,
            settings=plan.config[stage_cls.name],
            seed=plan.config.get("seed", 0),
            device=plan.device,
            threads=resources.threads,
            folder=str(folder),
            index=shard.index,
            items=[payload[i] for i in shard.item_ids],
            upstream=upstream,
            model=model,
        )
        future = client.submit(
            run_shard,
            task=task,
            key=f"{stage_cls.name}-{report.fingerprint}-{shard.index:05d}-{time.time_ns()}",
            retries=TASK_RETRIES,
            pure=False,
        )
        futures[future] = shard
    for future in as_completed(list(futures)):
        shard = futures[future]
        stats, failure = shard_outcome(future)
        if failure is None:
            report.items_ok += stats["ok"]
            report.items_failed += stats["failed"]
            progress.shard_finished(stage_cls.name, stats["rows"])
        else:
            failure = replace(failure, index=shard.index, first_item=shard.item_ids[0])
            report.shards_failed.append(failure)
            progress.shard_finished(stage_cls.name, 0, failed=True)
    report.seconds = time.perf_counter() - t0
    if todo:  # the next stage's model gets the memory
        release_on_workers(client, stage_cls.name)


def describe_failures(reports: list[StageReport]) -> list[str]:
    """The lines that say which shards failed and what to do (pipeline/failures.py)."""
    from qfeat.pipeline.failures import describe

    return describe(reports)

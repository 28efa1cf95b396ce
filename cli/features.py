"""`qfeat features DATASET` (all stages) and `qfeat stage STAGE DATASET` (one stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qfeat.cli.console import make_console
from qfeat.cli.errors import EXIT_DATA, interrupted, user_errors
from qfeat.cli.progress import progress_bar
from qfeat.cli.shown import shown
from qfeat.pipeline.config import parse_options
from qfeat.pipeline.runner import RunRequest, StageReport, describe_failures, prepare, run
from qfeat.pipeline.stages import stage_help

app = typer.Typer()
console = make_console()

Root = Annotated[Path | None, typer.Option(help="Dataset root (default $QFEAT_DATA_ROOT/<name>).")]
Name = Annotated[str | None, typer.Option(help="Storage name for the labels/csv adapters.")]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Cache directory (default: $QFEAT_CACHE_DIR or ./qfeat-cache)."
    ),
]
Preset = Annotated[
    str | None, typer.Option(help="Preset name (tiny, paper) or TOML file; default by dataset.")
]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override key.path=value.")]
Options = Annotated[list[str] | None, typer.Option("--option", "-o", help="Adapter KEY=VALUE.")]
Scheduler = Annotated[
    str | None, typer.Option(help="Existing Dask scheduler tcp://HOST:PORT (default: embedded).")
]
Workers = Annotated[int | None, typer.Option(min=1, help="Embedded cluster workers.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
ShardSize = Annotated[int, typer.Option("--shard-size", min=1, help="Items per shard.")]
Limit = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Only the first N items, in the dataset's order (a trial run; the demo sets "
        "are ordered by content, so training needs N large enough to hold 3 content groups).",
    ),
]
Force = Annotated[bool, typer.Option(help="Recompute even complete shards.")]
RetryFailed = Annotated[
    bool,
    typer.Option(
        "--retry-failed",
        help="Also rerun the complete shards that hold error rows (e.g. a transient OOM).",
    ),
]
Dashboard = Annotated[bool, typer.Option(help="Serve the Dask dashboard on 127.0.0.1:8787.")]


class RichProgress:
    def __init__(self) -> None:
        self.bar = progress_bar(
            console,
            "[bold]{task.description:<9}",
            "items · {task.fields[shards]}",
            "{task.fields[rate]}",
        )
        self.tasks: dict[str, int] = {}
        self.shards: dict[str, list[int]] = {}
        self.failed: dict[str, int] = {}

    def stage_started(self, stage: str, items: int, shards: int, done_shards: int) -> None:
        if done_shards:
            console.print(f"{stage}: {done_shards} shards already done")
        self.shards[stage] = [done_shards, shards]
        self.tasks[stage] = self.bar.add_task(
            stage, total=items, shards=f"{done_shards}/{shards} shards", rate=""
        )
        self.bar.update(self.tasks[stage], completed=0)

    def shard_finished(self, stage: str, rows: int, failed: bool = False) -> None:
        done = self.shards[stage]
        if failed:  # a failed shard is not done: "0/1 shards, 1 failed"
            self.failed[stage] = self.failed.get(stage, 0) + 1
        else:
            done[0] += 1
        task = self.bar.tasks[self.tasks[stage]]
        speed = f"{task.speed:.1f} items/s" if task.speed else ""
        shards = f"{done[0]}/{done[1]} shards" + (
            f", {self.failed[stage]} failed" if self.failed.get(stage) else ""
        )
        self.bar.update(self.tasks[stage], advance=rows, shards=shards, rate=speed)

    def waiting_for_workers(self, address: str, seconds: float) -> None:
        console.print(
            f"[yellow]waiting for Dask workers[/] at {address} ({seconds:.0f} s): the scheduler "
            "has none yet; start some (`dask worker ADDRESS`) or press Ctrl-C"
        )

    def stage_finished(self, report: StageReport) -> None:
        if report.stage in self.tasks:
            self.bar.update(
                self.tasks[report.stage], completed=self.bar.tasks[self.tasks[report.stage]].total
            )


def summary(reports: list[StageReport], seconds: float, dataset: str) -> Table:
    table = Table(title=f"qfeat features {shown(dataset)} — {seconds:.1f} s")
    for col in ("stage", "ok", "failed", "skipped", "wall s", "items/s", "cache path"):
        table.add_column(col, overflow="fold")
    for r in reports:
        unrun = len(r.shards_failed)
        table.add_row(
            r.stage,
            str(r.items_ok),
            str(r.items_failed) + (f" (+{unrun} failed shards)" if unrun else ""),
            str(r.items_skipped),
            f"{r.seconds:.1f}",
            f"{r.items_per_s:.1f}",
            shown(r.path),
        )
    return table


def workers_warning(workers: int | None, device: str, scheduler: str | None) -> str | None:
    """A line when ``--workers`` asks for more CPU worker processes than this process has
    CPUs (each loads its own models: memory and time go to oversubscription)."""
    from qfeat.pipeline.threads import available_cpus

    cpus = available_cpus()
    if not workers or scheduler or device != "cpu" or workers <= cpus:
        return None
    return (
        f"--workers {workers} on {cpus} available CPU(s): each worker loads its own models "
        f"and they compete for the CPUs; --workers {cpus} or fewer is faster here"
    )


def execute(request: RunRequest) -> None:
    import time

    t0 = time.perf_counter()
    progress = RichProgress()
    with user_errors():
        plan = prepare(request)
        console.print(
            f"{shown(plan.dataset)}: stages {', '.join(plan.stages)} · preset "
            f"{shown(plan.config['preset'])} · device {plan.device} · cache {shown(plan.cache_dir)}"
        )
        capped = None
        if request.workers and not request.scheduler:  # what memory holds, in one line
            from qfeat.pipeline.memory import cap_workers, worker_need

            need = worker_need(plan.config, plan.stages)
            request.workers, capped = cap_workers(request.workers, need)
        warning = capped or workers_warning(request.workers, plan.device, request.scheduler)
        if warning:
            console.print(f"[yellow]warning:[/] {warning}")
        kept = "finished shards are kept; run the same command again to go on"
        with interrupted(kept), progress.bar:
            reports = run(plan, progress)
    console.print(summary(reports, time.perf_counter() - t0, plan.dataset))
    failed = {r.stage: r.items_failed for r in reports if r.items_failed}
    if failed:
        counts = ", ".join(f"{stage} {n}" for stage, n in failed.items())
        console.print(
            f"failed items per stage: {counts} (an item failed upstream fails downstream "
            f"too); `qfeat cache errors {shown(plan.dataset)} STAGE` lists them with the reasons"
        )
    problems = describe_failures(reports)
    for line in problems:
        console.print(f"[red]{shown(line)}[/]")
    if problems:
        raise typer.Exit(EXIT_DATA)


@app.command(
    "features",
    help="Compute a dataset's stages into the cache, skipping complete shards.\n\n"
    f"Stages in run order: {stage_help()}.",
)
def features(
    dataset: Annotated[str, typer.Argument(help="Adapter name (see `qfeat datasets`).")],
    root: Root = None,
    name: Name = None,
    cache_dir: CacheDir = None,
    preset: Preset = None,
    set_: Sets = None,
    option: Options = None,
    stages: Annotated[
        str | None, typer.Option(help="Comma-separated stages (default: all).")
    ] = None,
    scheduler: Scheduler = None,
    workers: Workers = None,
    device: Device = "auto",
    shard_size: ShardSize = 32,
    limit: Limit = None,
    force: Force = False,
    retry_failed: RetryFailed = False,
    dashboard: Dashboard = False,
) -> None:
    args = locals()
    args["stages"] = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    _execute(args)


@app.command("stage")
def stage(
    stage_name: Annotated[str, typer.Argument(metavar="STAGE", help="The stage to recompute.")],
    dataset: Annotated[str, typer.Argument(help="Adapter name.")],
    root: Root = None,
    name: Name = None,
    cache_dir: CacheDir = None,
    preset: Preset = None,
    set_: Sets = None,
    option: Options = None,
    scheduler: Scheduler = None,
    workers: Workers = None,
    device: Device = "auto",
    shard_size: ShardSize = 32,
    limit: Limit = None,
    force: Force = False,
    retry_failed: RetryFailed = False,
    dashboard: Dashboard = False,
) -> None:
    """Compute one stage only; its upstream stages must already be cached."""
    args = locals()
    args["stages"], args["single_stage"] = [args.pop("stage_name")], True
    _execute(args)


def _execute(args: dict) -> None:
    """Run the request the command's options (its ``locals()``) describe."""
    with user_errors():
        args["options"] = parse_options(args.pop("option") or [])
    args["sets"] = args.pop("set_") or []
    execute(RunRequest(**args))

"""`qfeat train rsa|scma DATASET`, `qfeat evaluate`: quality heads from the feature cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qfeat.cli.errors import EXIT_INTERRUPTED, user_errors
from qfeat.cli.progress import progress_bar
from qfeat.cli.shown import shown
from qfeat.errors import EXIT_TERMINATED
from qfeat.pipeline.paths import cache_dir as default_cache_dir
from qfeat.pipeline.paths import runs_dir as default_runs_dir

app = typer.Typer(help="Train quality heads from cached features.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

# Options every trainer shares (same names and meaning for rsa and scma).
DatasetArg = Annotated[str, typer.Argument(help="The name the features were cached under.")]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Feature cache (default: $QFEAT_CACHE_DIR or ./qfeat-cache)."),
]
RunsDirOpt = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where run folders go (default: $QFEAT_RUNS_DIR or ./runs)."),
]
RunOpt = Annotated[
    str | None,
    typer.Option(
        help="Run folder name (default: timestamped). The same name again resumes a killed "
        "run: finished splits are kept."
    ),
]
SplitsOpt = Annotated[int, typer.Option(min=1, help="Random splits when none is official.")]
SeedOpt = Annotated[int, typer.Option()]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
PresetOpt = Annotated[
    str | None,
    typer.Option(
        help="Preset for trainer defaults; also picks the cached set made with it "
        "(default: the newest complete set, and its preset)."
    ),
]
BasisOpt = Annotated[
    str | None,
    typer.Option(
        "--basis",
        help="The set of cached stages to read, by the id training prints (or a fingerprint "
        "of one of its stages); partial (--limit) sets only this way.",
    ),
]


@contextmanager
def training_progress() -> Iterator[tuple[Callable[[str], None], Callable[[dict], None]]]:
    """``(log, progress)`` for a trainer: one bar over the epochs of all splits (count,
    rate, time left, the current split and its latest validation SRCC), log lines above."""
    with progress_bar(console, "{task.description}", "epochs", transient=True) as bar:
        task = bar.add_task("training", total=None)

        def progress(record: dict) -> None:
            val = record["val_srcc"]
            where = f"split {record['split']} epoch {record['epoch']}"
            bar.update(
                task,
                completed=record["done"],
                total=record["total"],
                description=f"{where}: val SRCC {val:.3f}",
            )

        yield (lambda line: bar.console.print(shown(line), style="dim")), progress


def metrics_table(metrics: dict, title: str) -> Table:
    valid, total = metrics.get("valid_splits"), metrics.get("n_splits")
    if valid is not None and total and valid < total:
        title += f" [yellow](statistics over {valid} of {total} splits: the others are undefined)"
    notes = [
        f"split {s.get('split')} ({s.get('test_set')}): {s['note']}"
        for s in metrics.get("splits", [])
        if s.get("note")
    ]  # what was computed where it is not the usual logistic fit
    table = Table(title=title, caption="\n".join(notes) or None, caption_justify="left")
    table.add_column("")
    for key in ("srcc", "krcc", "plcc", "plcc_raw", "rmse"):
        table.add_column(key + (" (logistic)" if key in ("plcc", "rmse") else ""))
    for row in ("test", "median", "std"):
        values = metrics[row]
        table.add_row(
            row,
            *[
                "-" if values[k] is None else f"{values[k]:.4f}"
                for k in ("srcc", "krcc", "plcc", "plcc_raw", "rmse")
            ],
        )
    return table


@app.command("scma")
def scma(
    dataset: DatasetArg,
    cache_dir: CacheDirOpt = None,
    runs_dir: RunsDirOpt = None,
    run: RunOpt = None,
    splits: SplitsOpt = 10,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override scma.epochs.")] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override scma.key=value.")
    ] = None,
    preset: PresetOpt = None,
    basis: BasisOpt = None,
    init: Annotated[str | None, typer.Option(help="Fine-tune from this earlier run.")] = None,
    mode: Annotated[
        str, typer.Option(help="full (hidden states) or projection (pooled).")
    ] = "full",
) -> None:
    """Train SCMA (Q-CLIP) on a dataset's cached clip features, on every split."""
    from qfeat.trainers.scma_train import ScmaRequest, train_scma

    with user_errors():
        if mode not in ("full", "projection"):
            from qfeat.errors import OptionError

            raise OptionError("--mode must be full or projection")
        common = _common(dataset, cache_dir, runs_dir, run, splits, epochs, seed, device, set_)
        request = ScmaRequest(**common, preset=preset, basis=basis, init=init, mode=mode)
        with resumable("scma", request), training_progress() as (log, progress):
            folder, metrics = train_scma(request, log=log, progress=progress)
    print_run(metrics, f"scma ({mode}) on {dataset}: {len(metrics['splits'])} test results", folder)


@app.command("rsa")
def rsa(
    dataset: DatasetArg,
    cache_dir: CacheDirOpt = None,
    runs_dir: RunsDirOpt = None,
    run: RunOpt = None,
    splits: SplitsOpt = 10,
    epochs: Annotated[int | None, typer.Option(min=1, help="Override rsa.epochs.")] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override rsa.key=value.")] = None,
    preset: PresetOpt = None,
    basis: BasisOpt = None,
    attention: Annotated[
        str, typer.Option(help="rsa (learned region weights), uniform or global (ablations).")
    ] = "rsa",
    no_text: Annotated[bool, typer.Option("--no-text", help="Ablation: no descriptions.")] = False,
    no_ratings: Annotated[
        bool, typer.Option("--no-ratings", help="Ablation: no distortion ratings.")
    ] = False,
) -> None:
    """Train the RSA head (RSFIQA) on a dataset's cached image features, on every split."""
    from qfeat.trainers.rsa_train import RsaRequest, train_rsa

    with user_errors():
        common = _common(dataset, cache_dir, runs_dir, run, splits, epochs, seed, device, set_)
        request = RsaRequest(
            **common,
            preset=preset,
            basis=basis,
            attention=attention,
            use_text=not no_text,
            use_ratings=not no_ratings,
        )
        with resumable("rsa", request), training_progress() as (log, progress):
            folder, metrics = train_rsa(request, log=log, progress=progress)
    ablation = "".join([" no-text" * no_text, " no-ratings" * no_ratings])
    title = f"rsa ({attention}{ablation}) on {dataset}: {len(metrics['splits'])} test results"
    print_run(metrics, title, folder)


@contextmanager
def resumable(trainer: str, request):
    """The run folder locked while training writes it (a second `train` with the same
    --run is refused); Ctrl-C or SIGTERM: one line naming the command that resumes the
    run (the finished splits are kept), exit 130 or 143, no traceback."""
    from qfeat.trainers.runfolder import run_lock

    if request.run is None:  # name it now, so the line can say which run to resume
        request.run = request.folder(trainer).name
    try:
        with run_lock(request.folder(trainer)), terminated_as_interrupt():
            yield
    except KeyboardInterrupt as exc:
        console.print(
            f"\n{'terminated' if isinstance(exc, Terminated) else 'interrupted'}: run "
            f"{shown(request.run)} keeps its finished splits; resume it with "
            f"`qfeat train {trainer} {shown(request.dataset)} --run {shown(request.run)}` "
            "(and the same options)"
        )
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        raise typer.Exit(code) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it unwinds like Ctrl-C."""


@contextmanager
def terminated_as_interrupt():
    """SIGTERM handled like Ctrl-C inside the block (main thread only)."""
    import signal

    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _common(dataset, cache_dir, runs_dir, run, splits, epochs, seed, device, sets) -> dict:
    """The request fields every trainer shares, defaults resolved."""
    from qfeat.pipeline.cluster import resolve_device

    return {
        "dataset": dataset,
        "cache_dir": default_cache_dir(cache_dir),
        "runs_dir": default_runs_dir(runs_dir),
        "run": run,
        "splits": splits,
        "epochs": epochs,
        "seed": seed,
        "device": resolve_device(device),
        "sets": sets or [],
    }


def print_run(metrics: dict, title: str, folder: Path) -> None:
    console.print(metrics_table(metrics, shown(title)))
    console.print(
        f"trainable parameters: {metrics['trainable_params']:,} · "
        f"{metrics['train_seconds']:.1f} s · run folder {shown(folder)}"
    )


def note_cache_gone(folder: Path, cache_dir: Path | None) -> None:
    """One line on stderr when the cache a run was trained on is gone (gc, moved)."""
    from qfeat.cli.errors import err_console
    from qfeat.cli.shown import shown
    from qfeat.trainers.runfolder import RunFolder
    from qfeat.trainers.runinfo import cache_gone

    line = cache_gone(RunFolder(folder).config, cache_dir, f"run {folder.name}")
    if line:
        err_console.print(f"note: {shown(line)}")


eval_app = typer.Typer()


@eval_app.command("evaluate")
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder, or a run name under the runs dir.")],
    dataset: Annotated[str, typer.Argument(help="Dataset name as cached.")],
    cache_dir: CacheDirOpt = None,
    runs_dir: RunsDirOpt = None,
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate a trained run on another dataset's cache (cross-dataset)."""
    import json

    from qfeat.pipeline.cluster import resolve_device
    from qfeat.trainers.evaluate import evaluate_run
    from qfeat.trainers.runfolder import RunFolder

    with user_errors():
        folder = RunFolder.find(run, runs_dir).path
        note_cache_gone(folder, None)
        result = evaluate_run(folder, dataset, default_cache_dir(cache_dir), resolve_device(device))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    title = f"{shown(folder.name)} on {shown(dataset)} ({result['items']} items)"
    console.print(metrics_table(result, title))
    console.print(f"written to {shown(folder / f'eval-{dataset}.json')}")

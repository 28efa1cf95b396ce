"""`qfeat train NAME DATASET` (one command per trainer registry entry) and `qfeat evaluate`:
quality heads from the feature cache."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qfeat.cli.console import make_console
from qfeat.cli.errors import EXIT_INTERRUPTED, user_errors
from qfeat.cli.progress import progress_bar
from qfeat.cli.shown import shown
from qfeat.errors import EXIT_TERMINATED
from qfeat.pipeline.paths import cache_dir as default_cache_dir
from qfeat.pipeline.paths import runs_dir as default_runs_dir
from qfeat.trainers.registry import TRAINERS, Trainer

app = typer.Typer(help="Train quality heads from cached features.", no_args_is_help=True)
console = make_console()

# Options every trainer shares (same names and meaning for every trainer).
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
    """``(log, progress)`` for a trainer: one bar over the fitting steps (epochs) of all
    splits (count, rate, time left, the current split and its latest validation SRCC
    when the trainer reports one), log lines above."""
    with progress_bar(console, "{task.description}", "steps", transient=True) as bar:
        task = bar.add_task("training", total=None)

        def progress(record: dict) -> None:
            where = f"split {record['split']} epoch {record.get('epoch', '?')}"
            val = record.get("val_srcc")
            if isinstance(val, float | int):
                where += f": val SRCC {val:.3f}"
            bar.update(task, completed=record["done"], total=record["total"], description=where)

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


def _own_options(request_cls) -> list[tuple[dataclasses.Field, dict]]:
    """The request class's own CLI options: fields with :func:`option` metadata."""
    return [(f, f.metadata["cli"]) for f in dataclasses.fields(request_cls) if "cli" in f.metadata]


def _parameters(trainer: Trainer) -> list[inspect.Parameter]:
    """The ``qfeat train NAME`` command's parameters: the options every trainer shares,
    ``--epochs`` where its settings have epochs, then its request's own options."""
    settings = trainer.hook("settings")
    section = settings.section
    shared: list[tuple[str, Any, Any]] = [
        ("dataset", DatasetArg, inspect.Parameter.empty),
        ("cache_dir", CacheDirOpt, None),
        ("runs_dir", RunsDirOpt, None),
        ("run", RunOpt, None),
        ("splits", SplitsOpt, 10),
    ]
    if "epochs" in settings.field_names():
        epochs = Annotated[int | None, typer.Option(min=1, help=f"Override {section}.epochs.")]
        shared.append(("epochs", epochs, None))
    set_help = f"Override {section}.key=value."
    shared += [
        ("seed", SeedOpt, 0),
        ("device", DeviceOpt, "auto"),
        ("set_", Annotated[list[str] | None, typer.Option("--set", help=set_help)], None),
        ("preset", PresetOpt, None),
        ("basis", BasisOpt, None),
    ]
    for field, cli in _own_options(trainer.hook("request")):
        kind = bool if cli["invert"] else field.type
        kind = {"str | None": str | None, "str": str, "int": int, "bool": bool}.get(kind, kind)
        flag = cli["flag"] or "--" + field.name.replace("_", "-")
        default = False if cli["invert"] else field.default
        shared.append((field.name, Annotated[kind, typer.Option(flag, help=cli["help"])], default))
    return [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=a, default=d)
        for name, a, d in shared
    ]


def train_command(trainer: Trainer) -> Callable[..., None]:
    """The ``qfeat train NAME`` command of a registry entry: shared options, the trainer's
    own (its request class's :func:`option` fields), Ctrl-C handling, the results table."""
    parameters = _parameters(trainer)

    def command(**given: Any) -> None:
        from qfeat.trainers.runfolder import RunFolder

        request_cls = trainer.hook("request")
        with user_errors():
            common = _common({**given, "epochs": given.get("epochs")})
            own = {
                f.name: (not given[f.name]) if cli["invert"] else given[f.name]
                for f, cli in _own_options(request_cls)
            }
            # usage errors first (--run, --set), then what the inputs hold
            request = request_cls(**common, preset=given["preset"], basis=given["basis"], **own)
            _check_settings(trainer, request)
            _check_unlocked(request, trainer.name)
            _preflight(trainer, common)
            with resumable(trainer.name, request), training_progress() as (log, progress):
                folder, metrics = trainer.hook("train")(request, log=log, progress=progress)
            variant = trainer.hook("variant")(RunFolder(folder).config)
        count = len(metrics["splits"])
        title = f"{trainer.name} ({variant}) on {given['dataset']}: {count} test results"
        print_run(metrics, title, folder)

    command.__name__ = f"train_{trainer.name}"
    command.__doc__ = trainer.help
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command


def add_train_commands(target: typer.Typer, trainers: dict[str, Trainer]) -> None:
    """One ``qfeat train NAME`` command per registry entry."""
    for name, trainer in trainers.items():
        target.command(name, help=trainer.help)(train_command(trainer))


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


def _check_settings(trainer, request) -> None:
    """The trainer's --set / --epochs values against its settings class (a usage error,
    exit 2, before any cache is looked at)."""
    from qfeat.pipeline.config import default_preset
    from qfeat.trainers.settings import trainer_settings

    preset = request.preset or default_preset(request.dataset)
    trainer_settings(trainer.hook("settings"), preset, request.sets, request.epochs)


def _check_unlocked(request, trainer: str) -> None:
    """A run folder another `qfeat train` is writing: refused before anything else is
    looked at (its lock is tried, and let go at once)."""
    from qfeat.trainers.runfolder import run_lock

    if request.run is None:
        return
    folder = request.folder(trainer)
    if (folder.path / ".train.lock").exists():
        with run_lock(folder):
            pass


def _preflight(trainer, common: dict) -> None:
    """Before any training, in input order: the dataset is cached, the runs folder can be
    written (every problem listed; qfeat.pipeline.preflight)."""
    from qfeat.pipeline.preflight import Checks, check_writable
    from qfeat.trainers.registry import check_cached_dataset

    checks = Checks()
    with checks.collect():
        check_cached_dataset(trainer, common["cache_dir"], common["dataset"])
    with checks.collect():
        check_writable(common["runs_dir"], "--runs-dir")
    checks.raise_any()


def _common(given: dict[str, Any]) -> dict:
    """The request fields every trainer shares, defaults resolved."""
    from qfeat.pipeline.cluster import resolve_device

    return {
        "dataset": given["dataset"],
        "cache_dir": default_cache_dir(given["cache_dir"]),
        "runs_dir": default_runs_dir(given["runs_dir"]),
        "run": given["run"],
        "splits": given["splits"],
        "epochs": given["epochs"],
        "seed": given["seed"],
        "device": resolve_device(given["device"]),
        "sets": given["set_"] or [],
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


add_train_commands(app, TRAINERS)

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

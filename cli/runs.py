"""`qfeat runs` (the runs under the runs dir) and `qfeat table RUN...` (their results
side by side, with a paired significance test against the first run)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from qfeat.cli.console import make_console
from qfeat.cli.errors import err_console, user_errors
from qfeat.cli.shown import shown, visible

app = typer.Typer()
console = make_console()

RunsDir = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Runs directory (default: $QFEAT_RUNS_DIR or ./runs)."),
]


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _basis(text: str) -> str:
    return text if text == "complete" else f"[yellow]{text}[/]"


@app.command("runs")
def runs(
    runs_dir: RunsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The runs under the runs dir: trainer, dataset, preset, mean test SRCC / PLCC,
    splits, date, and whether each finished or can be resumed."""
    from qfeat.pipeline.paths import runs_dir as default_runs_dir
    from qfeat.trainers.runs_table import list_runs

    root = default_runs_dir(runs_dir)
    with user_errors():
        lines = list_runs(root)
    if as_json:
        typer.echo(json.dumps([asdict(line) for line in lines], indent=2))
        return
    if not lines:
        console.print(f"no runs under {shown(root)}")
        return
    console.print(f"runs under {shown(root)}")
    for line in lines:
        state = "finished" if line.state == "finished" else "[yellow]resumable[/]"
        console.print(
            f"  [bold]{shown(line.name)}[/]  {line.trainer} on {shown(line.dataset)} "
            f"({line.preset}, {_basis(line.basis)}) · SRCC {_num(line.srcc)} · "
            f"PLCC {_num(line.plcc)} · "
            f"{line.splits}{' splits' if line.state == 'finished' else ''} · {line.date} · "
            f"{state}"
        )
    console.print(
        f"{len(lines)} runs; resume one with the same `qfeat train` command and --run NAME"
    )


@app.command("table")
def table(
    runs: Annotated[
        list[str], typer.Argument(help="Run folders or names; the first is the reference.")
    ],
    runs_dir: RunsDir = None,
    fmt: Annotated[str, typer.Option("--format", help="md, csv, latex or json.")] = "md",
    on: Annotated[
        str | None,
        typer.Option("--on", help="Cross-dataset: evaluate every run on these cached datasets."),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="The cache the --on datasets are in.")
    ] = None,
    figure: Annotated[
        Path | None, typer.Option("--figure", help="With --on: the matrix as a PNG/SVG file.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (for --on).")] = "auto",
) -> None:
    """Within-dataset results of several runs side by side (mean ± std and median over
    splits, valid splits), with a Wilcoxon signed-rank p-value for each run trained on
    the same splits as the first."""
    from qfeat.errors import OptionError
    from qfeat.trainers.runfolder import RunFolder
    from qfeat.trainers.runs_table import FORMATS, build_table, render

    with user_errors():
        if fmt not in FORMATS:
            raise OptionError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if figure is not None and not on:
            raise OptionError("--figure draws the --on matrix: give --on DATASET,...")
        folders = [RunFolder.find(run, runs_dir) for run in runs]
        rows = build_table(folders)
        if on:
            from dataclasses import replace

            from qfeat.pipeline.cluster import resolve_device
            from qfeat.pipeline.paths import cache_dir as default_cache_dir
            from qfeat.trainers.runs_table import cross_dataset, plot_matrix

            datasets = [d.strip() for d in on.split(",") if d.strip()]
            reasons: dict[tuple[str, str], str] = {}
            cross = cross_dataset(
                folders, datasets, default_cache_dir(cache_dir), resolve_device(device), reasons
            )
            rows = [replace(row, cross=cross[row.run]) for row in rows]
            if figure is not None:
                plot_matrix(rows, figure)
    typer.echo("\n".join(visible(line) for line in render(rows, fmt).split("\n")))
    for (name, dataset), why in (reasons if on else {}).items():
        err_console.print(f"– {shown(name)} on {shown(dataset)}: {shown(why)}")
    if figure is not None:
        make_console(stderr=True).print(f"matrix figure written to {shown(figure)}")

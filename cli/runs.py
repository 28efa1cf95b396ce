"""`qfeat runs` (the runs under the runs dir) and `qfeat table RUN...` (their results
side by side, with a paired significance test against the first run)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qfeat.cli.errors import user_errors
from qfeat.cli.shown import shown

app = typer.Typer()
console = Console(highlight=False, soft_wrap=True)

RunsDir = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Runs directory (default: $QFEAT_RUNS_DIR or ./runs)."),
]


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


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
        console.print(f"no runs under {root}")
        return
    console.print(f"runs under {shown(root)}")
    for line in lines:
        state = "finished" if line.state == "finished" else "[yellow]resumable[/]"
        console.print(
            f"  [bold]{shown(line.name)}[/]  {line.trainer} on {shown(line.dataset)} "
            f"({line.preset}) · SRCC {_num(line.srcc)} · PLCC {_num(line.plcc)} · "
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
        rows = build_table([RunFolder.find(run, runs_dir) for run in runs])
    typer.echo(render(rows, fmt))

"""`qfeat report RUN`: a self-contained HTML report of a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qfeat.cli.console import make_console
from qfeat.cli.errors import user_errors
from qfeat.cli.shown import shown, visible

app = typer.Typer()
console = make_console()


@app.command("report")
def report(
    run: Annotated[Path, typer.Argument(help="Run folder, or a run name under the runs dir.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default <run>/report.html).")
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir")] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="The cache the run was trained from (default: its own)."),
    ] = None,
) -> None:
    """Write one self-contained HTML page about a run: metrics, plots, best/median/worst items."""
    from qfeat.cli.train import note_cache_gone
    from qfeat.trainers.report import build_report, summary_line
    from qfeat.trainers.runfolder import RunFolder

    with user_errors():
        folder = RunFolder.find(run, runs_dir).path
        note_cache_gone(folder, cache_dir)
        path = build_report(folder, out, cache_dir=cache_dir)
        line = summary_line(folder)
    typer.echo(visible(Path(path).absolute()))
    console.print(shown(line))

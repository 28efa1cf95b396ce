"""`qfeat predict RUN PATH...`: score images (rsa runs) or videos (scma runs) live.

Exit codes: 0 every file scored · 1 a file could not be scored (all results are still
printed) or the run cannot score files (e.g. a stage model that differs from the one
the run was trained with) · 2 usage (no files matched the paths).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qfeat.cli.console import make_console
from qfeat.cli.errors import EXIT_DATA, interrupted, user_errors
from qfeat.cli.progress import progress_bar
from qfeat.cli.shown import shown

app = typer.Typer()
console = make_console()


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("predict")
def predict(
    run: Annotated[str, typer.Argument(help="Run folder, or a run name under the runs dir.")],
    paths: Annotated[
        list[str],
        typer.Argument(help="Files, folders (searched recursively) or glob patterns."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only a JSON list of results.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    runs_dir: Annotated[Path | None, typer.Option("--runs-dir")] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Files per chunk (default 32 images, 8 videos).")
    ] = None,
) -> None:
    """Score new images or videos with a trained run (its stages run live on the files)."""
    from qfeat.cli.train import note_cache_gone
    from qfeat.errors import OptionError
    from qfeat.pipeline.cluster import resolve_device
    from qfeat.trainers.predict import expand_paths, file_kind, load_run
    from qfeat.trainers.runfolder import RunFolder

    t0 = time.perf_counter()
    with user_errors():
        folder = RunFolder.find(run, runs_dir).path
        modality, extensions = file_kind(folder)
        note_cache_gone(folder, None)
        files = expand_paths(paths, extensions)
        kinds = " ".join(extensions)
        if not files:
            raise OptionError(f"no {modality} files ({kinds}) matched {' '.join(paths)}")
        other = [str(f) for f in files if f.suffix.lower() not in extensions]
        if other:  # before any model is loaded: a wrong kind of file fails at once
            raise OptionError(
                f"{', '.join(other[:3])}{' ...' if len(other) > 3 else ''}: not {modality} "
                f"files ({kinds}); run {folder.name} scores {modality}s — use a run of the "
                "other trainer for these"
            )
        missing = [f for f in files if not f.exists()]
        if missing and len(missing) == len(files):  # before any model loads
            from qfeat.errors import DatasetError

            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DatasetError(
                f"{missing[0]} does not exist{more}; give files or folders that exist"
            )
        with interrupted("nothing was written; run the same command again"):
            model = load_run(folder, resolve_device(device))
            # on stderr, and gone when done: --json keeps stdout pure JSON
            with progress_bar(make_console(stderr=True), "scoring", "files", transient=True) as bar:
                task = bar.add_task("scoring", total=len(files))
                results = model.score(files, batch_size, lambda n: bar.advance(task, n))
    failed = sum(r.status != "ok" for r in results)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        count = f"{len(results)} file{'s' * (len(results) != 1)}"
        table = Table(title=f"{shown(folder.name)} ({model.trainer}) on {count}")
        for name in ("file", "score", "score_01", "status"):
            table.add_column(
                name,
                justify="right" if name.startswith("score") else "left",
                overflow="fold",
            )
        for r in results:
            status = "ok" if r.status == "ok" else f"[red]{r.status}[/]: {shown(r.error or '')}"
            table.add_row(shown(r.path), _number(r.score, 3), _number(r.score_01, 3), status)
        console.print(table)
        console.print(
            f"scored {len(results) - failed}, failed {failed}, {time.perf_counter() - t0:.1f} s"
        )
    if failed:
        raise typer.Exit(EXIT_DATA)

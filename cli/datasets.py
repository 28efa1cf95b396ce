"""`qfeat datasets` (list adapters) and `qfeat datasets check` (validate a root)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qfeat.cli.console import make_console
from qfeat.cli.errors import EXIT_DATA, user_errors
from qfeat.cli.progress import progress_bar
from qfeat.cli.shown import shown
from qfeat.pipeline.config import parse_options
from qfeat.pipeline.datasets import REGISTRY, open_dataset
from qfeat.pipeline.datasets.check import check_dataset, has_problems

app = typer.Typer(help="List dataset adapters and check dataset folders.")
console = make_console()

OptionArg = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="Adapter option KEY=VALUE (repeatable)."),
]


def adapter_rows() -> list[dict]:
    return [
        {
            "name": cls.name,
            "modality": cls.modality,
            "layout": cls.layout,
            "score_min": cls.scale.low,
            "score_max": cls.scale.high,
            "higher_is_better": cls.scale.higher_is_better,
            "official_splits": cls.has_official_splits,
            "options": dict(cls.options),
        }
        for cls in REGISTRY.values()
    ]


@app.callback(invoke_without_command=True)
def list_datasets(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the dataset adapters: modality, expected layout, score range, direction."""
    if ctx.invoked_subcommand is not None:
        return
    rows = adapter_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="qfeat dataset adapters", show_lines=True)
    table.add_column("name", no_wrap=True)
    table.add_column("modality", no_wrap=True)
    table.add_column("expected layout", overflow="fold", ratio=1, min_width=30)
    table.add_column("scores", no_wrap=True)
    table.add_column("higher better", no_wrap=True)
    table.add_column("splits", no_wrap=True)
    for r in rows:
        lo = "data" if r["score_min"] is None else f"{r['score_min']:g}"
        hi = "data" if r["score_max"] is None else f"{r['score_max']:g}"
        table.add_row(
            r["name"],
            r["modality"],
            r["layout"],
            f"{lo}–{hi}",
            "yes" if r["higher_is_better"] else "no",
            "official" if r["official_splits"] else "random",
        )
    console.print(table)


@app.command("check")
def check(
    name: Annotated[str, typer.Argument(help="Adapter name (see `qfeat datasets`).")],
    root: Annotated[
        Path | None,
        typer.Option(help="Dataset root (default: $QFEAT_DATA_ROOT/<name>)."),
    ] = None,
    option: OptionArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    decode: Annotated[
        bool, typer.Option("--decode/--no-decode", help="Also try to decode every file.")
    ] = True,
    workers: Annotated[int, typer.Option(min=1, help="Parallel file checks.")] = 4,
) -> None:
    """Validate a dataset root: items, missing/unreadable files, scores, split sizes.

    Exits 1 when files are missing or unreadable or metadata rows were rejected.
    """
    with user_errors():
        adapter = open_dataset(name, root, parse_options(option or []))
        if as_json:
            report = check_dataset(adapter, decode=decode, workers=workers)
        else:
            report = _check_with_progress(adapter, decode, workers)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if has_problems(report):
        raise typer.Exit(EXIT_DATA)


def _check_with_progress(adapter, decode: bool, workers: int) -> dict:
    with progress_bar(
        make_console(stderr=True), "checking {task.description}", transient=True
    ) as progress:
        task = progress.add_task(adapter.name, total=None)
        return check_dataset(
            adapter,
            decode=decode,
            workers=workers,
            on_total=lambda n: progress.update(task, total=n),
            on_item=lambda: progress.advance(task),
        )


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _print_report(r: dict) -> None:
    console.print(f"[bold]{shown(r['name'])}[/] ({r['modality']}) at {shown(r['root'])}")
    console.print(f"  items      {r['items']}  ({r['groups']} content groups)")
    console.print(f"  missing    {r['missing']}")
    console.print(f"  unreadable {r['unreadable']}" + ("" if r["decoded"] else " (not decoded)"))
    console.print(f"  rejected   {r['rejected']} metadata rows")
    if r["duplicates"]:
        console.print(f"  duplicates {r['duplicates']} items listed more than once (merged)")
    console.print(
        f"  scores     min {_fmt(r['score_min'])}  max {_fmt(r['score_max'])}  "
        f"mean {_fmt(r['score_mean'])}"
    )
    splits = ", ".join(f"{k}: {v}" for k, v in r["splits"].items()) or "none (random splits)"
    console.print(f"  splits     {splits}")
    for folder in r.get("missing_folders", []):
        console.print(f"  [red]missing[/]    folder {shown(folder)}/ (every item in it is missing)")
    for f in r["missing_files"][:10]:
        console.print(f"  [red]missing[/]    {shown(f)}")
    for u in r["unreadable_files"][:10]:
        console.print(f"  [red]unreadable[/] {shown(u['item_id'])}: {shown(u['reason'])}")
    for p in r["rejected_rows"][:10]:
        console.print(f"  [red]rejected[/]   {shown(p['reason'])}")
    for p in r["duplicate_rows"][:10]:
        console.print(f"  [yellow]duplicate[/]  {shown(p['reason'])}")
    for warning in r["warnings"]:
        console.print(f"  [yellow]warning[/]    {shown(warning)}")
    if has_problems(r):
        console.print("[yellow]problems found[/]: fix or remove the rows/files listed above")
    else:
        console.print("[green]ok[/]")

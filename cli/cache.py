"""`qfeat cache ls | verify | migrate | errors | gc`: inspect and maintain the feature cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from qfeat.cache.inventory import all_stages, entries, find_garbage
from qfeat.cache.reader import open_stage
from qfeat.cache.verify import repair, verify_stage
from qfeat.cli.console import make_console
from qfeat.cli.errors import EXIT_DATA, user_errors
from qfeat.cli.shown import shown
from qfeat.pipeline.paths import cache_dir as default_cache_dir

app = typer.Typer(help="Inspect and maintain the feature cache.", no_args_is_help=True)
console = make_console()

CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Cache directory (default: $QFEAT_CACHE_DIR or ./qfeat-cache)."
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@app.command("ls")
def ls(cache_dir: CacheDir = None, as_json: Json = False) -> None:
    """One line per dataset/stage/fingerprint: completeness, items, size; * = in use."""
    root = default_cache_dir(cache_dir)
    found = entries(root)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        console.print(f"the cache at {shown(root)} is empty")
        return
    table = Table(
        title=f"qfeat cache at {root}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    rows = [
        [
            e["dataset"],
            e["stage"],
            e["fingerprint"] + ("*" if e["in_use"] else " "),
            f"{e['shards_done']}/{e['shards_total']}",
            str(e["items_ok"]),
            str(e["items_failed"]),
            _human(e["bytes"]),
            (e["created"] or "-")[:16].replace("T", " "),
        ]
        for e in found
    ]
    names = ("dataset", "stage", "fingerprint", "shards", "ok", "failed", "size", "created")
    for i, col in enumerate(names):
        if col in ("dataset", "stage", "created"):  # these wrap in a narrow terminal
            table.add_column(col, overflow="fold")
        else:  # these never shrink
            width = max(len(col), *(len(r[i]) for r in rows))
            right = "right" if col in ("ok", "failed") else "left"
            table.add_column(col, no_wrap=True, min_width=width, justify=right)
    for e, row in zip(found, rows, strict=True):
        if not e["complete"]:
            row[3] = f"[yellow]{row[3]}[/]"
        table.add_row(*row)
    console.print(table)
    console.print(
        "* the fingerprint `cache errors` and `cache export` open by default (the last "
        "complete run); `qfeat train` reads one coherent set and prints it"
    )
    held = [e for e in found if e["held_by"]]
    if held:
        console.print(f"{len(held)} fingerprints are held by runs (`cache ls --json`: held_by)")


@app.command("verify")
def verify(
    cache_dir: CacheDir = None,
    fix: Annotated[
        bool, typer.Option("--repair", help="Remove bad shards so the next run recomputes them.")
    ] = False,
) -> None:
    """Re-read every shard (checksums, schema, row counts, HDF5, media); exit 1 if any is bad."""
    root = default_cache_dir(cache_dir)
    stages = all_stages(root)
    checked, bad_total = 0, []
    for stage in stages:
        checked += len(list(stage.dir.glob("shard-*.done.json")))
        for bad in verify_stage(stage):
            bad_total.append(bad)
            console.print(f"[red]bad[/] {shown(bad.path)}: {shown(bad.reason)}")
            if fix:
                repair(bad)
                console.print(f"    {shown(bad.repaired)}")
    summary = f"{checked} shards in {len(stages)} stage folders checked, {len(bad_total)} bad"
    console.print(summary + (" (repaired)" if fix and bad_total else ""))
    if bad_total and not fix:
        console.print("run `qfeat cache verify --repair` to remove them")
        raise typer.Exit(EXIT_DATA)


@app.command("migrate")
def migrate(cache_dir: CacheDir = None) -> None:
    """Seal, once, the records of a cache written before seals (each checked first)."""
    from qfeat.cache.migrate import migrate as seal_records

    root = default_cache_dir(cache_dir)
    done = seal_records([stage.dir for stage in all_stages(root)])
    for path in done.sealed:
        console.print(f"sealed {shown(path)}")
    for path, reason in done.refused:
        console.print(f"[red]not sealed[/] {shown(path)}: {shown(reason)}")
    if not done.sealed and not done.refused:
        console.print(f"nothing to migrate: every record in {shown(root)} is sealed")
        return
    console.print(f"{len(done.sealed)} records sealed, {len(done.refused)} not sealed")
    if done.refused:
        console.print("run `qfeat cache verify --repair` to remove what could not be sealed")
        raise typer.Exit(EXIT_DATA)


@app.command("export")
def export(
    dataset: Annotated[str, typer.Argument(help="Dataset name as cached.")],
    stage: Annotated[str, typer.Argument(help="Stage name, e.g. backbone or clip.")],
    fmt: Annotated[str, typer.Option("--format", help="npy, hf or webdataset.")] = "npy",
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    cache_dir: CacheDir = None,
    fingerprint: Annotated[str | None, typer.Option(help="A specific fingerprint.")] = None,
    all_rows: Annotated[
        bool, typer.Option("--all-rows", help="Also the error rows (zero arrays).")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Export into a folder that is not empty.")
    ] = False,
) -> None:
    """A stage's table and arrays as .npy files, a Hugging Face Parquet file or
    WebDataset tar shards, for code that does not use qfeat."""
    from qfeat.cache.export import FORMATS, export_stage
    from qfeat.errors import OptionError

    root = default_cache_dir(cache_dir)
    target = out or Path(f"{dataset}-{stage}-{fmt}")
    with user_errors():
        if fmt not in FORMATS:
            raise OptionError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        files = export_stage(
            root,
            dataset,
            stage,
            fmt,
            target,
            fingerprint=fingerprint,
            all_rows=all_rows,
            overwrite=overwrite,
        )
    console.print(
        f"exported {shown(dataset)}/{shown(stage)} ({fmt}) to {shown(target)}: "
        f"{shown(', '.join(files))}"
    )


@app.command("errors")
def errors(
    dataset: Annotated[str, typer.Argument(help="Dataset name as cached.")],
    stage: Annotated[str, typer.Argument(help="Stage name, e.g. regions or frames.")],
    cache_dir: CacheDir = None,
    fingerprint: Annotated[str | None, typer.Option(help="A specific fingerprint.")] = None,
    as_json: Json = False,
) -> None:
    """The items a stage failed on, with the reasons."""
    root = default_cache_dir(cache_dir)
    with user_errors():
        failed = open_stage(root, dataset, stage, fingerprint).errors()
    rows = failed[["item_id", "status", "error"]].to_dict(orient="records")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        console.print(f"{shown(r['item_id'])}  [red]{r['status']}[/]  {shown(r['error'])}")
    console.print(f"{len(rows)} failed items in {shown(dataset)}/{shown(stage)}")


@app.command("gc")
def gc(
    cache_dir: CacheDir = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really remove what is listed.")] = False,
    include_protected: Annotated[
        bool,
        typer.Option(
            "--include-protected",
            help="Also remove superseded fingerprints that runs were trained on (their "
            "reports then lack per-item details).",
        ),
    ] = False,
) -> None:
    """List (and with --yes remove) temp files and superseded fingerprints; those a run
    was trained on are protected: listed with their runs, kept unless --include-protected."""
    root = default_cache_dir(cache_dir)
    found = find_garbage(root, include_protected=include_protected)
    garbage = [g for g in found if include_protected or not g.held_by]
    for g in found:
        if g not in garbage:
            console.print(
                f"protected {shown(g.path)}  ({g.reason}, {_human(g.bytes)}; held by runs "
                f"{shown(', '.join(g.held_by))}: --include-protected removes it)"
            )
    for g in garbage:
        held = f"; held by runs {', '.join(g.held_by)}" if g.held_by else ""
        console.print(
            f"{'removing' if yes else 'would remove'} {shown(g.path)}  "
            f"({g.reason}{shown(held)}, {_human(g.bytes)})"
        )
        if yes:
            shutil.rmtree(g.path) if g.path.is_dir() else g.path.unlink()
    total = _human(sum(g.bytes for g in garbage))
    if not garbage:
        console.print("nothing to collect")
    elif yes:
        console.print(f"removed {len(garbage)} entries, {total}")
    else:
        flag = " --include-protected" if include_protected else ""
        console.print(
            f"{len(garbage)} entries, {total}; run `qfeat cache gc --yes{flag}` to remove them"
        )

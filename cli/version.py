"""`qfeat version`."""

from __future__ import annotations

import platform
from importlib import metadata

import typer

app = typer.Typer()


def qfeat_version() -> str:
    try:
        return metadata.version("qfeat")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@app.command("version")
def version(
    full: bool = typer.Option(False, "--full", help="Also print Python and key libraries."),
) -> None:
    """Print qfeat's version."""
    typer.echo(f"qfeat {qfeat_version()}")
    if full:
        typer.echo(f"python {platform.python_version()}")
        for lib in ("torch", "torchvision", "open_clip_torch", "transformers", "dask", "pyarrow"):
            try:
                typer.echo(f"{lib} {metadata.version(lib)}")
            except metadata.PackageNotFoundError:
                typer.echo(f"{lib} not installed")

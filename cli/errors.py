"""Exit codes and the mapping from library errors to them.

0 ok · 1 a problem with the user's data or setup (the message names the fix) · 2 usage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from qfeat.pipeline.datasets.base import DatasetError, OptionError

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn DatasetError into exit 1 and OptionError into exit 2, with a clean message."""
    try:
        yield
    except OptionError as exc:
        err_console.print(f"[bold red]usage error:[/] {exc}", markup=True)
        raise typer.Exit(EXIT_USAGE) from None
    except DatasetError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True)
        raise typer.Exit(EXIT_DATA) from None

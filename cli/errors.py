"""The one place library errors become exit codes (see :mod:`qfeat.errors`).

0 ok · 1 a problem with the user's data or setup (the message names the fix) · 2 usage ·
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from qfeat.cli.console import make_console
from qfeat.cli.shown import shown
from qfeat.errors import (
    EXIT_DATA,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Problems,
    QfeatError,
    without_unsafe_advice,
)

__all__ = ["EXIT_DATA", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "err_console",
           "interrupted", "user_errors"]  # fmt: skip

err_console = make_console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`~qfeat.errors.QfeatError` into its exit code (DatasetError 1,
    OptionError 2) with a one-line message instead of a traceback (one line per problem
    of a :class:`~qfeat.errors.Problems`). The message is
    escaped: item ids and paths may hold text that looks like rich markup."""
    try:
        yield
    except QfeatError as exc:
        for error in exc.errors if isinstance(exc, Problems) else [exc]:
            label = "usage error" if error.exit_code == EXIT_USAGE else "error"
            err_console.print(
                f"[bold red]{label}:[/] {shown(without_unsafe_advice(str(error)))}", markup=True
            )
        raise typer.Exit(exc.exit_code) from None


@contextmanager
def interrupted(what: str) -> Iterator[None]:
    """Ctrl-C: one line saying ``what`` (what was kept and how to go on), exit 130, no
    traceback. Context managers inside (the Dask cluster) close on the way out."""
    try:
        yield
    except KeyboardInterrupt:
        err_console.print(f"\ninterrupted: {what}")
        raise typer.Exit(EXIT_INTERRUPTED) from None

"""The consoles every command prints with.

On a terminal rich fits tables to the window. Piped (a SLURM log, ``| less``, CI) there
is no window: rich would take ``COLUMNS`` or 80 columns and fold paths and setting names
mid-word (``demo-vide``/``o``, ``regions.chec``/``kpoint``), which a reader and a
``grep`` both miss. Piped consoles are therefore :data:`PIPED_WIDTH` wide: a table prints
at its natural width, each row on one line.
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 10_000


def is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced by something without isatty
        return False


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) without highlighting or hard wrapping; piped, as
    wide as its widest table (see the module docstring)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if is_tty(stream) else PIPED_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)

"""The progress bar every long-running command shows: a label, the bar, done/total,
any extra columns, elapsed time and time left."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(
    console: Console, label: str, *extra: ProgressColumn | str, transient: bool = False
) -> Progress:
    """``label`` and ``extra`` strings are rich ``TextColumn`` formats (``{task...}``)."""
    columns = [TextColumn(c) if isinstance(c, str) else c for c in extra]
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )

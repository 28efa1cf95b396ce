"""The progress every long-running command shows.

On a terminal: a rich bar with a label, the bar, done/total, any extra columns, elapsed
time and time left. When the output is not a terminal (a SLURM log, ``make demo > log``)
a bar would only appear at the end, so :class:`LineProgress` prints one plain line per
update instead (a finished shard, an epoch), at most every :data:`LINE_INTERVAL_S`
seconds per task plus the line that completes it: label, done/total, rate, elapsed and
time left.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LINE_INTERVAL_S = 2.0


def progress_bar(
    console: Console, label: str, *extra: ProgressColumn | str, transient: bool = False
) -> Progress:
    """``label`` and ``extra`` strings are rich ``TextColumn`` formats (``{task...}``)."""
    if not console.is_terminal:
        return LineProgress(console, label, [c for c in extra if isinstance(c, str)])
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


class LineProgress(Progress):
    """A rich Progress that draws nothing live and prints plain progress lines."""

    def __init__(self, console: Console, label: str, extra: list[str]):
        super().__init__(console=console, disable=True)
        self.label, self.extra = label, extra
        self.last_line: dict[TaskID, float] = {}
        self.lines_done: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._line(task_id)

    def _line(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        now = time.monotonic()
        done = task.total is not None and task.completed >= task.total
        recent = now - self.last_line.get(task_id, -LINE_INTERVAL_S) < LINE_INTERVAL_S
        if not task.completed or task_id in self.lines_done or (recent and not done):
            return
        self.last_line[task_id] = now
        if done:
            self.lines_done.add(task_id)
        total = "?" if task.total is None else f"{task.total:g}"
        extra = [Text.from_markup(e.format(task=task)).plain.strip() for e in self.extra]
        count = " ".join([f"{task.completed:g}/{total}", *extra[:1]])
        parts = [Text.from_markup(self.label.format(task=task)).plain.strip(), count, *extra[1:]]
        if task.speed and not any(e.endswith("/s") for e in extra):
            parts.append(f"{task.speed:.2f}/s")
        parts.append(f"elapsed {_clock(task.elapsed)}")
        if task.time_remaining is not None and not done:
            parts.append(f"left {_clock(task.time_remaining)}")
        self.console.print(" · ".join(p for p in parts if p), markup=False, highlight=False)


def _clock(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

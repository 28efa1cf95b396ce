"""Why a shard failed, said in one line per shard, the traceback kept in the cache.

A shard task that raises writes its full traceback to the stage's log file
(``<cache>/<dataset>/.logs/<stage>-<fingerprint>.log``, :func:`log_path`) and reaches the
terminal as one line: stage, shard, first item, the reason's first line (at most
:data:`LINE_CHARS` characters). A failure that will repeat — a model that cannot load
(wrong architecture, missing or unreadable file), a qfeat error — is *permanent*: the
task returns it instead of raising, so Dask neither retries it nor logs it, and the
advice is to fix the cause, never to "run again". When every failed shard of a stage
failed for one reason, that reason is said once.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

LINE_CHARS = 200
LOG_DIR = ".logs"  # a dot folder: the cache's listings and gc skip it


@dataclass(frozen=True)
class ShardFailure:
    index: int
    reason: str  # one line
    permanent: bool = False
    first_item: str = ""


class ShardError(Exception):
    """A shard's failure as the worker reports it: the reason's first line only (the
    traceback is in the stage's log file), so neither Dask nor the terminal shows more."""


def log_path(stage_folder: str | Path) -> Path:
    """The log file of the stage cache folder ``<cache>/<dataset>/<stage>/<fingerprint>``."""
    folder = Path(stage_folder)
    return folder.parents[1] / LOG_DIR / f"{folder.parent.name}-{folder.name}.log"


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of ``exc``, without torch's advice to unpickle unsafely."""
    from qfeat.errors import without_unsafe_advice

    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return without_unsafe_advice(f"{type(exc).__name__}: {lines[0] if lines else '(no message)'}")


def permanent(exc: BaseException, loading: bool) -> bool:
    """Whether ``exc`` will happen again on the same input: anything raised while the
    model loads (except running out of memory), a qfeat error, a missing file."""
    from qfeat.errors import QfeatError

    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return False
    return loading or isinstance(exc, QfeatError | FileNotFoundError)


def record(stage_folder: str | Path, index: int, exc: BaseException, what: str) -> str:
    """Append ``exc``'s traceback to the stage's log; returns the one-line reason."""
    path = log_path(stage_folder)
    text = "".join(traceback.format_exception(exc))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- shard {index:05d}, {what}\n{text}\n")
    except OSError:  # a full or read-only cache: the line still says why
        pass
    return first_line(exc)


def shard_line(stage: str, failure: ShardFailure) -> str:
    """``regions shard 00003 (first item a.jpg) failed permanently: ...`` (<= 200 chars)."""
    how = "failed permanently" if failure.permanent else "failed"
    item = f" (first item {failure.first_item})" if failure.first_item else ""
    line = f"{stage} shard {failure.index:05d}{item} {how}: {failure.reason}"
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def describe(reports, cache_dir: Path | None = None) -> list[str]:
    """One line per failed shard, or one per stage when all its failures share a reason,
    then the advice: fix the cause for permanent failures, run again otherwise."""
    lines, permanent_seen, retry_seen = [], False, False
    for r in reports:
        failures = r.shards_failed
        reasons = {f.reason for f in failures}
        if len(failures) > 1 and len(reasons) == 1:
            f = failures[0]
            how = " permanently" if f.permanent else ""
            line = f"{r.stage}: all {len(failures)} failed shards failed{how}: {f.reason}"
            lines.append(line[:LINE_CHARS])
        else:
            lines.extend(shard_line(r.stage, f) for f in failures)
        if failures and log_path(r.path).is_file():  # a killed worker wrote none
            lines.append(f"{r.stage}: tracebacks in {log_path(r.path)}")
        permanent_seen |= any(f.permanent for f in failures)
        retry_seen |= any(not f.permanent for f in failures)
        if r.skipped_reason:
            lines.append(f"{r.stage} skipped: {r.skipped_reason}")
    if permanent_seen:
        lines.append(
            "a permanent failure happens again on every run: fix its cause (the weights, "
            "model folder or file named above), then run the command again"
        )
    if retry_seen:
        lines.append("run the same command again to retry the failed shards")
    return lines


def shard_outcome(future) -> tuple[dict | None, ShardFailure | None]:
    """A shard task's stats, or why it has none (index and first item filled in by the
    caller). A permanent failure comes back as a result holding ``error``. A task can
    finish just before the scheduler dies: fetching its result then fails with a closed
    connection (an OSError), which is the same lost-scheduler story, not a crash."""
    try:
        if future.status == "finished":
            stats = future.result()
            if "error" in stats:
                return None, ShardFailure(stats["shard"], stats["error"], permanent=True)
            return stats, None
        return None, ShardFailure(-1, failure_reason(future))
    except OSError as exc:
        return None, ShardFailure(
            -1, lost_scheduler(f"{type(exc).__name__} while asking for the result")
        )


def failure_reason(future) -> str:
    """Why a shard's task did not finish: its exception's first line, or (no exception:
    the task was cancelled or lost because the scheduler, or the connection to it, went
    away) what happened and what to do."""
    from qfeat.pipeline.runner import TASK_RETRIES

    exc = future.exception() if future.status == "error" else None
    if exc is None:
        return lost_scheduler(f"its task was {future.status} without an error")
    reason = str(exc) if isinstance(exc, ShardError) else first_line(exc)
    if type(exc).__name__ == "KilledWorker":  # the worker died each time it ran it
        from qfeat.pipeline.cluster import ALLOWED_FAILURES

        return (
            f"KilledWorker: the worker process died each time it ran the shard "
            f"({ALLOWED_FAILURES + 1} tries): a crash in a library, or the OS ending it for "
            "memory (fewer --workers or a smaller --shard-size)"
        )
    return f"{reason} (raised again on each of {TASK_RETRIES} retries)"


def lost_scheduler(what: str) -> str:
    return (
        f"{what}: the Dask scheduler (or the connection to it) went away; check the "
        "scheduler, then run the same command again"
    )

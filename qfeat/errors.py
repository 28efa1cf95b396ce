"""Every error qfeat raises on purpose, and the exit code each one means.

A leaf module: it imports nothing from qfeat, and every layer (cache, pipeline, trainers,
cli) imports its errors from here. The CLI maps them to exit codes in one place
(:func:`qfeat.cli.errors.user_errors`):

================  ====  ===========================================================
error             exit  meaning
================  ====  ===========================================================
DatasetError      1     a problem with the user's data or setup; the message names
                        the fix (missing files or weights, a stage not cached, ...)
OptionError       2     a usage error: unknown dataset or stage, a malformed or
                        out-of-range ``--option`` / ``--set`` value, ...
ItemError         --    one item failed (a corrupt file); it becomes an error row
                        whose ``status`` is :attr:`ItemError.kind`, never an exit
================  ====  ===========================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2


class QfeatError(Exception):
    """Base of the errors that end a command with a message instead of a traceback."""

    exit_code = EXIT_DATA


class DatasetError(QfeatError):
    """A problem with the user's data or setup; the message says how to fix it."""


class OptionError(QfeatError, ValueError):
    """An unknown or malformed option, setting or name (a usage error)."""

    exit_code = EXIT_USAGE


class ItemError(Exception):
    """A per-item failure with the status word to store (``decode_error``, ...)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind

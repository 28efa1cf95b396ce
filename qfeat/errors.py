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
Problems          1|2   several of the above found by one up-front check (one line
                        each); 2 when one of them is a usage error, else 1
(Ctrl-C)          130   interrupted; what was finished is kept (128 + SIGINT)
ItemError         --    one item failed (a corrupt file); it becomes an error row
                        whose ``status`` is :attr:`ItemError.kind`, never an exit
================  ====  ===========================================================
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # SIGTERM (kill, a scheduler ending a job): 128 + 15


# The status words an error row may carry (the ``status`` column of every stage), with
# what each means. ItemError kinds and every status a stage writes come from here.
STATUSES = {
    "ok": "computed",
    "missing": "the media file does not exist",
    "empty_file": "the media file is empty (0 bytes)",
    "decode_error": "corrupt, truncated, or not an image/video at all",
    "too_large": "an image, or a video's declared frame size, over the pixel limit",
    "no_video": "the file has no video stream (e.g. audio only)",
    "unusable_size": "an image too thin for the model's input (e.g. 1x4000 pixels)",
    "no_frames": "the video stream has no decodable frame",
    "too_long": "a video whose header declares more frames or seconds than qfeat's limits",
    "upstream_error": "a stage this one reads failed on the item (see that stage's error)",
    "model_error": "the model failed on the item (e.g. out of memory on one batch)",
    "value_out_of_range": "a model output beyond fp16's range (or NaN): the cache cannot store it",
    "error": "anything else; the error column says what",
}


# torch's weights-only refusal advises re-running with weights_only=False: advice that
# would run whatever the refused pickle holds. Never passed on to the user.
_UNSAFE = ("trusted source", "file an issue", "weights_only=False")


def without_unsafe_advice(text: str) -> str:
    """``text`` without torch's advice to load a refused file with ``weights_only=False``
    (its sentences naming ``weights_only`` and ``False``, or a trusted source)."""
    text = str(text)
    if "weights_only" not in text and "trusted source" not in text:
        return text
    kept = []
    for sentence in re.split(r"(?<=[.:])\s+|\n+", text):
        plain = sentence.replace("`", "").replace(" set to ", "=")
        unsafe = any(u in plain for u in _UNSAFE) or ("weights_only" in plain and "False" in plain)
        if sentence.strip() and not unsafe:
            kept.append(sentence.strip())
    return " ".join(kept)


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
        if kind not in STATUSES or kind == "ok":
            raise ValueError(f"unknown error status {kind!r}; add it to qfeat.errors.STATUSES")
        super().__init__(reason)
        self.kind = kind


class Problems(DatasetError):
    """Every problem one up-front check found (:mod:`qfeat.pipeline.preflight`), one line
    each, in the order the inputs are checked. Exit 2 when one of them is a usage error."""

    def __init__(self, errors: list[QfeatError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)
        self.exit_code = max(e.exit_code for e in self.errors) if self.errors else EXIT_DATA

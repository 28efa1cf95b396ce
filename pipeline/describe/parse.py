"""Turn a model's answer into a content string and five 1..5 ratings (pure, no I/O).

:func:`parse_answer` never evaluates anything: it reads at most ``MAX_SCAN`` characters
of the text, with :mod:`json` first and bounded regular expressions second.

1. **Strict**: the first JSON object in the text. The whole text, the inside of a
   ```` ```json ```` fence, or the first ``{...}`` that :func:`json.JSONDecoder.raw_decode`
   accepts (at most ``MAX_OBJECTS`` opening braces are tried; nested braces and braces
   inside strings are handled by the JSON decoder, not by counting).
2. **Tolerant** fallback, for every dimension the strict object did not rate validly:
   ``key: word``, ``"key": "word"``, ``key = word``, ``**Key:** word`` or ``key (quality)
   is word`` anywhere in the text, case-insensitive; the first hit per dimension wins.

Keys are matched by name or synonym (:data:`KEY_SYNONYMS`; ``color`` -> colour,
``compression`` -> artifact, ``sharpness`` -> blur, ``quality`` -> overall (strict JSON
only), ...); an exact dimension name beats a synonym. A rating is a level word (``bad``
1, ``poor`` 2, ``fair`` 3, ``good`` 4, ``excellent`` 5) compared case-insensitively after
stripping quotes, spaces and punctuation, optionally followed by the word ``quality``
(``"Good quality."``); in strict JSON also an integer 1..5 (``4`` or ``4.0``). Anything
else (``"terrible"``, ``"very good"``, ``"good/fair"``, ``null``, lists, booleans) is
``None``. ``content`` is the object's ``content`` (or ``description``/``caption``)
string, else the tolerant match, stripped and cut to ``MAX_CONTENT`` characters, unpaired
surrogates replaced so it always encodes as UTF-8; HTML or script text stays plain data.

``parse_ok`` is True exactly when step 1 found a JSON object and all five dimensions
have a valid rating in it (content may be missing); ratings filled in by step 2 leave it
False.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from qfeat.pipeline.levels import DIMENSIONS, LEVELS

MAX_SCAN = 8192  # characters of model output examined
MAX_OBJECTS = 64  # opening braces tried as the start of a JSON object
MAX_CONTENT = 512  # characters of content kept

# canonical dimension -> accepted keys (after lower-casing and joining words with "_"),
# the canonical name first: it wins over its synonyms.
KEY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "colour": ("colour", "color", "colours", "colors", "colourfulness", "colorfulness"),
    "noise": ("noise", "noisiness", "grain", "graininess"),
    "artifact": (
        "artifact",
        "artifacts",
        "artefact",
        "artefacts",
        "compression",
        "compression_artifact",
        "compression_artifacts",
        "jpeg",
    ),
    "blur": ("blur", "blurriness", "blurring", "sharpness", "focus"),
    "overall": ("overall", "overall_quality", "quality"),
}
CONTENT_KEYS = ("content", "description", "caption", "contents")
_SUFFIXES = ("_quality", "_level", "_rating", "_score")


class Parsed(NamedTuple):
    """``content`` (str or None), ``ratings`` (dimension -> 1..5 or None), ``parse_ok``."""

    content: str | None
    ratings: dict[str, int | None]
    parse_ok: bool


def clean_text(text: str, limit: int | None = None) -> str:
    """``text`` cut to ``limit`` characters, unpaired surrogates replaced by ``?``."""
    if limit is not None:
        text = text[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


def level_value(value: Any, allow_int: bool = True) -> int | None:
    """1..5 for a level word (or an integer 1..5 when ``allow_int``), else None."""
    if isinstance(value, bool):
        return None
    if allow_int and isinstance(value, int):
        return value if 1 <= value <= 5 else None
    if allow_int and isinstance(value, float) and value.is_integer():
        return int(value) if 1 <= value <= 5 else None
    if not isinstance(value, str):
        return None
    word = " ".join(value[:64].lower().split()).strip("\"'`*_.,;:!?()[]{} ")
    word = word.removesuffix(" quality").rstrip()
    return LEVELS.index(word) + 1 if word in LEVELS else None


def _canonical_key(key: str) -> str:
    key = re.sub(r"[\s\-]+", "_", key.strip().lower())
    for suffix in _SUFFIXES:
        if key.endswith(suffix) and key not in KEY_SYNONYMS["overall"]:
            key = key[: -len(suffix)]
    return key


def _dimension_of(key: str) -> tuple[str, int] | None:
    """``(dimension, rank)`` of a key; rank 0 = the dimension's own name."""
    key = _canonical_key(key)
    for dim, names in KEY_SYNONYMS.items():
        if key in names:
            return dim, names.index(key)
    return None


def _fenced(text: str) -> str | None:
    """The inside of the first ```` ``` ```` fence (``json`` tag dropped), or None."""
    start = text.find("```")
    end = text.find("```", start + 3) if start != -1 else -1
    if end == -1:
        return None
    inner = text[start + 3 : end]
    if inner[:4].lower() == "json":
        inner = inner[4:]
    return inner.strip()


def _first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (see the module docstring), or None."""
    decoder = json.JSONDecoder()
    candidates = []
    stripped = text.strip()
    if stripped.startswith("{"):
        candidates.append(stripped)
    fence = _fenced(text)
    if fence is not None:
        candidates.append(fence)
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            return obj
    start, tries = text.find("{"), 0
    while start != -1 and tries < MAX_OBJECTS:
        tries += 1
        try:
            obj, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            return obj
        start = text.find("{", start + 1)
    return None


def _strict(obj: dict[str, Any]) -> tuple[str | None, dict[str, int | None]]:
    ratings: dict[str, int | None] = dict.fromkeys(DIMENSIONS)
    ranks: dict[str, int] = {}
    content = None
    for key, value in list(obj.items())[:64]:
        if not isinstance(key, str):
            continue
        if content is None and _canonical_key(key) in CONTENT_KEYS and isinstance(value, str):
            content = value
            continue
        found = _dimension_of(key)
        if found is None:
            continue
        dim, rank = found
        level = level_value(value)
        if level is not None and rank < ranks.get(dim, len(KEY_SYNONYMS[dim])):
            ratings[dim], ranks[dim] = level, rank
    return content, ratings


def _key_pattern(names: tuple[str, ...]) -> str:
    return "|".join(re.escape(n).replace("_", r"[\s_\-]") for n in names)


# key, optional "quality|level|..." word, closing quote/markdown, then ":", "=", "is", "are"
# and one word. Bare "quality" is left out here: it would catch "colour quality: good".
_TOLERANT = {
    dim: re.compile(
        r"(?<![a-z])(?P<key>" + _key_pattern(tuple(n for n in names if n != "quality")) + ")"
        r"(?![a-z])(?:[\s_\-]+(?:quality|level|rating|score))?"
        r"(?:\s+of\s+(?:this|the)\s+(?:region|image|picture))?"
        r"[\"'`*_\s]{0,4}(?::|=|\bis\b|\bare\b)[\"'`*_\s]{0,4}"
        r"(?P<value>[a-z]{1,12})(?![a-z/\-])",
        re.IGNORECASE,
    )
    for dim, names in KEY_SYNONYMS.items()
}
_CONTENT_RE = re.compile(
    r"(?<![a-z])(?:content|description|caption)[\"'`*_\s]{0,4}[:=][`*_\s]{0,4}"
    r"(?:\"(?P<quoted>(?:[^\"\\\n]|\\.){1,LIMIT})\"|(?P<bare>[^\n\",}{]{1,LIMIT}))".replace(
        "LIMIT", str(MAX_CONTENT)
    ),
    re.IGNORECASE,
)


def _tolerant_rating(dim: str, text: str) -> int | None:
    """The first level word after a key of ``dim``; own-name hits before synonyms."""
    best: tuple[int, int] | None = None  # (rank, position)
    value = None
    for match in _TOLERANT[dim].finditer(text):
        level = level_value(match.group("value"), allow_int=False)
        found = _dimension_of(match.group("key"))
        if level is None or found is None:
            continue
        if best is None or (found[1], match.start()) < best:
            best, value = (found[1], match.start()), level
        if found[1] == 0:
            break
    return value


def _tolerant_content(text: str) -> str | None:
    match = _CONTENT_RE.search(text)
    if match is None:
        return None
    quoted = match.group("quoted")
    if quoted is not None:
        try:
            return json.loads(f'"{quoted}"')
        except ValueError:
            return quoted
    return match.group("bare").strip() or None


def parse_answer(text: Any) -> Parsed:
    """``Parsed(content, ratings, parse_ok)`` of one model answer (never raises)."""
    if not isinstance(text, str):
        return Parsed(None, dict.fromkeys(DIMENSIONS), False)
    text = text[:MAX_SCAN]
    obj = _first_object(text)
    content, ratings = _strict(obj) if obj is not None else (None, dict.fromkeys(DIMENSIONS))
    parse_ok = obj is not None and all(v is not None for v in ratings.values())
    if not parse_ok:
        for dim in DIMENSIONS:
            if ratings[dim] is None:
                ratings[dim] = _tolerant_rating(dim, text)
        if content is None:
            content = _tolerant_content(text)
    if content is not None:
        content = clean_text(content.strip(), MAX_CONTENT) or None
    return Parsed(content, ratings, parse_ok)

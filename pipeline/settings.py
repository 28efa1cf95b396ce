"""Typed settings: one frozen dataclass per preset section, holding every default.

Each stage (``regions``, ``frames``, ...) and each trainer (``rsa``, ``scma``) declares a
:class:`Settings` subclass. A preset only overrides its fields and ``--set`` accepts
exactly them, so a default that lives in the class is part of the resolved configuration
and therefore of the cache fingerprint (a changed default never reuses an old cache).
:meth:`Settings.validate` checks ranges; every bad value is a usage error
(:class:`~qfeat.errors.OptionError`, exit 2) whose message names the ``--set`` to fix it.

Field types come from the defaults: ``bool``, ``int``, ``float`` (an integer is accepted)
or ``str`` (any text, e.g. a numeric-looking path).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from qfeat.errors import OptionError


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of every section's settings. Subclasses are frozen dataclasses whose fields
    all have defaults, and override :meth:`validate`."""

    section: ClassVar[str]

    def validate(self) -> None:
        """Raise OptionError for a value out of range (types are checked on build)."""

    # -- building ------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def build(cls, values: Mapping[str, Any], source: str = "the preset") -> Self:
        """Defaults overridden by ``values`` (from a preset or ``--set``), type-checked and
        validated. An unknown key names the close matches and where it came from."""
        known = cls.field_names()
        defaults = cls()
        typed: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise OptionError(f"{source}: {cls.section} has no setting '{key}'{hint}")
            typed[key] = coerce(f"{cls.section}.{key}", value, getattr(defaults, key))
        settings = dataclasses.replace(defaults, **typed)
        settings.validate()
        return settings

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- checks for validate() -----------------------------------------------------------
    def _fail(self, key: str, want: str, example: Any) -> OptionError:
        return OptionError(
            f"{self.section}.{key} = {getattr(self, key)!r} is invalid: it must be {want} "
            f"(e.g. --set {self.section}.{key}={example})"
        )

    def at_least(self, minimum: float, *keys: str) -> None:
        for key in keys:
            if getattr(self, key) < minimum:
                raise self._fail(key, f">= {minimum}", getattr(type(self)(), key))

    def in_range(self, low: float, high: float, *keys: str, closed: bool = True) -> None:
        for key in keys:
            value = getattr(self, key)
            if not (low <= value <= high if closed else low <= value < high):
                interval = f"[{low}, {high}]" if closed else f"[{low}, {high})"
                raise self._fail(key, f"a number in {interval}", getattr(type(self)(), key))

    def one_of(self, key: str, choices: Iterable[str]) -> None:
        choices = tuple(choices)
        if getattr(self, key) not in choices:
            raise self._fail(key, f"one of {', '.join(choices)}", choices[0])


def coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``, or OptionError naming what was expected."""
    kind = type(default)
    if kind is str:
        return value if isinstance(value, str) else str(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        example = str(default).lower() if kind is bool else default
        raise OptionError(
            f"{key}: expected {_KIND_NAMES[kind]} like {example}, got {value!r} "
            f"(e.g. --set {key}={example})"
        )
    return value


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number"}


def settings_fields(classes: Iterable[type[Settings]]) -> list[str]:
    """Every ``section.field`` the given classes accept (for did-you-mean hints)."""
    return [f"{cls.section}.{name}" for cls in classes for name in cls.field_names()]


__all__ = ["Settings", "coerce", "settings_fields"]

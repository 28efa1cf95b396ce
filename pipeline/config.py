"""Presets (TOML files of models and parameters per stage) and ``--set`` overrides.

A preset is chosen by name (``tiny``, ``paper``: files in ``pipeline/presets/``) or by a
path to a TOML file with the same keys. ``--set key.path=value`` replaces one field and
the value is read as a TOML literal (``8``, ``0.5``, ``true``, ``"text"``), bare words
as strings. Sections with typed settings (:mod:`qfeat.pipeline.settings`: every stage
and trainer) accept exactly their fields, from the preset and from ``--set``, and come
back with every default filled in; other keys must exist in the preset. Typos fail
loudly instead of being ignored.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qfeat.errors import OptionError
from qfeat.pipeline.settings import Settings, coerce, settings_fields

PRESET_DIR = Path(__file__).parent / "presets"
DEMO_DATASETS = ("demo", "demo-video")


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def default_preset(dataset: str) -> str:
    """``tiny`` for the built-in demo sets, ``paper`` for everything else."""
    return "tiny" if dataset in DEMO_DATASETS else "paper"


def load_preset(name_or_file: str) -> dict[str, Any]:
    path = Path(name_or_file)
    if not (path.suffix == ".toml" and path.is_file()):
        path = PRESET_DIR / f"{name_or_file}.toml"
    if not path.is_file():
        raise OptionError(
            f"unknown preset '{name_or_file}': use one of {', '.join(list_presets())} "
            "or a path to a .toml file"
        )
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise OptionError(f"preset file {path} is not valid TOML: {exc}") from exc


INHERITS = "inherits"  # top-level preset key: `inherits = "defaults"`


def require_sections(preset: str, needed: Iterable[str]) -> None:
    """Refuse a preset that leaves out a section a command needs (``[clip]`` for the
    clip stage, ``[scma]`` to train SCMA) unless it says which defaults it inherits:
    ``inherits = "defaults"`` at its top takes qfeat's defaults (the typed settings
    classes, docs/settings.md) for every section it leaves out. Without it, a missing
    section is an error naming it, never the paper values taken silently."""
    data = load_preset(preset)
    inherits = data.get(INHERITS)
    if inherits not in (None, "defaults"):
        raise OptionError(f'preset {preset}: `inherits` must be "defaults", not {inherits!r}')
    missing = [name for name in needed if name not in data]
    if missing and inherits is None:
        names = ", ".join(f"[{name}]" for name in missing)
        raise OptionError(
            f"preset {preset} has no {names} section; add it, or put "
            '`inherits = "defaults"` at its top to take qfeat\'s defaults (docs/settings.md) '
            "for every section it leaves out"
        )


def parse_value(text: str) -> Any:
    """A TOML literal, or the text itself when it is not one (``resnet50`` -> str)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _flat_keys(cfg: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        keys.extend(_flat_keys(v, full + ".") if isinstance(v, dict) else [full])
    return keys


def apply_overrides(
    cfg: dict[str, Any],
    sets: list[str],
    sections: Mapping[str, type[Settings]] | None = None,
) -> dict[str, Any]:
    """Return a copy of ``cfg`` with each ``key.path=value`` of ``sets`` applied.

    Each section named in ``sections`` is rebuilt as its typed settings (preset values,
    then ``--set`` values, over the class's defaults) and returned as a plain dict with
    every field; a preset may leave such a section out entirely."""
    typed = dict(sections or {})
    out = copy.deepcopy(cfg)
    values = {name: dict(out.get(name) or {}) for name in typed}
    for item in sets:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise OptionError(f"--set expects key.path=value, got '{item}'")
        section, _, field = key.partition(".")
        if section in typed:
            if field not in typed[section].field_names():
                raise _unknown(key, cfg, typed)
            default = getattr(typed[section](), field)
            values[section][field] = raw if isinstance(default, str) else parse_value(raw)
            continue
        _set_untyped(out, key, raw, cfg, typed)
    for name, cls in typed.items():
        out[name] = cls.build(values[name]).as_dict()
    return out


def _unknown(key: str, cfg: dict[str, Any], typed: Mapping[str, type[Settings]]) -> OptionError:
    known = settings_fields(typed.values()) + [
        k for k in _flat_keys(cfg) if k.split(".")[0] not in typed
    ]
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return OptionError(f"--set: there is no setting '{key}'{hint}")


def _set_untyped(
    out: dict[str, Any], key: str, raw: str, cfg: dict[str, Any], typed: Mapping
) -> None:
    *parents, leaf = key.split(".")
    node = out
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node or isinstance(node[leaf], dict):
        raise _unknown(key, cfg, typed)
    old = node[leaf]
    # text stays as typed (e.g. a numeric-looking path or model name)
    node[leaf] = coerce(key, raw if isinstance(old, str) else parse_value(raw), old)


def resolve_config(
    preset: str,
    sets: list[str] | None = None,
    sections: Mapping[str, type[Settings]] | None = None,
) -> dict[str, Any]:
    """The fully resolved configuration: preset values plus overrides over the typed
    defaults of ``sections``, and its source."""
    cfg = apply_overrides(load_preset(preset), list(sets or []), sections)
    cfg["preset"] = preset
    return cfg


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` pairs to a dict (later pairs win)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--option expects KEY=VALUE, got '{pair}'")
        out[key.strip()] = value.strip()
    return out

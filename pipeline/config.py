"""Presets (TOML files of models and parameters per stage) and ``--set`` overrides.

A preset is chosen by name (``tiny``, ``paper``: files in ``pipeline/presets/``) or by a
path to a TOML file with the same keys. ``--set key.path=value`` replaces one field; the
key must exist in the preset (typos fail loudly instead of being ignored) and the value
is read as a TOML literal (``8``, ``0.5``, ``true``, ``"text"``), bare words as strings.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from pathlib import Path
from typing import Any

from qfeat.pipeline.datasets.base import OptionError

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


def apply_overrides(cfg: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Return a copy of ``cfg`` with each ``key.path=value`` of ``sets`` applied."""
    out = copy.deepcopy(cfg)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OptionError(f"--set expects key.path=value, got '{item}'")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node or isinstance(node[leaf], dict):
            close = difflib.get_close_matches(key, _flat_keys(cfg), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise OptionError(f"--set: the preset has no field '{key}'{hint}")
        value, old = parse_value(raw.strip()), node[leaf]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(old, str) and not isinstance(value, str):
            value = raw.strip()  # e.g. a numeric-looking path or model name
        if type(value) is not type(old):
            raise OptionError(
                f"--set {key}: expected a {type(old).__name__} like {old!r}, got {raw.strip()!r}"
            )
        node[leaf] = value
    return out


def resolve_config(preset: str, sets: list[str] | None = None) -> dict[str, Any]:
    """The fully resolved configuration: preset defaults plus overrides, and its source."""
    cfg = apply_overrides(load_preset(preset), list(sets or []))
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

"""Where data, cached features and training runs live.

Each location has an environment variable and a default relative to the current
working directory (so running from a checkout keeps everything beside it):

================  ===================  ===========================================
variable          default              holds
================  ===================  ===========================================
QFEAT_DATA_ROOT   ``./data``           datasets, one folder per name (``<root>/koniq``)
QFEAT_CACHE_DIR   ``./qfeat-cache``    cached features ``<cache>/<dataset>/<stage>/...``
QFEAT_RUNS_DIR    ``./runs``           training runs ``<runs>/<run>/``
================  ===================  ===========================================

Command-line options (``--root``, ``--cache-dir``, ``--runs-dir``) override them. Every
location is returned absolute (relative ones are taken from the current directory), so
messages, run folders and manifests name places that mean the same from any folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "QFEAT_DATA_ROOT": "data",
    "QFEAT_CACHE_DIR": "qfeat-cache",
    "QFEAT_RUNS_DIR": "runs",
}


def _from_env(var: str, override: str | os.PathLike | None) -> Path:
    if override is not None:
        return Path(override).expanduser().absolute()
    value = os.environ.get(var) or DEFAULTS[var]
    return Path(value).expanduser().absolute()


def data_root(override: str | os.PathLike | None = None) -> Path:
    return _from_env("QFEAT_DATA_ROOT", override)


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    return _from_env("QFEAT_CACHE_DIR", override)


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    return _from_env("QFEAT_RUNS_DIR", override)


def dataset_root(name: str, override: str | os.PathLike | None = None) -> Path:
    """A dataset's root: ``--root`` if given, else ``$QFEAT_DATA_ROOT/<name>``."""
    if override is not None:
        return Path(override).expanduser().absolute()
    return data_root() / name

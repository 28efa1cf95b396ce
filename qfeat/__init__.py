"""qfeat: compute IQA/VQA features once into a cache, then train small quality heads on it.

The public Python API (imported lazily, so ``import qfeat`` stays cheap):

- :func:`open_stage` / :func:`join_stages` / :func:`list_stages`: read cached stages
  (``qfeat.cache.reader``);
- :func:`load_run`: a trained run that scores new image or video files
  (``qfeat.trainers.predict``);
- :func:`open_dataset` / :func:`get_adapter`: the dataset adapters
  (``qfeat.pipeline.datasets``);
- :class:`DatasetError`: what every user-facing problem raises.

In a source checkout the four packages ``pipeline/``, ``cache/``, ``trainers/`` and
``cli/`` sit at the repository's top level (the project's layout); installed, they are
``qfeat.pipeline``, ``qfeat.cache``, ``qfeat.trainers`` and ``qfeat.cli`` (pyproject's
``package-dir`` mapping), so they never collide with a user's own packages.
"""

from __future__ import annotations

from importlib import import_module, metadata

try:
    __version__ = metadata.version("qfeat")
except metadata.PackageNotFoundError:  # pragma: no cover - only in an uninstalled copy
    __version__ = "0+unknown"

# public name -> module that defines it
_API = {
    "open_stage": "qfeat.cache.reader",
    "join_stages": "qfeat.cache.reader",
    "list_stages": "qfeat.cache.reader",
    "load_run": "qfeat.trainers.predict",
    "get_adapter": "qfeat.pipeline.datasets",
    "open_dataset": "qfeat.pipeline.datasets",
    "DatasetError": "qfeat.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'qfeat' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

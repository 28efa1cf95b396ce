"""One up-front check of every input a command takes, before any cluster starts or model
loads (``features``, ``stage``, ``weights``, ``train``, ``evaluate``, ``predict``).

Inputs are checked in the order a run reads them — the dataset (root, metadata, media
folders), the weights each chosen stage needs (opened the way its stage opens it and
compared with the architecture built on the meta device; hub ids without network
retries), then each stage's own checks, then the output folders — and every problem is
collected, one line each naming the setting, the file and the fix. :meth:`Checks.raise_any`
raises the one problem itself, or :class:`~qfeat.errors.Problems` for several (exit 2 when
one is a usage error, else 1).

The per-stage weights facts come from :mod:`qfeat.pipeline.models.weights_table`
(``needs`` and ``check``); this module only turns their answers into problems.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qfeat.errors import DatasetError, OptionError, Problems, QfeatError

HUB_PROBE_SECONDS = 3.0  # one request, no retries: a machine without network answers fast
OFFLINE_HINT = (
    "set HF_HUB_OFFLINE=1 to use only the local Hugging Face cache, or pass --set "
    "describe.model=/path/to/local/model_folder"
)


class Checks:
    """The problems found so far, in the order they were found."""

    def __init__(self) -> None:
        self.errors: list[QfeatError] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Record a QfeatError raised inside instead of stopping at it."""
        try:
            yield
        except Problems as exc:
            self.errors.extend(exc.errors)
        except QfeatError as exc:
            self.errors.append(exc)

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise Problems(self.errors)


# --- names --------------------------------------------------------------------------
def unknown_name(kind: str, name: str, known: list[str] | tuple[str, ...]) -> OptionError:
    """``unknown stage 'backbon'; did you mean backbone? (stages: ...)`` (exit 2)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return OptionError(f"unknown {kind} '{name}'{hint} ({kind}s: {', '.join(known)})")


def choose_stages(requested: list[str] | None, modality: str | None = None) -> list[str]:
    """The stages to run, in dependency order: ``requested`` (every stage of ``modality``
    when None). An unknown name is an OptionError with a suggestion; a stage of the other
    modality says which ones apply. ``modality`` None: any modality."""
    from qfeat.pipeline.stages import MODALITIES, run_order

    every = [s for m in MODALITIES for s in run_order(m)]
    order = list(run_order(modality)) if modality else every
    if not requested:
        return order
    for name in requested:
        if name not in every:
            raise unknown_name("stage", name, order)
    other = [s for s in requested if s not in order]
    if other:
        raise OptionError(
            f"stage(s) {', '.join(other)} do not apply to {modality} datasets "
            f"(stages: {', '.join(order)})"
        )
    return [s for s in order if s in requested]


# --- the dataset --------------------------------------------------------------------
def check_dataset(adapter, limit: int | None = None) -> None:
    """The root exists, the metadata reads, and the media folders of the items a run
    takes (the first ``limit``) exist: a KonIQ root without ``1024x768/`` is refused here
    instead of becoming an error row per item."""
    from qfeat.pipeline.datasets.check import missing_media_folders

    if adapter.data_version is not None:  # a generated set: made once the checks pass
        return
    adapter.prepare()
    items = adapter.listing().items
    items = items[:limit] if limit else items
    missing = missing_media_folders(adapter.root, [it.item_id for it in items])
    if items and all(any(it.item_id.startswith(f"{m}/") for m in missing) for it in items):
        where = ", ".join(f"{m}/" for m in missing[:3])
        raise DatasetError(
            f"{adapter.name}: the {adapter.modality}s folder {where} does not exist in "
            f"{adapter.root}; unpack the {adapter.modality}s there or pass --root DIR "
            f"(expected layout: {adapter.layout})"
        )


# --- weights ------------------------------------------------------------------------
def check_weights(checks: Checks, cfg: dict[str, Any], stages: list[str]) -> set[str]:
    """Each weights file or folder ``stages`` need, checked (see :func:`check_need`);
    problems go to ``checks``. Returns the stages with a weights problem (their own
    :meth:`Stage.check` would only say it again)."""
    from qfeat.pipeline.models.weights_table import needs

    bad = set()
    for need in needs(cfg, stages):
        stage = need.setting.split(".")[0]
        bad.add(stage)  # until its check has passed
        with checks.collect():
            problem = need_problem(check_need(need, cfg))
            if problem is not None:
                raise problem
            bad.discard(stage)
    return bad


def check_need(need, cfg: dict[str, Any]):
    """:func:`weights_table.check`, which raises only OptionError here (a file no loader
    can read is ``wrong``), and a hub id probed once, without retries (``unreachable`` when neither
    the network nor the local cache can give it)."""
    from qfeat.pipeline.models.weights_table import check

    try:
        _refuse_code(need)
        need = check(need, cfg)
    except OptionError:  # a usage error (e.g. a pretrained file beside a local-dir: model)
        raise
    except QfeatError as exc:
        need.status, need.message = "wrong", str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever a loader raises on a bad file
        from qfeat.pipeline.models.weights_check import unreadable_reason

        need.status = "wrong"
        need.message = f"cannot be read as weights ({unreadable_reason(exc)})"
    if need.status == "hub":
        revision = (cfg.get(need.setting.split(".")[0]) or {}).get("revision") or None
        why = hub_problem(need.given, revision)
        if why:
            need.status, need.message = "unreachable", why
    return need


def _refuse_code(need) -> None:
    """A pickle that would import or run code is refused as the stages refuse it (their
    words name the danger; reading its shapes would only say "blocked")."""
    from qfeat.pipeline.models.source import parse_source, require_plain_weights

    source = parse_source(need.given)
    if source.kind == "file":
        try:
            require_plain_weights(source.path, need.setting)
        except DatasetError as exc:
            raise DatasetError(str(exc).removeprefix(f"{need.setting}={source.path} ")) from None


# words of a message that already names its fix
FIXES = ("set ", "Use ", "get it again")


def need_problem(need) -> QfeatError | None:
    """One line for a weights setting that cannot be used, naming the fix."""
    get = f"from {need.where}"
    example = need.official.split(" ")[0]
    if need.status == "not set":
        return DatasetError(
            f"{need.setting} is not set; pass --set {need.setting}=/path/{example} ({get})"
        )
    if need.status == "missing":
        return DatasetError(
            f"{need.setting}={need.given} does not exist; pass --set "
            f"{need.setting}=/path/{example} ({get})"
        )
    if need.status == "wrong":
        kind = "folder" if "folder" in need.official else "file"
        fix = f"; give the {need.architecture} {kind} ({get})"
        fix = "" if any(w in need.message for w in FIXES) else fix
        return DatasetError(f"{need.setting}={need.given}: {need.message}{fix}")
    if need.status == "unreachable":
        return DatasetError(f"{need.setting}={need.given}: {need.message}")
    return None


def hub_problem(repo: str, revision: str | None = None) -> str | None:
    """Why hub model ``repo`` cannot be had now, or None. Offline (``HF_HUB_OFFLINE``):
    it must be in the local cache. Online: one request of at most
    :data:`HUB_PROBE_SECONDS` decides, never huggingface_hub's retry loop."""
    from qfeat.pipeline.models.vlm import hub_cached, hub_offline

    cached = hub_cached(repo, revision)
    if hub_offline():
        if cached:
            return None
        return (
            "not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading "
            f"it; download it first (huggingface-cli download {repo}), or pass --set "
            "describe.model=/path/to/local/model_folder"
        )
    if hub_reachable():
        return None
    if cached:
        return (
            f"the Hugging Face hub cannot be reached (no network?) but {repo} is in the "
            "local cache: set HF_HUB_OFFLINE=1 to use it without the hub's retries"
        )
    return f"the Hugging Face hub cannot be reached (no network?); {OFFLINE_HINT}"


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether the hub endpoint answers one HEAD request within ``timeout`` seconds (any
    HTTP answer counts; proxies from the environment are used). Name resolution is
    bounded too: the request runs in a thread that is waited for ``timeout``."""
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    answer: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout)
            answer.append(True)
        except urllib.error.HTTPError:
            answer.append(True)
        except (OSError, ValueError):
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answer and answer[0])


# --- outputs ------------------------------------------------------------------------
def check_writable(folder: Path, option: str) -> None:
    """A DatasetError unless ``folder`` (made later if missing) can be written: the
    nearest existing part of its path is a folder this process can create files in."""
    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DatasetError(
            f"{option} {folder}: {existing} is a file, not a folder; pass {option} DIR"
        )
    try:
        try_write(existing)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DatasetError(
            f"{option} {folder}: cannot write in {existing} ({reason}); pass {option} with "
            "a folder you can write to"
        ) from None


def try_write(folder: Path) -> None:
    """Create and remove one temporary file in ``folder`` (root ignores permission bits,
    a read-only mount does not: only a real write tells)."""
    with tempfile.TemporaryFile(dir=folder, prefix=".qfeat-write-check-"):
        pass

"""Which cached stages a run reads: one coherent *basis*, never a mix.

A basis is one fingerprint folder per stage a trainer needs, all from one
configuration: the same preset, dataset identity, item list, shard size and seed, and
every stage's manifest naming the chosen folders of its upstream stages (this text
cache built on this describe cache built on this regions cache). A basis is

- ``complete`` when every folder has all its shards done and covers every item of the
  dataset's ``items.parquet`` (the union of the items any run listed);
- ``partial`` when every folder is done but covers fewer items (a ``--limit`` run);
- ``incomplete`` when some shard is not done (a killed run, a deleted done marker).

:func:`select_basis` is the one entry point readers call: the set the requested preset
and ``--set`` values name (``want``), or by default the set that covers the dataset and
that the last ``qfeat features`` runs completed (every stage's ``latest.json``), else
the newest set that covers it. That set must be complete and fresh (no media file
changed since its shards were written), else the reader stops with the command that
repairs it; a partial set is read only when named with ``--basis ID``; the other
complete sets are listed with the option that picks each. Runs record the basis
(:meth:`Basis.record`) in their ``config.json`` and register it in the cache
(:mod:`qfeat.cache.holds`), so ``cache gc`` keeps what they need.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfeat.cache.fingerprint import canonical_json, media_hash, sha256_text
from qfeat.cache.items import read_items
from qfeat.cache.reader import CacheMissing, Stage, latest_fingerprint, list_stages
from qfeat.errors import DatasetError, OptionError

MAX_SETS = 4096  # combinations looked at per dataset; more would be a cache nobody can read


@dataclass(frozen=True)
class Basis:
    """One coherent set of stage folders of ``dataset`` (``stages``: name -> folder);
    ``items``: how many items the dataset's ``items.parquet`` lists."""

    dataset: str
    stages: dict[str, Stage]
    items: int

    @property
    def fingerprints(self) -> dict[str, str]:
        return {name: s.fingerprint for name, s in self.stages.items()}

    @property
    def id(self) -> str:
        """Short name of the set (``--basis ID``): a hash of its fingerprints."""
        return sha256_text(canonical_json(self.fingerprints))[:8]

    @property
    def preset(self) -> str | None:
        return next(iter(self.stages.values())).manifest.get("preset")

    @property
    def covered(self) -> int:
        """Items every folder of the set was computed for."""
        return min(int(s.manifest.get("items", 0)) for s in self.stages.values())

    @property
    def done(self) -> bool:
        return all(s.complete for s in self.stages.values())

    @property
    def state(self) -> str:
        """``complete``, ``partial`` (done, fewer items) or ``incomplete``."""
        if not self.done:
            return "incomplete"
        return "complete" if self.covered >= self.items else "partial"

    @property
    def created(self) -> str:
        return max(str(s.manifest.get("created", "")) for s in self.stages.values())

    def sets(self) -> list[str]:
        """The ``--set`` values its stages were computed with (as recorded)."""
        out: dict[str, str] = {}
        for s in self.stages.values():
            for item in s.manifest.get("sets") or []:
                out[item.partition("=")[0].strip()] = item
        return [out[k] for k in sorted(out)]

    def command(self) -> str:
        """The ``qfeat features`` command that computes (or completes) this set."""
        return features_command(next(iter(self.stages.values())).manifest, self.sets())

    def label(self) -> str:
        """``tiny, complete: backbone 841a86bed86f6590, ...`` (partial: ``8 of 48 items``)."""
        state = self.state
        if state == "partial":
            state = f"partial, {self.covered} of {self.items} items"
        fps = ", ".join(f"{n} {fp}" for n, fp in self.fingerprints.items())
        return f"{self.preset or '?'} ({state}): {fps}"

    def record(self) -> dict[str, Any]:
        """What a run's ``config.json`` records under ``basis``."""
        return {
            "id": self.id,
            "preset": self.preset,
            "state": self.state,
            "items": self.covered,
            "of": self.items,
            "fingerprints": self.fingerprints,
        }


@dataclass(frozen=True)
class Selection:
    """The chosen basis and a line naming the other sets a run could read (or None)."""

    basis: Basis
    note: str | None = None
    others: list[Basis] = field(default_factory=list)


def features_command(manifest: dict[str, Any], sets: list[str]) -> str:
    """``qfeat features NAME --preset P --set ...`` for a stage manifest's dataset."""
    data = manifest.get("dataset") or {}
    adapter, name = data.get("adapter") or data.get("name"), data.get("name")
    words = ["qfeat features", str(adapter)]
    if name and name != adapter:
        words.append(f"--name {name}")
    words += [f"--option {k}={v}" for k, v in sorted((data.get("options") or {}).items())]
    if manifest.get("preset"):
        words.append(f"--preset {manifest['preset']}")
    words += [f"--set {s}" for s in sets]
    return " ".join(words)


def _key(stage: Stage) -> str:
    """What stages of one configuration share (upstream links aside)."""
    m = stage.manifest
    return canonical_json(
        [
            m.get("preset"),
            m.get("dataset"),
            m.get("items_sha256"),
            m.get("shard_size"),
            (m.get("config") or {}).get("seed"),
        ]
    )


def _linked(chosen: dict[str, Stage]) -> bool:
    """Every stage's manifest names the chosen folder of each upstream stage in the set."""
    for stage in chosen.values():
        for up, fingerprint in (stage.manifest.get("upstream") or {}).items():
            if up in chosen and chosen[up].fingerprint != fingerprint:
                return False
    return True


def coherent_sets(cache_dir: Path, dataset: str, needed: list[str]) -> list[Basis]:
    """Every coherent set of ``needed`` stages cached for ``dataset``, newest first."""
    items = len(read_items(cache_dir, dataset))
    groups: dict[str, dict[str, list[Stage]]] = {}
    for name in needed:
        for stage in list_stages(cache_dir, dataset, name):
            groups.setdefault(_key(stage), {}).setdefault(name, []).append(stage)
    out: list[Basis] = []
    for by_stage in groups.values():
        if set(by_stage) != set(needed):
            continue
        combos = itertools.islice(itertools.product(*(by_stage[n] for n in needed)), MAX_SETS)
        for combo in combos:
            chosen = dict(zip(needed, combo, strict=True))
            if _linked(chosen):
                out.append(Basis(dataset, chosen, items))
    return sorted(out, key=lambda b: (b.created, b.id), reverse=True)


Want = Callable[[Basis], bool]


def select_basis(
    cache_dir: Path,
    dataset: str,
    needed: list[str],
    *,
    want: Want | None = None,
    wanted: str = "",
    basis_id: str | None = None,
    trainer: str = "the trainer",
    fits: Want | None = None,
    unfit: str = "",
) -> Selection:
    """The basis a run of ``trainer`` on ``dataset`` reads (see the module docstring).

    ``want``: which sets the requested preset and ``--set`` values name (``wanted``
    says them in words, for messages); ``fits``: which sets the trainer can read at all
    (``unfit``: the message when cached sets exist but none fits); ``basis_id``: one
    set picked by its id (or a fingerprint of one of its stages), partial ones included. Raises
    :class:`CacheMissing` (nothing fits: which stages are missing, or which set is
    incomplete or stale, and the command that repairs it).
    """
    sets = coherent_sets(cache_dir, dataset, needed)
    if not sets:
        raise _nothing_cached(cache_dir, dataset, needed, trainer)
    if fits is not None:
        sets = [b for b in sets if fits(b)]
        if not sets:
            raise CacheMissing(unfit)
    if basis_id is not None:
        chosen = _by_id(sets, basis_id, dataset)
        _require_usable(chosen)
        return Selection(chosen)
    pool = [b for b in sets if want(b)] if want else sets
    if not pool:
        listed = "; ".join(f"{b.id} = {b.label()}" for b in sets[:5])
        raise CacheMissing(
            f"no cached set of {dataset}'s {', '.join(needed)} stages was made with {wanted} "
            f"(cached: {listed}); compute it with `qfeat features {dataset} {wanted}`, or "
            "leave those options out to read the newest complete set"
        )
    full = [b for b in pool if b.covered >= b.items]
    if not full:
        best = pool[0]
        raise CacheMissing(
            f"{dataset}'s cached {', '.join(needed)} sets are all partial (the newest: "
            f"{best.label()}); fill it with `{best.command()}` (no --limit), or train on it "
            f"as it is with --basis {best.id}"
        )
    last = [b for b in full if _run_last(cache_dir, b)]
    chosen = (last or full)[0]
    others = [b for b in pool if b is not chosen and b.state == "complete"]
    if chosen.state != "complete":
        older = f"; or read the older complete set with --basis {others[0].id}" if others else ""
        raise CacheMissing(f"{incomplete_reason(chosen)}{older}")
    _require_usable(chosen)
    note = None
    if others:
        listed = "; ".join(f"--basis {b.id} for {b.label()}" for b in others[:4])
        note = f"{dataset} has {len(others) + 1} complete sets of cached stages: read {listed}"
    return Selection(chosen, note, others)


def _run_last(cache_dir: Path, basis: Basis) -> bool:
    """Whether every stage of ``basis`` is the one its last completed ``qfeat features``
    run computed (``latest.json``): running a configuration again makes it the default."""
    return all(
        latest_fingerprint(cache_dir, basis.dataset, name) == fp
        for name, fp in basis.fingerprints.items()
    )


def _by_id(sets: list[Basis], basis_id: str, dataset: str) -> Basis:
    found = [b for b in sets if b.id == basis_id] or [
        b for b in sets if basis_id in b.fingerprints.values()
    ]
    if not found:
        listed = "; ".join(f"{b.id} = {b.label()}" for b in sets[:6])
        raise OptionError(f"--basis {basis_id}: no such set of {dataset}'s cache ({listed})")
    return found[0]


def incomplete_reason(basis: Basis) -> str:
    """One line: which stage of the set lacks which shards, and the repair command."""
    parts = []
    for name, s in basis.stages.items():
        if not s.complete:
            missing = [i for i in range(s.shards_total) if i not in s.markers]
            shown = ", ".join(f"{i:05d}" for i in missing[:5])
            parts.append(f"{name} {s.fingerprint} lacks shard(s) {shown} of {s.shards_total}")
    return (
        f"the newest set of {basis.dataset}'s cached stages ({basis.preset}) is incomplete: "
        f"{'; '.join(parts)}; complete it with `{basis.command()}` (its finished shards are "
        "kept)"
    )


def _require_usable(basis: Basis) -> None:
    """Refuse an incomplete, damaged or stale basis, naming the command that repairs it."""
    if not basis.done:
        raise CacheMissing(incomplete_reason(basis))
    for stage in basis.stages.values():
        stage.require_intact()
    paths = _item_paths(Path(next(iter(basis.stages.values())).dir).parent.parent)
    for name, stage in basis.stages.items():
        stale = stale_shards(stage, paths)
        if stale:
            raise CacheMissing(
                f"{basis.dataset}/{name}/{stage.fingerprint}: shard(s) "
                f"{', '.join(f'{i:05d}' for i in stale[:5])} are stale (a media file changed "
                f"since they were written); recompute them with `{basis.command()}`"
            )


def _item_paths(dataset_dir: Path) -> dict[str, str]:
    import pyarrow.parquet as pq

    from qfeat.cache.layout import ITEMS

    table = pq.read_table(dataset_dir / ITEMS, columns=["item_id", "path"]).to_pydict()
    return dict(zip(table["item_id"], table["path"], strict=True))


def stale_shards(stage: Stage, paths: dict[str, str]) -> list[int]:
    """Done shards of ``stage`` whose media files changed (size or mtime) since their
    marker recorded them (shards written before media hashes are taken as they are)."""
    import pyarrow.parquet as pq

    from qfeat.cache.layout import shard_name

    stale = []
    for index, marker in sorted(stage.markers.items()):
        recorded = marker.get("media_sha256")
        if not recorded:
            continue
        ids = pq.read_table(stage.dir / shard_name(index, "parquet"), columns=["item_id"])
        ids = ids.column("item_id").to_pylist()
        if ids and all(i in paths for i in ids) and media_hash(paths[i] for i in ids) != recorded:
            stale.append(index)
    return stale


def _nothing_cached(cache_dir: Path, dataset: str, needed: list[str], trainer: str) -> CacheMissing:
    missing = [n for n in needed if not list_stages(cache_dir, dataset, n)]
    if missing:
        names = ", ".join(f"'{n}'" for n in missing)
        plural = len(missing) > 1
        return CacheMissing(
            f"{trainer} needs the {names} stage{'s' * plural} of {dataset}, not cached yet; "
            f"make {'them' if plural else 'it'} with `qfeat features {dataset}` (or "
            f"`qfeat stage {missing[0]} {dataset}`)"
        )
    return CacheMissing(
        f"{dataset}'s cached {', '.join(needed)} stages do not belong together (made with "
        f"other presets, item lists or upstream caches); make one set with `qfeat features "
        f"{dataset}` (add the --preset and --set values you want)"
    )


def shortfall(basis: Basis, ok: dict[str, int], least: int) -> DatasetError:
    """ "Too few usable rows": the stage (and fingerprint) with the fewest ok rows
    (``ok``: stage -> items with an ok row), and the commands that fill it."""
    name = min(ok, key=lambda n: ok[n])
    stage = basis.stages[name]
    return DatasetError(
        f"only {ok[name]} of {basis.items} items of {basis.dataset} have an ok {name} "
        f"row in {name} {stage.fingerprint} (at least {least} are needed to train): see why "
        f"with `qfeat cache errors {basis.dataset} {name} --fingerprint {stage.fingerprint}`, "
        f"retry them with `{basis.command()} --retry-failed`"
    )


def stage_sets(sets: list[str] | None, stage_names: set[str]) -> list[str]:
    """The ``--set`` values that name a stage's setting (``backbone.weights=...``)."""
    return [s for s in sets or [] if s.partition("=")[0].strip().split(".")[0] in stage_names]


def same_configs(
    configs: dict[str, dict[str, Any]], constants: dict[str, dict[str, Any]] | None = None
) -> Want:
    """A ``want`` for :func:`select_basis`: sets whose stages were computed with exactly
    ``configs`` (stage -> resolved config, as a manifest records it; stages not named
    aside), e.g. :func:`qfeat.pipeline.resolution.resolve_stage_configs` of a preset,
    and, when given, with this qfeat's ``constants`` (stage -> ``Stage.constants()``)."""
    expected = {name: canonical_json(c) for name, c in configs.items()}
    fixed = {name: canonical_json(c) for name, c in (constants or {}).items()}

    def same(stage: Stage, name: str) -> bool:
        m = stage.manifest
        if canonical_json(m.get("config")) != expected[name]:
            return False
        return name not in fixed or canonical_json(m.get("constants") or {}) == fixed[name]

    def want(basis: Basis) -> bool:
        return all(same(stage, name) for name, stage in basis.stages.items() if name in expected)

    return want

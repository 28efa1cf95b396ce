"""Runs side by side: ``qfeat runs`` (what is under the runs dir) and ``qfeat table``
(within-dataset results of several runs, with a paired test against the first).

The paired test is the Wilcoxon signed-rank test (scipy, two-sided, exact for small
samples) on the per-split test SRCC of two runs trained on the same splits: the same
dataset, seed and split count, and every split testing the same items (checked from
``predictions.csv``, not assumed from the settings).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qfeat.errors import DatasetError
from qfeat.trainers.runfolder import CONFIG, RESUME, RunFolder

FORMATS = ("md", "csv", "latex", "json")


@dataclass(frozen=True)
class RunLine:
    """One line of ``qfeat runs``."""

    name: str
    trainer: str
    dataset: str
    preset: str
    srcc: float | None
    plcc: float | None
    splits: str  # "10" or "9 of 10 valid", or "3 of 10 done" while unfinished
    date: str
    state: str  # finished | resumable
    basis: str = "basis not recorded"  # the cached set it read: complete | partial (issue 37)


def basis_text(basis: dict | None) -> str:
    """A run's basis in words: ``complete``, ``partial: 2 of 84 items``, or (runs from
    before bases were recorded) ``basis not recorded``: what `runs` and `table` show, so
    a partial run never passes for a full one."""
    if not isinstance(basis, dict) or not basis.get("state"):
        return "basis not recorded"
    if basis["state"] == "partial":
        return f"partial: {basis.get('items')} of {basis.get('of')} items"
    return str(basis["state"])


def list_runs(runs_dir: Path) -> list[RunLine]:
    """Every run folder under ``runs_dir`` (finished, or started and resumable), newest
    first."""
    lines = []
    for folder in sorted(Path(runs_dir).glob("*")):
        run = RunFolder(folder)
        if (folder / "metrics.json").is_file() and (folder / CONFIG).is_file():
            config, metrics = run.config, run.metrics
            test = metrics.get("test", {})
            total = len({s.get("split") for s in metrics.get("splits", [])})
            valid = metrics.get("valid_splits", total)
            lines.append(RunLine(
                folder.name, config.trainer, config.dataset, config.preset or "?",
                test.get("srcc"), test.get("plcc"),
                str(total) if valid == total else f"{valid} of {total} valid",
                _date(folder / "metrics.json"), "finished", basis_text(config.basis),
            ))  # fmt: skip
        elif (spec := run.started()) is not None:
            done = len(run.checkpoints())
            lines.append(RunLine(
                folder.name, str(spec.get("trainer", "?")), str(spec.get("dataset", "?")),
                str(spec.get("preset") or "?"), None, None,
                f"{done} of {spec.get('splits', '?')} done", _date(folder / RESUME),
                "resumable", basis_text(spec.get("basis")),
            ))  # fmt: skip
    return sorted(lines, key=lambda line: line.date, reverse=True)


def _date(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))


# ----------------------------------------------------------------------------- table


@dataclass(frozen=True)
class TableRow:
    run: str
    trainer: str
    dataset: str
    variant: str  # the trainer's variant hook: attention / ablations (rsa), mode (scma)
    basis: str  # preset and complete | partial: N of M items (basis_text)
    splits: int
    valid_splits: int
    srcc_mean: float | None
    srcc_std: float | None
    srcc_median: float | None
    plcc_mean: float | None
    plcc_std: float | None
    plcc_median: float | None
    p_value: float | None  # Wilcoxon signed-rank on per-split SRCC vs the first run
    paired_with: str | None
    cross: dict[str, float | None] | None = None  # --on: dataset -> mean SRCC over splits


def _variant(run: RunFolder) -> str:
    from qfeat.trainers.registry import get_trainer

    return get_trainer(run.config.trainer, run.path).hook("variant")(run.config)


def _per_split(run: RunFolder, key: str) -> dict[int, float]:
    """Split index -> metric of the main test set (NaN splits left out)."""
    main = "test" if any(s.get("test_set") == "test" for s in run.metrics["splits"]) else None
    out = {}
    for s in run.metrics["splits"]:
        if (main is None or s.get("test_set") == main) and s.get(key) is not None:
            out[int(s["split"])] = float(s[key])
    return out


def _test_items(run: RunFolder) -> dict[str, frozenset[str]]:
    frame = run.predictions
    return {name: frozenset(group["item_id"]) for name, group in frame.groupby("split")}


def same_splits(a: RunFolder, b: RunFolder) -> bool:
    """Trained on the same splits: dataset, seed and split count agree and every split
    tests the same items."""
    ca, cb = a.config, b.config
    if (ca.dataset, ca.seed, ca.splits) != (cb.dataset, cb.seed, cb.splits):
        return False
    return _test_items(a) == _test_items(b)


def wilcoxon_p(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value on the splits both runs have, or None
    (fewer than 2 common splits, or no difference at all)."""
    from scipy import stats

    common = sorted(set(a) & set(b))
    diffs = np.array([a[i] - b[i] for i in common])
    if len(common) < 2 or not np.any(diffs):
        return None
    return float(stats.wilcoxon(diffs).pvalue)


def _stat(values: list[float], fn) -> float | None:
    return float(fn(values)) if values else None


def build_table(runs: list[RunFolder]) -> list[TableRow]:
    """One row per run; rows after the first get a p-value when paired with it."""
    if not runs:
        raise DatasetError("give at least one run")
    for run in runs:
        run.complete()
    first_srcc = _per_split(runs[0], "srcc")
    rows = []
    for index, run in enumerate(runs):
        srcc, plcc = _per_split(run, "srcc"), _per_split(run, "plcc")
        total = len({s.get("split") for s in run.metrics["splits"]})
        paired = index > 0 and same_splits(runs[0], run)
        s_vals, p_vals = list(srcc.values()), list(plcc.values())
        rows.append(TableRow(
            run.name, run.config.trainer, run.config.dataset, _variant(run),
            f"{run.config.preset or '?'}, {basis_text(run.config.basis)}", total, len(srcc),
            _stat(s_vals, np.mean), _stat(s_vals, np.std), _stat(s_vals, np.median),
            _stat(p_vals, np.mean), _stat(p_vals, np.std), _stat(p_vals, np.median),
            wilcoxon_p(first_srcc, srcc) if paired else None,
            runs[0].name if paired else None,
        ))  # fmt: skip
    return rows


def cross_dataset(
    runs: list[RunFolder],
    datasets: list[str],
    cache_dir: Path,
    device: str = "cpu",
    reasons: dict[tuple[str, str], str] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Run name -> {dataset: mean test SRCC of its checkpoints on that dataset's cache},
    through ``qfeat evaluate`` (its ``eval-<dataset>.json`` reused when present). A
    dataset the run cannot be evaluated on (another modality, another frozen model) is
    None, and ``reasons`` (when given) gets why, by ``(run, dataset)``."""
    from qfeat.trainers.evaluate import evaluate_run

    out: dict[str, dict[str, float | None]] = {}
    for run in runs:
        row: dict[str, float | None] = {}
        for dataset in datasets:
            path = run.eval_path(dataset)
            try:
                result = (
                    json.loads(path.read_text())
                    if path.is_file()
                    else evaluate_run(run, dataset, cache_dir, device)
                )
                row[dataset] = (result.get("test") or {}).get("srcc")
            except DatasetError as exc:
                row[dataset] = None
                if reasons is not None:
                    reasons[(run.name, dataset)] = str(exc)
        out[run.name] = row
    return out


def plot_matrix(rows: list[TableRow], path: Path) -> Path:
    """A heat map of the cross-dataset SRCC (runs x datasets), values written in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(rows[0].cross or {})
    values = np.array(
        [[np.nan if (r.cross or {}).get(d) is None else r.cross[d] for d in datasets] for r in rows]
    )
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(datasets), 1.0 + 0.5 * len(rows)), dpi=120)
    image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [r.run for r in rows])
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, "–" if np.isnan(value) else f"{value:.3f}", ha="center", va="center",
                color="white" if np.isnan(value) or value < 0.6 else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label="test SRCC")
    ax.set_title("trained on the run's dataset, tested on each column's")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pm(mean: float | None, std: float | None) -> str:
    return f"{_num(mean)} ± {_num(std)}"


HEADER = ["run", "trainer", "dataset", "variant", "basis", "splits", "SRCC", "SRCC median", "PLCC",
          "PLCC median", "p (Wilcoxon, SRCC vs first)"]  # fmt: skip


def _header(rows: list[TableRow]) -> list[str]:
    return [*HEADER, *(f"SRCC on {d}" for d in (rows[0].cross or {}))] if rows else HEADER


def _cells(row: TableRow) -> list[str]:
    splits = (
        str(row.splits)
        if row.valid_splits == row.splits
        else (f"{row.valid_splits} of {row.splits}")
    )
    p = "–" if row.p_value is None else _num(row.p_value, 4)
    cross = [_num(v) for v in (row.cross or {}).values()]
    return [row.run, row.trainer, row.dataset, row.variant, row.basis, splits,
            _pm(row.srcc_mean, row.srcc_std), _num(row.srcc_median),
            _pm(row.plcc_mean, row.plcc_std), _num(row.plcc_median), p, *cross]  # fmt: skip


def render(rows: list[TableRow], fmt: str) -> str:
    """The table as Markdown, CSV, LaTeX (booktabs) or JSON."""
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2)
    cells = [_cells(r) for r in rows]
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(_header(rows))
        writer.writerows(cells)
        return out.getvalue().rstrip("\n")
    if fmt == "latex":

        def tex(text: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                         ("#", r"\#"), ("±", r"$\pm$"), ("–", "--")):  # fmt: skip
                text = text.replace(a, b)
            return text

        header = _header(rows)
        lines = [r"\begin{tabular}{" + "l" * 5 + "r" * (len(header) - 5) + "}", r"\toprule",
                 " & ".join(tex(h) for h in header) + r" \\", r"\midrule"]  # fmt: skip
        lines += [" & ".join(tex(c) for c in row) + r" \\" for row in cells]
        return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"])
    if fmt != "md":
        raise ValueError(f"unknown format {fmt!r}")
    header = _header(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines)


__all__ = ["FORMATS", "RunLine", "TableRow", "build_table", "cross_dataset", "list_runs",
           "plot_matrix", "render", "same_splits", "wilcoxon_p"]  # fmt: skip

"""The report's sections, built from a run and its sample details (see :mod:`.html`
for the escaping rules: every value from data goes through ``esc``/``tag``)."""

from __future__ import annotations

from typing import Any

from qfeat.trainers.registry import TRAINERS
from qfeat.trainers.report.html import Html, figure, join, notes, number, table, tag
from qfeat.trainers.report.samples import KINDS, Sample
from qfeat.trainers.runfolder import RunFolder

METRIC_KEYS = ("srcc", "krcc", "plcc", "plcc_raw", "rmse")
METRIC_NAMES = ("SRCC", "KRCC", "PLCC (logistic)", "PLCC (raw)", "RMSE (logistic)")
KIND_TITLES = {
    "best": "Best: smallest absolute error",
    "median": "Median absolute error",
    "worst": "Worst: largest absolute error",
}


def _splits_shown(metrics: dict[str, Any]) -> str:
    """How many splits the statistics cover (``9 of 10 valid`` when some are undefined)."""
    total = len({s.get("split") for s in metrics.get("splits", [])})
    valid = metrics.get("valid_splits")
    return f"{valid} of {total} valid" if valid is not None and valid < total else str(total)


def summary(run: RunFolder) -> Html:
    config, metrics = run.config, run.metrics
    seconds = metrics.get("train_seconds")
    rows: list[list[Any]] = [
        ["run", tag("code", run.path.name)],
        ["trainer", config.trainer],
        ["dataset", config.dataset],
        ["preset", config.preset or "?"],
    ]
    if config.trainer in TRAINERS:
        rows += TRAINERS[config.trainer].hook("summary_rows")(config)
    rows += [
        ["trainable parameters", number(metrics.get("trainable_params"))],
        ["train seconds", "–" if seconds is None else f"{float(seconds):.1f}"],
        ["test splits", _splits_shown(metrics)],
        ["seed", "–" if config.seed is None else config.seed],
        ["items", config.items or len(run.predictions["item_id"].unique())],
        ["cache", tag("code", config.cache_dir or "?")],
    ]
    prints = config.all_fingerprints()
    fingerprint_rows = [[name, tag("code", fp)] for name, fp in sorted(prints.items())]
    fingerprints = join([
        tag("h3", "Cache fingerprints the run was trained on"),
        table(["stage", "fingerprint"], fingerprint_rows) if fingerprint_rows else "none recorded",
    ])  # fmt: skip
    columns = join([tag("div", table([], rows)), tag("div", fingerprints)])
    body = join([tag("h2", "Run"), tag("div", columns, class_="cols")])
    return tag("section", body, id="summary")


def metrics_section(run: RunFolder) -> Html:
    metrics = run.metrics
    overall = [
        [label, *(number((metrics.get(row) or {}).get(k)) for k in METRIC_KEYS)]
        for row, label in (("test", "mean"), ("median", "median"), ("std", "std"))
    ]
    split_rows = [
        [s.get("split", "?"), s.get("test_set", "test"), number(s.get("n")),
         *(number(s.get(k)) for k in METRIC_KEYS), s.get("note") or ""]
        for s in metrics.get("splits", [])
    ]  # fmt: skip
    extra = [
        tag("p", join(["Other test set ", tag("code", name), ": SRCC ",
                       number(value.get("srcc")), ", PLCC (logistic) ",
                       number(value.get("plcc"))]))
        for name, value in metrics.items()
        if isinstance(value, dict) and name not in ("test", "median", "std") and "srcc" in value
    ]  # fmt: skip
    body = join([
        tag("h2", "Metrics"),
        tag("p", "Over the test splits. PLCC and RMSE after the 4-parameter logistic mapping "
                 "of the predictions to MOS; PLCC (raw) without it.", class_="muted"),
        table(["", *METRIC_NAMES], overall, numeric=set(range(1, 6))),
        *extra,
        tag("h3", "Per split"),
        table(["split", "test set", "n", *METRIC_NAMES, "note"], split_rows,
              numeric=set(range(2, 8))),
    ])  # fmt: skip
    return tag("section", body, id="metrics")


def plots_section(run: RunFolder) -> Html:
    pictures = []
    for name, caption in (
        ("scatter.png", "MOS vs prediction (all test splits)"),
        ("curves.png", "training loss and validation SRCC per epoch"),
    ):
        path = run.path / name
        data = path.read_bytes() if path.is_file() else None
        pictures.append(figure(data, caption, name))
    body = join([tag("h2", "Plots"), tag("div", join(pictures), class_="plots")])
    return tag("section", body, id="plots")


def _scores(sample: Sample, score: float | None) -> Html:
    line = tag("p", join([
        "MOS ", tag("b", number(sample.mos, 3)),
        " · predicted ", tag("b", number(sample.mapped, 3)),
        f" (raw score {number(sample.pred)}, {sample.mapping} mapping of ",
        tag("code", sample.split), ") · |error| ", tag("b", number(sample.error, 3)),
    ]))  # fmt: skip
    if score is not None and abs(score - sample.pred) > 1e-4 * (1 + abs(sample.pred)):
        line = join([line, notes([
            f"the checkpoint now scores this item {score:.4f}, not {sample.pred:.4f} as in "
            "predictions.csv: the cache or the checkpoint changed since training"
        ])])  # fmt: skip
    return line


def samples_section(
    run: RunFolder, samples: list[Sample], details: dict[tuple[str, str], Any], problem: str | None
) -> Html:
    parts: list[Any] = [
        tag("h2", "Test items: best, median and worst predictions"),
        tag("p", "Predictions mapped to the MOS scale per test split (4-parameter logistic "
                 "fitted on that split); items ranked by absolute error.", class_="muted"),
    ]  # fmt: skip
    if problem:
        parts.append(notes([f"Details are not available: {problem}"]))
    if not samples:
        parts.append(tag("p", "No test predictions to show.", class_="muted"))
    for kind in KINDS:
        chosen = [s for s in samples if s.kind == kind]
        if not chosen:
            continue
        parts.append(tag("h3", KIND_TITLES[kind]))
        for s in chosen:
            detail = details.get((s.item_id, s.split))
            head = tag("h3", join([tag("span", kind, class_="badge"), " ", tag("code", s.item_id)]))
            body: list[Any] = [head, _scores(s, getattr(detail, "score", None))]
            if hasattr(detail, "html"):  # the trainer's own view of the item
                body.append(detail.html())
            parts.append(tag("article", join(body), class_=f"sample {kind}", data_kind=kind))
    return tag("section", join(parts), id="samples")

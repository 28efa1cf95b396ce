"""`qfeat runs` and `qfeat table` on the demo runs (issue 21)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from scipy import stats

from qfeat.trainers.runs_table import wilcoxon_p


@pytest.fixture(scope="module")
def runs(rsa_run, demo_images, tmp_path_factory):
    """The session rsa run, an `--attention uniform` run on the same splits, and a run
    started but not finished."""
    from typer.testing import CliRunner

    from qfeat.cli.main import app

    root = tmp_path_factory.mktemp("table-runs")
    shutil.copytree(rsa_run, root / "rsa")
    args = ["train", "rsa", "demo", "--cache-dir", str(demo_images.cache), "--runs-dir",
            str(root), "--run", "uniform", "--splits", "2", "--epochs", "3", "--device", "cpu",
            "--attention", "uniform"]  # fmt: skip
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    started = root / "half"
    started.mkdir()
    (started / "resume.json").write_text(json.dumps({"trainer": "rsa", "dataset": "demo",
                                                     "preset": "tiny", "splits": 10}))  # fmt: skip
    return root


def test_runs_lists_finished_and_resumable(runs, qfeat):
    result = qfeat("runs", "--runs-dir", str(runs), "--json")
    assert result.exit_code == 0, result.output
    lines = {line["name"]: line for line in json.loads(result.output)}
    assert set(lines) == {"rsa", "uniform", "half"}
    assert lines["rsa"]["state"] == "finished" and lines["rsa"]["trainer"] == "rsa"
    assert lines["rsa"]["srcc"] == json.loads((runs / "rsa" / "metrics.json").read_text())[
        "test"]["srcc"]  # fmt: skip
    assert lines["half"]["state"] == "resumable" and lines["half"]["splits"] == "0 of 10 done"
    assert lines["rsa"]["basis"] == "complete"  # issue 37: a partial run says so
    assert lines["half"]["basis"] == "basis not recorded"
    text = qfeat("runs", "--runs-dir", str(runs)).output
    assert "resumable" in text and "uniform" in text


def test_table_pairs_runs_on_the_same_splits(runs, scma_run, qfeat):
    result = qfeat("table", "rsa", "uniform", str(scma_run), "--runs-dir", str(runs),
                   "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["variant"] for r in rows] == ["rsa", "uniform", "full"]
    assert rows[0]["p_value"] is None and rows[2]["p_value"] is None  # other dataset
    assert rows[1]["paired_with"] == "rsa" and 0 < rows[1]["p_value"] <= 1
    metrics = json.loads((runs / "uniform" / "metrics.json").read_text())
    assert rows[1]["srcc_mean"] == pytest.approx(metrics["test"]["srcc"])
    assert rows[1]["valid_splits"] == rows[1]["splits"] == 2
    assert rows[0]["basis"] == "tiny, complete"


@pytest.mark.parametrize("fmt", ["md", "csv", "latex"])
def test_table_formats(runs, qfeat, fmt):
    result = qfeat("table", "rsa", "uniform", "--runs-dir", str(runs), "--format", fmt)
    assert result.exit_code == 0, result.output
    text = result.output
    if fmt == "md":
        assert text.startswith("| run |") and "±" in text and "| uniform |" in text
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][0] == "run" and [r[0] for r in rows[1:]] == ["rsa", "uniform"]
    else:
        assert "\\toprule" in text and "$\\pm$" in text and "\\end{tabular}" in text


def test_bad_format_and_missing_run(runs, qfeat):
    assert qfeat("table", "rsa", "--runs-dir", str(runs), "--format", "xls").exit_code == 2
    assert qfeat("table", "nope", "--runs-dir", str(runs)).exit_code == 1
    half = qfeat("table", "half", "--runs-dir", str(runs))
    assert half.exit_code == 1 and "has not finished" in half.output


def test_wilcoxon_matches_scipy():
    a = {i: 0.5 + 0.01 * i for i in range(8)}
    b = {i: 0.45 + 0.012 * i for i in range(8)}
    want = stats.wilcoxon([a[i] - b[i] for i in range(8)]).pvalue
    assert wilcoxon_p(a, b) == pytest.approx(want)
    assert wilcoxon_p(a, dict(a)) is None and wilcoxon_p({0: 0.1}, {0: 0.2}) is None


def test_cross_dataset_matrix_and_figure(runs, scma_run, demo_images, qfeat, tmp_path):
    """--on evaluates each run through `qfeat evaluate` (reusing eval-*.json), a run of
    the other modality gets no number, and --figure draws the matrix."""
    figure = tmp_path / "matrix.png"
    result = qfeat("table", "rsa", str(scma_run), "--runs-dir", str(runs), "--on", "demo",
                   "--cache-dir", str(demo_images.cache), "--format", "json", "--figure",
                   str(figure), "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[: result.output.rindex("]") + 1])
    evaluated = json.loads((runs / "rsa" / "eval-demo.json").read_text())
    assert rows[0]["cross"] == {"demo": evaluated["test"]["srcc"]}
    assert rows[1]["cross"] == {"demo": None}  # a video run on an image dataset
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = qfeat("table", "rsa", "--runs-dir", str(runs), "--on", "demo", "--cache-dir",
               str(demo_images.cache))  # fmt: skip
    assert "SRCC on demo" in md.output  # eval-demo.json reused
    assert qfeat("table", "rsa", "--runs-dir", str(runs), "--figure", "x.png").exit_code == 2

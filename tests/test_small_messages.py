"""Issue 36 item 10: the smaller messages — a mistyped dataset name, a text score, the
grammar of counts and articles, predict on a file that does not exist."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from qfeat.errors import DatasetError
from tests.fixtures import layouts


def test_a_mistyped_dataset_name_suggests_and_exits_2(qfeat):
    result = qfeat("train", "rsa", "dmeo")
    assert result.exit_code == 2, result.output
    assert "did you mean demo?" in result.output and len(result.output.splitlines()) <= 3
    # an adapter's own name not computed yet: compute it (exit 1), no guess
    result = qfeat("train", "rsa", "koniq")
    assert result.exit_code == 1 and "qfeat features koniq" in result.output


def test_a_text_score_is_not_told_a_made_up_range(tmp_path):
    from qfeat.pipeline.datasets import open_dataset

    root = tmp_path / "csv"
    layouts.generic_csv(root)
    _, options = layouts.BUILDERS["csv"]
    listing = open_dataset("csv", root, options).list_items()
    (bad,) = [p for p in listing.problems if p.kind == "bad_score"]
    assert "'?', which is not a number" in bad.reason and "expected" not in bad.reason


def test_no_article_to_get_wrong_for_a_trainer_name():
    from qfeat.trainers.scma_release import export_run

    run = SimpleNamespace(name="r1", config=SimpleNamespace(trainer="rsa"))
    with pytest.raises(DatasetError, match="r1 is a run of the rsa trainer; only scma runs"):
        export_run(run, 0, None)


def test_predict_on_a_missing_file_says_so_before_loading_models(qfeat, rsa_run, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    def no_models(*args, **kwargs):
        raise AssertionError("the run's models were loaded for a file that does not exist")

    monkeypatch.setattr("qfeat.trainers.predict.load_run", no_models)
    result = qfeat("predict", str(rsa_run), str(tmp_path / "nope.png"))
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.png'} does not exist" in result.output
    assert len(result.output.splitlines()) <= 3


def test_a_run_without_test_items_plots_without_a_legend_warning(tmp_path):
    """Issue 36 item 7: matplotlib's "No artists with labels found" leaked."""
    import warnings

    import pandas as pd

    from qfeat.trainers.runplots import plot_curves, plot_scatter

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_scatter(tmp_path / "s.png", pd.DataFrame(columns=["split", "pred", "mos"]), {})
        plot_curves(tmp_path / "c.png", [])
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "c.png").is_file()


def test_a_run_without_test_results_cannot_score_and_says_so():
    import pandas as pd

    from qfeat.trainers.predict import split_mappings

    with pytest.raises(DatasetError, match="the run has no test results"):
        split_mappings(pd.DataFrame({"split": [], "pred": [], "mos": []}, dtype=object), 2)

"""The trainer registry: every command finds a trainer's parts through it, so a new
trainer is its own modules plus one entry (shown here with a toy trainer)."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from qfeat.cache.items import write_items
from qfeat.errors import DatasetError
from qfeat.pipeline.datasets.base import Item
from qfeat.pipeline.settings import Settings
from qfeat.trainers import registry
from qfeat.trainers.registry import (
    HOOKS,
    TRAINERS,
    Trainer,
    check_registry,
    get_trainer,
    trainer_for,
    trainer_of_run,
)
from qfeat.trainers.request import TrainRequest, option
from qfeat.trainers.runfolder import RunFolder

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_hook_resolves(name):
    trainer = get_trainer(name)
    for hook in HOOKS:
        assert callable(trainer.hook(hook)), hook
    assert trainer.extensions and all(e.startswith(".") for e in trainer.extensions)
    assert issubclass(trainer.hook("request"), TrainRequest)
    assert trainer.hook("settings").section == name  # `--set NAME.key=value`


def test_one_default_trainer_per_modality_stated_in_the_registry(monkeypatch):
    assert check_registry() == "ok"
    assert trainer_for("image").name == "rsa" and trainer_for("video").name == "scma"
    with pytest.raises(DatasetError, match="knows rsa, scma, probe"):
        get_trainer("svr")
    second = dataclasses.replace(TRAINERS["probe"], name="probe2", modality="image", default=True)
    monkeypatch.setitem(registry.TRAINERS, "probe2", second)
    assert "2 default image trainers (rsa, probe2)" in check_registry()
    with pytest.raises(DatasetError, match="no default trainer for image"):
        trainer_for("image")


def test_no_trainer_name_tests_outside_the_trainers_own_modules():
    """`if trainer == "rsa"` chains are what the registry replaces."""
    own = {
        "rsa",
        "rsa_data",
        "rsa_train",
        "predict_rsa",
        "rsa_views",
        "scma",
        "scma_train",
        "predict_scma",
        "scma_release",
        "scma_views",
        "probe",
        "probe_live",
        "probe_settings",
    }
    offenders = []
    for folder in ("cli", "trainers", "pipeline"):
        for path in (REPO / folder).rglob("*.py"):
            if path.stem in own or path.name == "registry.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in TRAINERS
                    for c in [node.left, *node.comparators]
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders


# ----------------------------------------------------------------------------- a toy
# A trainer that is not gradient descent, in this module alone: it "fits" by predicting
# each item's MOS plus --shift, so every split's SRCC is exactly 1.
@dataclasses.dataclass(frozen=True)
class ToySettings(Settings):
    section = "toy"
    toy: int = 7  # shown in the report summary


@dataclasses.dataclass
class ToyRequest(TrainRequest):
    shift: float = dataclasses.field(default=0.0, metadata=option(help="Added to every score."))


def toy_train(req, log, progress):
    from qfeat.cache.items import read_items
    from qfeat.trainers.fitted import FittedSplit
    from qfeat.trainers.protocol import TrainJob, train_and_record
    from qfeat.trainers.settings import trainer_settings
    from qfeat.trainers.splits import make_splits

    settings = trainer_settings(ToySettings, "tiny", req.sets)
    data = read_items(req.cache_dir, req.dataset)
    mos = data["mos"].to_numpy()

    def fit(split, seed, on_epoch):
        on_epoch({"epoch": 1, "val_srcc": 1.0})
        state = {"shift": torch.tensor([req.shift])}
        return FittedSplit(state, lambda rows: mos[rows] + req.shift, [{"epoch": 1}], 1)

    folder = req.folder("toy").path
    splits = make_splits(data, n_splits=req.splits, seed=req.seed)
    config = req.run_config("toy", modality="image", settings=settings, details={"shift": 1})
    job = TrainJob(data, splits, fit, folder, seed=req.seed)
    return folder, train_and_record(job, config, 0.0, {"trainer": "toy"}, log, progress)


def toy_evaluate(run, dataset, cache_dir, device):
    return {"trainer": run.config.trainer, "dataset": dataset, "device": device}


def toy_rows(config):
    return [["toy setting", config.setting("toy")]]


def toy_variant(config):
    return f"shift {config.detail('shift')}"


TOY = Trainer(
    name="toy",
    modality="image",
    extensions=(".png",),
    help="A toy trainer.",
    request="tests.test_registry:ToyRequest",
    settings="tests.test_registry:ToySettings",
    train="tests.test_registry:toy_train",
    evaluate="tests.test_registry:toy_evaluate",
    scorer="tests.test_registry:toy_evaluate",
    details="tests.test_registry:toy_evaluate",
    summary_rows="tests.test_registry:toy_rows",
    variant="tests.test_registry:toy_variant",
)


def test_a_new_trainer_is_one_registry_entry(tmp_path, monkeypatch):
    """The toy entry alone gives `qfeat train toy` (its own --shift option and --set
    toy.*, no --epochs: its settings have none), the run folder, `qfeat runs`/`table`,
    `evaluate` and the file kind `predict` checks."""
    import typer
    from typer.testing import CliRunner

    from qfeat.cli.train import add_train_commands
    from qfeat.trainers.evaluate import evaluate_run
    from qfeat.trainers.predict import file_kind
    from qfeat.trainers.runs_table import build_table

    monkeypatch.setitem(registry.TRAINERS, "toy", TOY)
    items = [Item(f"i{k}", tmp_path / f"i{k}.png", float(k), k / 19) for k in range(20)]
    write_items(tmp_path, "demo", items)
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, as `qfeat train` is
    add_train_commands(app, {"toy": TOY})
    runner = CliRunner()
    assert "--epochs" not in runner.invoke(app, ["toy", "--help"]).output
    args = ["toy", "demo", "--cache-dir", str(tmp_path), "--runs-dir", str(tmp_path / "runs")]
    result = runner.invoke(app, [*args, "--splits", "2", "--shift", "3", "--run", "t"])
    assert result.exit_code == 0, result.output
    assert "toy (shift 1) on demo: 2 test results" in result.output
    run = tmp_path / "runs" / "t"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["srcc"] == pytest.approx(1.0)
    assert [s["split"] for s in metrics["splits"]] == [0, 1]
    assert trainer_of_run(run) is TOY
    assert file_kind(run) == ("image", (".png",))
    assert build_table([RunFolder(run)])[0].variant == "shift 1"
    assert evaluate_run(run, "demo", tmp_path, "cpu") == {
        "trainer": "toy",
        "dataset": "demo",
        "device": "cpu",
    }
    assert TOY.hook("summary_rows")(RunFolder(run).config) == [["toy setting", 7]]
    bad = runner.invoke(app, [*args, "--set", "toy.tyo=1"])
    assert bad.exit_code == 2 and "did you mean toy" in bad.output
    (run / "config.json").write_text(json.dumps({"trainer": "gone"}))
    with pytest.raises(DatasetError, match="unknown trainer \\('gone'\\)"):
        trainer_of_run(run)


def test_advice_names_the_cached_datasets_and_the_fitting_trainer(
    qfeat, demo_images, scma_run, tmp_path
):
    """Issue 23.3: a typo'd name lists what is cached; a run or trainer of the other
    modality names the trainer that fits instead of a `qfeat features` that cannot."""
    typo = qfeat("train", "rsa", "dmeo", "--cache-dir", str(demo_images.cache))
    assert typo.exit_code == 2  # an unknown name is a usage error (issue 36.10)
    assert "no dataset 'dmeo'" in typo.output and "did you mean demo?" in typo.output
    wrong = qfeat("train", "scma", "demo", "--cache-dir", str(demo_images.cache))
    assert wrong.exit_code == 1
    assert "'demo' is cached as an image dataset" in wrong.output
    assert "qfeat train rsa demo" in wrong.output and "--stages clip" not in wrong.output
    evaluated = qfeat("evaluate", str(scma_run), "demo", "--cache-dir", str(demo_images.cache))
    assert evaluated.exit_code == 1 and "qfeat train rsa demo" in evaluated.output

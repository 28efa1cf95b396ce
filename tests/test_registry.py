"""The trainer registry: every command finds a trainer's parts through it, so a new
trainer is its own modules plus one entry (shown here with a toy trainer)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from qfeat.cache.items import write_items
from qfeat.errors import DatasetError
from qfeat.trainers import registry
from qfeat.trainers.registry import TRAINERS, Trainer, get_trainer, trainer_for, trainer_of_run
from qfeat.trainers.runfolder import RunFolder

REPO = Path(__file__).resolve().parents[1]
HOOKS = ("evaluate", "scorer", "details", "summary_rows")


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_hook_resolves(name):
    trainer = get_trainer(name)
    for hook in HOOKS:
        assert callable(trainer.hook(hook)), hook
    assert trainer.extensions and all(e.startswith(".") for e in trainer.extensions)


def test_lookups():
    assert trainer_for("image").name == "rsa" and trainer_for("video").name == "scma"
    with pytest.raises(DatasetError, match="knows rsa, scma"):
        get_trainer("svr")


def test_no_trainer_name_tests_outside_the_trainers_own_modules():
    """`if trainer == "rsa"` chains are what the registry replaces."""
    own = {
        "rsa",
        "rsa_data",
        "rsa_train",
        "predict_rsa",
        "scma",
        "scma_train",
        "predict_scma",
        "scma_release",
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


def toy_evaluate(run, dataset, cache_dir, device):
    return {"trainer": run.config.trainer, "dataset": dataset, "device": device}


def toy_rows(config):
    return [["toy setting", config.setting("toy")]]


def test_a_new_trainer_is_one_registry_entry(tmp_path, monkeypatch):
    from qfeat.trainers.evaluate import evaluate_run
    from qfeat.trainers.predict import file_kind

    toy = Trainer(
        name="toy",
        modality="image",
        extensions=(".png",),
        evaluate="tests.test_registry:toy_evaluate",
        scorer="tests.test_registry:toy_evaluate",
        details="tests.test_registry:toy_evaluate",
        summary_rows="tests.test_registry:toy_rows",
    )
    monkeypatch.setitem(registry.TRAINERS, "toy", toy)
    run = tmp_path / "toy-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"trainer": "toy", "toy": {"toy": 7}}))
    assert trainer_of_run(run) is toy
    assert file_kind(run) == ("image", (".png",))
    write_items(tmp_path, "demo", [])  # the target dataset is cached (with no stages yet)
    assert evaluate_run(run, "demo", tmp_path, "cpu") == {
        "trainer": "toy",
        "dataset": "demo",
        "device": "cpu",
    }
    assert toy.hook("summary_rows")(RunFolder(run).config) == [["toy setting", 7]]
    (run / "config.json").write_text(json.dumps({"trainer": "gone"}))
    with pytest.raises(DatasetError, match="unknown trainer \\('gone'\\)"):
        trainer_of_run(run)


def test_advice_names_the_cached_datasets_and_the_fitting_trainer(
    qfeat, demo_images, scma_run, tmp_path
):
    """Issue 23.3: a typo'd name lists what is cached; a run or trainer of the other
    modality names the trainer that fits instead of a `qfeat features` that cannot."""
    typo = qfeat("train", "rsa", "dmeo", "--cache-dir", str(demo_images.cache))
    assert typo.exit_code == 1
    assert "no dataset 'dmeo'" in typo.output and "cached: demo" in typo.output
    wrong = qfeat("train", "scma", "demo", "--cache-dir", str(demo_images.cache))
    assert wrong.exit_code == 1
    assert "'demo' is cached as an image dataset" in wrong.output
    assert "qfeat train rsa demo" in wrong.output and "--stages clip" not in wrong.output
    evaluated = qfeat("evaluate", str(scma_run), "demo", "--cache-dir", str(demo_images.cache))
    assert evaluated.exit_code == 1 and "qfeat train rsa demo" in evaluated.output

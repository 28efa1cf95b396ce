"""The run folder object: the one reader and writer of config.json and its friends."""

from __future__ import annotations

import json

import pytest

from qfeat.errors import DatasetError, OptionError
from qfeat.trainers.rsa_data import head_of
from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import RunFolder
from qfeat.trainers.scma import clip_of, mode_of


def test_config_json_round_trips_unchanged(rsa_run, scma_run):
    """Reading a run's config.json and writing it back gives the very same file content
    (the layout is a contract older runs rely on), for both trainers."""
    for folder in (rsa_run, scma_run):
        stored = json.loads((folder / "config.json").read_text())
        config = RunFolder(folder).config
        assert json.loads(json.dumps(config.to_json(), default=str)) == stored
        assert RunConfig.from_json(config.to_json()) == config


def test_typed_fields(rsa_run, scma_run):
    rsa, scma = RunFolder(rsa_run).config, RunFolder(scma_run).config
    assert (rsa.trainer, rsa.dataset, rsa.preset) == ("rsa", "demo", "tiny")
    assert head_of(rsa)["attention"] == "rsa" and rsa.setting("epochs") >= 1
    assert (rsa.modality, scma.modality) == ("image", "video")
    assert set(rsa.fingerprints) == set(rsa.stages) and rsa.cache_dir
    assert rsa.fingerprint("backbone") == rsa.stages["backbone"]["fingerprint"]
    assert mode_of(scma) == "full"
    assert clip_of(scma)["adapted_blocks"] == scma.details["adapted_blocks"]
    assert scma.items >= len(RunFolder(scma_run).predictions["item_id"].unique()) > 0
    assert {"frames", "clip"} <= set(scma.all_fingerprints())
    with pytest.raises(DatasetError, match="records no scma.nope"):
        scma.setting("nope")


def test_resume_spec_ignores_device_and_cache_spelling(rsa_run):
    config = RunFolder(rsa_run).config
    moved = RunConfig.from_json({**config.to_json(), "device": "cuda:1"})
    moved = RunConfig.from_json(
        {**moved.to_json(), "cache": {"dir": "/elsewhere", **config.fingerprints}}
    )
    assert moved.resume_spec() == config.resume_spec()
    other_seed = RunConfig.from_json({**config.to_json(), "seed": 99})
    assert other_seed.resume_spec() != config.resume_spec()


def test_names_and_damage(tmp_path, rsa_run):
    with pytest.raises(OptionError, match="plain folder name"):
        RunFolder.create(tmp_path, "../escape")
    assert RunFolder.create(tmp_path, "r1").path == tmp_path / "r1"
    assert RunFolder.find(rsa_run.name, rsa_run.parent).path == rsa_run.absolute()
    with pytest.raises(DatasetError, match="no run folder nope"):
        RunFolder.find("nope", tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read .*config.json"):
        _ = RunFolder(broken).config
    (broken / "config.json").write_text(json.dumps({"dataset": "x"}))
    with pytest.raises(DatasetError, match="not a qfeat run config"):
        _ = RunFolder(broken).config
    (broken / "config.json").write_text((rsa_run / "config.json").read_text())
    with pytest.raises(DatasetError, match="no metrics.json"):
        RunFolder(broken).complete()
    with pytest.raises(DatasetError, match="no checkpoints"):
        RunFolder(broken).states()


def test_only_the_run_folder_module_names_config_json():
    """Every other module goes through RunFolder / RunConfig (issue 20)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    own = {"runfolder.py", "runconfig.py"}
    offenders = [
        str(p.relative_to(repo))
        for folder in ("cli", "trainers", "qfeat")
        for p in (repo / folder).rglob("*.py")
        if p.name not in own and '"config.json"' in p.read_text()
    ]
    assert not offenders


def test_ctrl_c_names_the_resume_command_and_unfinished_runs_say_so(
    qfeat, demo_images, tmp_path, monkeypatch
):
    """Issue 23.8: Ctrl-C during training printed a traceback wall and no run name;
    `report` / `evaluate` on an unfinished run said only that files were missing."""
    from qfeat.trainers import rsa_train

    def interrupted(request, log, progress):
        folder = request.folder("rsa").path
        folder.mkdir(parents=True, exist_ok=True)  # `train` holds its lock in it
        (folder / "resume.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(rsa_train, "train_rsa", interrupted)
    runs = tmp_path / "runs"
    result = qfeat("train", "rsa", "demo", "--cache-dir", str(demo_images.cache),
                   "--runs-dir", str(runs), "--splits", "2")  # fmt: skip
    assert result.exit_code == 130 and "Traceback" not in result.output
    (name,) = [p.name for p in runs.iterdir()]
    assert f"qfeat train rsa demo --run {name}" in result.output
    for args in (("report", str(runs / name)), ("evaluate", name, "demo", "--runs-dir", str(runs))):
        refused = qfeat(*args)
        assert refused.exit_code == 1, args
        assert (
            f"run {name} has not finished" in refused.output and f"--run {name}" in refused.output
        )

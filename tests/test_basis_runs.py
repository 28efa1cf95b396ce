"""Issue 37 through the CLI, on a copy of the session's demo image cache: a partial run
of another preset beside the complete tiny cache, what the run records and what
`runs` shows, too few usable rows, a deleted done marker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qfeat.pipeline.config import PRESET_DIR


@pytest.fixture
def cache(demo_images, tmp_path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(demo_images.cache, copy)
    return copy


def other_preset(tmp_path: Path) -> Path:
    """A preset standing in for ``paper`` (whose weights do not exist here): tiny with
    another backbone input size, so its backbone gets another fingerprint."""
    text = (PRESET_DIR / "tiny.toml").read_text().replace("input_size = 128", "input_size = 64")
    path = tmp_path / "paperish.toml"
    path.write_text(text)
    return path


def set_id(cache: Path, items: int) -> str:
    """The id of the other preset's backbone set computed for ``items`` items."""
    from qfeat.cache.basis import coherent_sets

    found = coherent_sets(cache, "demo", ["backbone"])
    return next(b.id for b in found if b.covered == items and b.preset != "tiny")


def features(qfeat, demo_images, cache: Path, *extra: str):
    result = qfeat("features", "demo", "--root", str(demo_images.data), "--cache-dir",
                   str(cache), "--workers", "1", *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def train(qfeat, cache: Path, runs: Path, name: str, *extra: str):
    return qfeat("train", "rsa", "demo", "--cache-dir", str(cache), "--runs-dir", str(runs),
                 "--run", name, "--splits", "2", "--epochs", "1", "--device", "cpu",
                 *extra)  # fmt: skip


def test_a_partial_run_of_another_preset_is_read_only_when_named(
    qfeat, demo_images, cache, tmp_path
):
    preset = other_preset(tmp_path)
    features(qfeat, demo_images, cache, "--preset", str(preset), "--stages", "backbone",
             "--limit", "2")  # fmt: skip
    runs = tmp_path / "runs"
    default = train(qfeat, cache, runs, "tiny", "--attention", "global")
    assert default.exit_code == 0, default.output
    config = json.loads((runs / "tiny" / "config.json").read_text())
    assert config["preset"] == "tiny" and config["basis"]["state"] == "complete"
    assert config["basis"]["fingerprints"]["backbone"] == config["cache"]["backbone"]
    assert f"cache basis {config['basis']['id']}: tiny (complete)" in default.output
    # the 2-item set, asked for by name: too few rows, saying which stage and command
    refused = train(qfeat, cache, runs, "two", "--attention", "global", "--preset", str(preset))
    assert refused.exit_code == 1
    partial_id = set_id(cache, 2)
    assert "are all partial" in refused.output and f"--basis {partial_id}" in refused.output
    too_few = train(qfeat, cache, runs, "two", "--attention", "global", "--basis", partial_id)
    assert too_few.exit_code == 1
    assert "only 2 of 48 items of demo have an ok backbone row" in too_few.output
    assert f"--preset {preset}" in too_few.output
    # 24 items of it (two contents): trained when named, and `runs` says partial
    features(qfeat, demo_images, cache, "--preset", str(preset), "--stages", "backbone",
             "--limit", "24")  # fmt: skip
    assert train(qfeat, cache, runs, "again", "--attention", "global").exit_code == 0
    again = json.loads((runs / "again" / "config.json").read_text())
    assert again["basis"] == config["basis"]  # still the complete tiny set
    part = train(qfeat, cache, runs, "part", "--attention", "global", "--basis", set_id(cache, 24))
    assert part.exit_code == 0, part.output
    record = json.loads((runs / "part" / "config.json").read_text())["basis"]
    assert record["state"] == "partial" and (record["items"], record["of"]) == (24, 48)
    lines = {r["name"]: r for r in json.loads(qfeat("runs", "--runs-dir", str(runs),
                                                     "--json").output)}  # fmt: skip
    assert lines["part"]["basis"] == "partial: 24 of 48 items"
    assert lines["tiny"]["basis"] == "complete"
    assert "partial: 24 of 48 items" in qfeat("table", "part", "--runs-dir", str(runs)).output


def test_a_deleted_done_marker_stops_training_with_the_repair_command(qfeat, cache, tmp_path):
    """Issue 40 item 2, through `qfeat train`: no fall-back to another cached set."""
    (folder,) = [p for p in (cache / "demo" / "backbone").iterdir() if p.is_dir()]
    (folder / "shard-00001.done.json").unlink()
    result = train(qfeat, cache, tmp_path / "runs", "r", "--attention", "global")
    assert result.exit_code == 1
    assert f"backbone {folder.name} lacks shard(s) 00001 of 2" in result.output
    assert "qfeat features demo --preset tiny" in result.output
    assert not (tmp_path / "runs" / "r" / "config.json").exists()


def test_training_registers_what_the_run_reads(qfeat, cache, tmp_path):
    # --preset tiny resolves (as `qfeat features` does) to the cached tiny set exactly
    result = train(qfeat, cache, tmp_path / "runs", "held", "--attention", "global",
                   "--preset", "tiny", "--set", "backbone.input_size=128")  # fmt: skip
    assert result.exit_code == 0, result.output
    other = train(qfeat, cache, tmp_path / "runs", "other", "--attention", "global",
                  "--set", "backbone.input_size=96")  # fmt: skip
    assert other.exit_code == 1
    assert "qfeat features demo --preset tiny --set backbone.input_size=96" in other.output
    config = json.loads((tmp_path / "runs" / "held" / "config.json").read_text())
    (registration,) = (cache / "demo" / ".runs").glob("held-*.json")
    record = json.loads(registration.read_text())
    assert (
        record["fingerprints"]
        == config["basis"]["fingerprints"]
        == {"backbone": config["cache"]["backbone"]}
    )
    assert record["path"] == str((tmp_path / "runs" / "held").resolve())


def test_a_run_whose_cache_is_gone_says_so_in_one_line(qfeat, rsa_run, demo_images, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(rsa_run, run)
    config = json.loads((run / "config.json").read_text())
    config["cache"]["dir"] = str(tmp_path / "gone")
    (run / "config.json").write_text(json.dumps(config))
    result = qfeat("evaluate", str(run), "demo", "--cache-dir", str(demo_images.cache))
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "gone from" in notes[0] and "qfeat features demo" in notes[0]
    report = qfeat("report", str(run))
    assert report.exit_code == 0, report.output
    assert [line for line in report.output.splitlines() if line.startswith("note:")] == notes


def test_a_downstream_stage_builds_on_the_upstream_of_its_configuration(qfeat, demo_images, cache):
    """`--stages text` with other describe settings: refused (the cached describe was made
    with others), not built on whatever describe ran last under a manifest that says so."""
    result = qfeat("features", "demo", "--root", str(demo_images.data), "--cache-dir",
                   str(cache), "--workers", "1", "--stages", "text",
                   "--set", "describe.max_new_tokens=8")  # fmt: skip
    assert result.exit_code == 1
    assert "needs 'describe' of demo made with this configuration" in result.output
    assert "qfeat features demo --stages describe,text" in result.output

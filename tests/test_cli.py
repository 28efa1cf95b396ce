"""The qfeat CLI: help, version, datasets listing and check, exit codes."""

from __future__ import annotations

import json

import pytest

from qfeat.pipeline.datasets import REGISTRY
from tests.fixtures import layouts


def test_help_lists_commands(qfeat):
    result = qfeat("--help")
    assert result.exit_code == 0
    assert "datasets" in result.output and "version" in result.output


def test_version(qfeat):
    result = qfeat("version")
    assert result.exit_code == 0
    assert result.output.startswith("qfeat 0.")


def test_datasets_json_lists_every_adapter(qfeat):
    result = qfeat("datasets", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == set(REGISTRY) and len(rows) == 14
    assert rows["koniq"]["modality"] == "image" and rows["lsvq"]["modality"] == "video"
    assert (rows["kadid"]["score_min"], rows["kadid"]["score_max"]) == (1.0, 5.0)
    assert all(isinstance(r["higher_is_better"], bool) and r["layout"] for r in rows.values())


def test_datasets_table(qfeat):
    result = qfeat("datasets")
    assert result.exit_code == 0
    for name in ("koniq", "youtube-ugc", "live-qualcomm", "demo-video"):
        assert name in result.output


def test_check_koniq_official_layout(qfeat, tmp_path):
    expected = layouts.koniq(tmp_path, n_per_split=(14, 2, 4), clean=True)
    result = qfeat("datasets", "check", "koniq", "--root", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["name"] == "koniq" and report["modality"] == "image"
    assert report["items"] == 20 and report["missing"] == 0
    assert report["score_min"] == pytest.approx(expected.score_min)
    assert report["score_max"] == pytest.approx(expected.score_max)
    assert report["splits"] == {"train": 14, "val": 2, "test": 4}


def test_check_with_problems_exits_1_and_still_reports(qfeat, tmp_path):
    layouts.kadid(tmp_path)
    result = qfeat("datasets", "check", "kadid", "--root", str(tmp_path), "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["missing"] == 1 and report["rejected"] == 2
    human = qfeat("datasets", "check", "kadid", "--root", str(tmp_path))
    assert human.exit_code == 1
    assert "images/I02_01_02.png" in human.output  # the missing file is named
    assert "escapes the dataset root" in human.output


def test_check_option_passes_through(qfeat, tmp_path):
    layouts.generic_csv(tmp_path)
    args = ["datasets", "check", "csv", "--root", str(tmp_path), "--json"]
    opts = ["-o", "file=scores.csv", "--option", "path_col=file", "--option", "score_col=quality"]
    report = json.loads(qfeat(*args, *opts).output)
    assert report["items"] == 3 and report["score_max"] == 7.5


@pytest.mark.parametrize(
    "args",
    [
        ["datasets", "check", "nosuchset", "--root", "."],
        ["datasets", "check", "kadid", "--root", ".", "--option", "novalue"],
        ["datasets", "check", "kadid", "--root", ".", "--option", "colour=red"],
        ["datasets", "check"],
        ["nosuchcommand"],
    ],
)
def test_usage_errors_exit_2(runner, args):
    from qfeat.cli.main import app

    result = runner.invoke(app, args)
    assert result.exit_code == 2


def test_missing_root_exits_1_with_fix(qfeat, tmp_path):
    result = qfeat("datasets", "check", "koniq", "--root", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "--root" in result.output and "QFEAT_DATA_ROOT" in result.output


def test_default_root_comes_from_environment(qfeat, isolated_dirs):
    result = qfeat("datasets", "check", "demo", "--json", "--no-decode")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["root"] == str(isolated_dirs / "data" / "demo")
    assert report["items"] == 504 and report["groups"] == 24


def test_paths_in_messages_are_absolute(qfeat, tmp_path, monkeypatch):
    """Relative locations (the defaults, or --cache-dir rel) print as absolute paths, so a
    message read in a job log or from another folder names the right place."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QFEAT_CACHE_DIR", "relative-cache")
    result = qfeat("cache", "ls")
    assert f"the cache at {tmp_path / 'relative-cache'} is empty" in result.output
    result = qfeat("cache", "ls", "--cache-dir", "other")
    assert f"the cache at {tmp_path / 'other'} is empty" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "scma", "demo-video", "--set", "scma.batch_size=0"], "scma.batch_size = 0"),
        (["train", "rsa", "demo", "--set", "rsa.lr=0"], "rsa.lr = 0.0 is invalid"),
        (["train", "rsa", "demo", "--set", "rsa.hiden=8"], "did you mean rsa.hidden"),
    ],
)
def test_bad_trainer_settings_are_usage_errors_before_any_work(qfeat, tmp_path, args, message):
    result = qfeat(*args, "--cache-dir", str(tmp_path / "empty"), "--runs-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize("name", ["../../escape", "a/b", "/tmp/abs", ".."])
def test_run_names_never_leave_the_runs_dir(qfeat, tmp_path, name):
    runs = tmp_path / "runs" / "inner"
    result = qfeat("train", "rsa", "demo", "--run", name, "--runs-dir", str(runs),
                   "--cache-dir", str(tmp_path / "empty"))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--run must be a plain folder name" in result.output
    assert not (tmp_path / "escape").exists() and not runs.exists()


def test_every_command_resolves_a_run_the_same_way(qfeat, tmp_path):
    for args in (["report", "nope"], ["evaluate", "nope", "demo"], ["predict", "nope", "x.png"]):
        result = qfeat(*args, "--runs-dir", str(tmp_path))
        assert result.exit_code == 1, (args, result.output)
        assert f"no run folder nope: {tmp_path / 'nope'} holds no config.json" in result.output


def test_progress_is_plain_lines_when_not_a_terminal():
    """In a job log (not a TTY) a live bar would appear only at the end: progress comes
    as plain lines instead, throttled, with the line that completes each task once."""
    import io

    from rich.console import Console

    from qfeat.cli.progress import LineProgress, progress_bar

    out = io.StringIO()
    with progress_bar(Console(file=out, width=200), "[bold]{task.description}", "items") as bar:
        assert isinstance(bar, LineProgress)
        task = bar.add_task("frames", total=4)
        for _ in range(4):
            bar.advance(task)
        bar.update(task, completed=4)  # a repeated "finished" update prints nothing more
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("frames · 1/4 items · elapsed 0:00:0")
    assert lines[-1].startswith("frames · 4/4 items · ") and "left" not in lines[-1]
    assert len(lines) == 2  # updates 2 and 3 came within the throttle interval
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert not isinstance(progress_bar(terminal, "x"), LineProgress)


def test_features_log_has_a_line_per_stage_when_not_a_terminal(qfeat, tmp_path, demo_video_data):
    result = qfeat("features", "demo-video", "--limit", "8", "--shard-size", "4", "--root",
                   str(demo_video_data), "--workers", "1",
                   "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert result.exit_code == 0, result.output
    for stage in ("frames", "clip"):
        assert f"{stage} · 8/8 items · 2/2 shards" in result.output


def test_markup_and_escape_sequences_in_item_ids_are_shown_not_acted_on(qfeat, tmp_path):
    """Item ids come from users' metadata: rich markup in one used to crash
    `datasets check`, and raw escape sequences reached the terminal."""
    root = tmp_path / "mine"
    root.mkdir()
    (root / "scores.csv").write_text("file,q\na[/bold].png,3\nesc\x1b[31mred.png,4\n")
    options = [
        "--option",
        "file=scores.csv",
        "--option",
        "path_col=file",
        "--option",
        "score_col=q",
    ]
    result = qfeat("datasets", "check", "csv", "--root", str(root), *options)
    assert result.exit_code == 1  # both files are missing: reported, no crash
    assert "a[/bold].png" in result.output
    assert "esc\\x1b[31mred.png" in result.output and "\x1b[31m" not in result.output

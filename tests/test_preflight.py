"""Issue 36: one up-front check of every input (qfeat.pipeline.preflight). Each case is
one line naming the setting, the file and the fix, with its exit code, and — where the
check can catch it — before any Dask worker starts."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures import layouts


@pytest.fixture
def no_workers(monkeypatch):
    """Starting the embedded cluster fails the test: the check came too late."""

    def refuse(*args, **kwargs):
        raise AssertionError("a Dask cluster was started before the up-front check refused")

    monkeypatch.setattr("qfeat.pipeline.runner.connect", refuse)


def lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def one_problem(result, code: int, *words: str) -> str:
    """The single problem's text, after checking its exit code, words and length."""
    assert result.exit_code == code, result.output
    assert len(lines(result)) <= 3, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output
    return result.output


def fake_weights(path, shapes: dict[str, tuple[int, ...]]) -> str:
    """A weights file with ``shapes`` (each tensor a broadcast view of one stored float:
    a SAM or ResNet layout in a few kilobytes)."""
    torch.save({k: torch.zeros(()).expand(s) for k, s in shapes.items()}, path)
    return str(path)


def features(qfeat, demo_image_data, *args: str):
    return qfeat("features", "demo", "--root", str(demo_image_data), "--preset", "tiny", *args)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["backbone.weights=", "empty (0 bytes)", "resnet50"]),
        (bytes(range(256)) * 8, ["cannot be read as", "Unsupported operand"]),
        (None, ["a weights file is needed here, not a folder"]),
    ],
    ids=["empty", "random-bytes", "folder"],
)
def test_unusable_weights_files_are_one_line_before_any_worker(
    content, words, qfeat, demo_image_data, tmp_path, no_workers
):
    path = tmp_path / "resnet50.pth"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    sets = ["--set", "backbone.model=resnet50", "--set", f"backbone.weights={path}"]
    result = features(qfeat, demo_image_data, "--stages", "backbone", *sets)
    one_problem(result, 1, str(path), *words)
    # `qfeat weights` gives the same answer (one check for every command)
    assert words[-1] in qfeat("weights", "--stages", "backbone", *sets).output


def test_a_setting_left_empty_says_it_is_not_set(qfeat, demo_image_data, no_workers):
    result = features(qfeat, demo_image_data, "--stages", "regions", "--set", "regions.model=vit_b")
    text = one_problem(result, 1, "regions.checkpoint is not set", "sam_vit_b_01ec64.pth")
    assert "not found at ''" not in text


def test_wrong_architectures_are_caught_before_any_worker(qfeat, demo_image_data, tmp_path,
                                                          no_workers):  # fmt: skip
    import torchvision

    from qfeat.pipeline.models.weights_check import meta_shapes

    resnet18 = fake_weights(tmp_path / "resnet50-11ad3fa6.pth",
                            meta_shapes(torchvision.models.resnet18)[0])  # fmt: skip
    result = features(
        qfeat,
        demo_image_data,
        "--stages",
        "backbone",
        "--set",
        "backbone.model=resnet50",
        "--set",
        f"backbone.weights={resnet18}",
    )
    one_problem(result, 1, "backbone.weights=", "in the file but [64, 64, 1, 1] in resnet50")
    # the same ResNet file given as the text tower's open_clip weights
    result = features(qfeat, demo_image_data, "--stages", "text", "--set", "text.model=ViT-B-16",
                      "--set", f"text.pretrained={resnet18}")  # fmt: skip
    one_problem(result, 1, "text.pretrained=", "open_clip ViT-B-16")


def test_a_sam_vit_b_file_named_vit_h_names_its_model(qfeat, demo_image_data, tmp_path,
                                                      no_workers):  # fmt: skip
    from qfeat.pipeline.models.weights_check import sam_shapes

    vit_b = fake_weights(tmp_path / "sam_vit_h_4b8939.pth", sam_shapes("vit_b")[0])
    result = features(qfeat, demo_image_data, "--stages", "regions", "--set",
                      "regions.model=vit_h", "--set", f"regions.checkpoint={vit_b}")  # fmt: skip
    one_problem(result, 1, "regions.checkpoint=", "set regions.model=vit_b")


def test_a_describe_folder_without_config_is_refused_before_regions_run(
    qfeat, demo_image_data, tmp_path, no_workers
):
    folder = tmp_path / "qwen"
    folder.mkdir()
    result = features(qfeat, demo_image_data, "--stages", "regions,describe", "--set",
                      f"describe.model={folder}")  # fmt: skip
    one_problem(result, 1, f"describe.model={folder}", "no config.json", "folder")


def test_a_hub_id_without_network_is_one_line_in_seconds(qfeat, demo_image_data, monkeypatch,
                                                         no_workers):  # fmt: skip
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("qfeat.pipeline.preflight.hub_reachable", lambda *a: False)
    args = ("--stages", "describe", "--set", "describe.model=someone/not-cached-vl")
    start = time.monotonic()
    result = features(qfeat, demo_image_data, *args)
    assert time.monotonic() - start < 30
    one_problem(result, 1, "cannot be reached", "HF_HUB_OFFLINE=1", "describe.model=/path/to/")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_problem(features(qfeat, demo_image_data, *args), 1, "HF_HUB_OFFLINE=1 forbids")
    # `qfeat weights` no longer says "hub", exit 0
    assert qfeat("weights", "--stages", "describe", *args[2:]).exit_code == 1


def test_the_hub_probe_answers_without_retries(monkeypatch):
    import time

    from qfeat.pipeline.preflight import hub_reachable

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on discard
    start = time.monotonic()
    assert hub_reachable(timeout=1.0) is False
    assert time.monotonic() - start < 3


def test_unknown_stage_suggests_and_exits_2(qfeat, demo_image_data, no_workers):
    result = features(qfeat, demo_image_data, "--stages", "backbon")
    one_problem(result, 2, "unknown stage 'backbon'; did you mean backbone?")
    result = qfeat("weights", "--stages", "backbon")
    one_problem(result, 2, "did you mean backbone?")


def test_every_problem_is_listed_dataset_first(qfeat, tmp_path, no_workers):
    result = qfeat("features", "koniq", "--root", str(tmp_path / "nope"), "--preset", "paper",
                   "--stages", "regions,backbone")  # fmt: skip
    assert result.exit_code == 1
    found = lines(result)
    assert len(found) == 3, result.output
    assert "dataset root" in found[0] and "does not exist" in found[0]
    assert "regions.checkpoint is not set" in found[1]
    assert "backbone.weights is not set" in found[2]


def test_koniq_without_its_images_folder_is_refused(qfeat, tmp_path, no_workers):
    import shutil

    root = tmp_path / "koniq"
    layouts.koniq(root)
    shutil.rmtree(root / "1024x768")
    result = qfeat("features", "koniq", "--root", str(root), "--limit", "2", "--preset", "tiny")
    one_problem(result, 1, "1024x768/ does not exist", str(root))
    check = qfeat("datasets", "check", "koniq", "--root", str(root))
    assert "1024x768/" in check.output and "folder" in check.output, check.output


def test_an_unwritable_cache_folder_is_one_line(qfeat, demo_image_data, tmp_path, monkeypatch,
                                                no_workers):  # fmt: skip
    a_file = tmp_path / "cache-file"
    a_file.write_text("")
    result = features(qfeat, demo_image_data, "--cache-dir", str(a_file / "cache"))
    one_problem(result, 1, "--cache-dir", "is a file, not a folder")

    def read_only(folder):
        raise PermissionError(13, "Permission denied")

    # root ignores permission bits, so a read-only folder is simulated at the write
    monkeypatch.setattr("qfeat.pipeline.preflight.try_write", read_only)
    result = features(qfeat, demo_image_data, "--cache-dir", str(tmp_path / "ro"))
    one_problem(result, 1, "--cache-dir", "cannot write in", "Permission denied")


def test_several_problems_exit_2_when_one_is_a_usage_error():
    from qfeat.errors import DatasetError, OptionError, Problems
    from qfeat.pipeline.preflight import Checks

    checks = Checks()
    for error in (DatasetError("a"), OptionError("b")):
        with checks.collect():
            raise error
    with pytest.raises(Problems) as raised:
        checks.raise_any()
    assert raised.value.exit_code == 2 and str(raised.value) == "a\nb"
    assert Problems([DatasetError("a"), DatasetError("c")]).exit_code == 1


def test_train_checks_the_dataset_then_the_runs_folder_before_training(qfeat, tmp_path):
    a_file = tmp_path / "runs-file"
    a_file.write_text("")
    result = qfeat("train", "rsa", "koniq", "--runs-dir", str(a_file / "runs"))
    assert result.exit_code == 1, result.output
    found = lines(result)
    assert len(found) == 2, result.output
    assert "no dataset 'koniq'" in found[0]
    assert "--runs-dir" in found[1] and "is a file, not a folder" in found[1]

"""The paper preset on weights files in their publishers' formats, at real architecture
sizes with seeded random weights (issue 18): `qfeat weights` accepts them and names each
wrong file; `qfeat features --preset paper`, training and prediction run end to end on
four items per modality, on CPU.

SAM is ViT-B here (the ViT-H file is 2.5 GB and takes minutes per image on two cores;
`qfeat weights` checks ViT-H's shapes on the meta device); the Qwen2.5-VL folder has
the real classes at reduced depth and width; PE-Core-L-14-336, open_clip ViT-B-16 and
ResNet-50 are full size.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qfeat.cache.reader import open_stage
from qfeat.cli.main import app
from tests.fixtures.real_weights import write_all

pytestmark = [pytest.mark.slow, pytest.mark.background]
SPLITS = ["train", "train", "val", "test"]


def cli(*args) -> tuple[int, str]:
    """Exit code and stdout (warnings go to stderr), or everything said when it failed."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("real-weights"))


def paper_sets(real: dict[str, Path], *extra: str) -> list[str]:
    """The paper preset with the fixture's files. 4x4 SAM point prompts instead of 32x32:
    the mask decoder runs once per prompt (about 0.2 s each on two cores, so 1024 of
    them cost minutes per image); the architecture is untouched."""
    sets = ["regions.model=vit_b", "regions.points_per_side=4",
            *[f"{k}={v}" for k, v in real.items()], *extra]  # fmt: skip
    return ["--preset", "paper", *[a for s in sets for a in ("--set", s)]]


def four_items(source: Path, column: str, root: Path, modality: str) -> list[str]:
    """Four items of four different contents copied to ``root`` with an items.csv that
    fixes their splits (2 train, 1 val, 1 test)."""
    with open(source / "mos.csv") as f:
        rows = list(csv.DictReader(f))
    chosen, seen = [], set()
    for row in rows:
        if row["content"] not in seen and row["level"] != "0":
            seen.add(row["content"])
            chosen.append(row)
    chosen = chosen[:4]
    for row in chosen:
        (root / row[column]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / row[column], root / row[column])
    with open(root / "items.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "mos", "split"])
        w.writerows([r[column], r["mos"], s] for r, s in zip(chosen, SPLITS, strict=True))
    return [
        "--root", root, "--name", f"paper-{modality}", "--option", "file=items.csv",
        "--option", "path_col=path", "--option", "score_col=mos", "--option", "split_col=split",
        "--option", f"modality={modality}", "--option", "score_min=1", "--option", "score_max=5",
    ]  # fmt: skip


# -- qfeat weights ----------------------------------------------------------------------------
def test_weights_accepts_every_published_format(real):
    text_st = real["text.pretrained"].with_name("open_clip_model.safetensors")
    pe_st = real["clip.pretrained"].parent / "PE-Core-L-14-336" / "open_clip_model.safetensors"
    for text, pe in ((real["text.pretrained"], real["clip.pretrained"]), (text_st, pe_st)):
        sets = paper_sets(real, f"text.pretrained={text}", f"clip.pretrained={pe}")
        code, out = cli("weights", "--json", *sets)
        assert code == 0, out
        report = json.loads(out)
        rows = {r["setting"]: r for r in report["weights"]}
        assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(rows, "ok")
        assert rows["regions.checkpoint"]["parameters"] == 93_735_472  # SAM ViT-B
        assert rows["clip.pretrained"]["parameters"] == 671_138_817  # PE-Core-L-14-336
        assert rows["backbone.weights"]["parameters"] == 25_557_032  # ResNet-50
        sam = real["regions.checkpoint"]
        assert rows["regions.checkpoint"]["sha256"] == hashlib.sha256(sam.read_bytes()).hexdigest()
        assert f"--set regions.checkpoint={sam}" in report["use"]
        assert "--set regions.model=vit_b" in report["use"]
        assert f"--set text.pretrained={text}" in report["use"]
        assert f"--set clip.pretrained={pe}" in report["use"]


def test_weights_names_the_key_and_shapes_of_each_wrong_file(real, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    text_only = tmp_path / "Qwen2.5-0.5B-text-only"
    Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1,
                                 vocab_size=64)).save_pretrained(text_only)  # fmt: skip
    vit_b_text = real["text.pretrained"].with_name("open_clip_model.safetensors")
    wrong = {
        "regions.checkpoint": real["regions.checkpoint"],  # ViT-B given for the preset's ViT-H
        "describe.model": text_only,
        "text.pretrained": real["clip.pretrained"],  # PE-Core-L given as ViT-B-16
        "backbone.weights": real["regions.checkpoint"],  # SAM given as ResNet-50
        "clip.pretrained": vit_b_text,  # ViT-B-16 given as PE-Core-L
    }
    code, out = cli("weights", "--json", "--preset", "paper",
                    *[a for k, v in wrong.items() for a in ("--set", f"{k}={v}")])  # fmt: skip
    assert code == 1
    rows = {r["setting"]: r for r in json.loads(out)["weights"]}
    assert {r["status"] for r in rows.values()} == {"wrong"}
    said = {k: r["message"] for k, r in rows.items()}
    assert said["regions.checkpoint"] == (
        "image_encoder.pos_embed is [1, 64, 64, 768] in the file but [1, 64, 64, 1280] in "
        "SAM vit_h (it is a SAM vit_b checkpoint: set regions.model=vit_b)"
    )
    assert "model_type 'qwen2'" in said["describe.model"]
    assert "text-only" in said["describe.model"]
    assert said["text.pretrained"].startswith("positional_embedding is [32, 1024] in the file")
    assert (
        "in the file" in said["backbone.weights"] or "not in the file" in said["backbone.weights"]
    )
    assert "visual.trunk" in said["clip.pretrained"]
    assert json.loads(out)["use"] == "--preset paper"  # nothing good to pass on


# -- end to end --------------------------------------------------------------------------------
def test_paper_preset_images_end_to_end(real, demo_image_data, tmp_path):
    data = four_items(demo_image_data, "image", tmp_path / "data", "image")
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    code, out = cli("features", "csv", *data, "--cache-dir", cache, "--workers", 1,
                    *paper_sets(real))  # fmt: skip
    assert code == 0, out
    regions = open_stage(cache, "paper-image", "regions").table()
    assert list(regions["status"]) == ["ok"] * 4
    # random SAM weights under the paper thresholds: whatever SAM keeps, the partition
    # covers the image and ends with the rest region
    for ids, fracs in zip(regions["region_id"], regions["area_frac"], strict=True):
        assert ids[-1] == 16 and abs(sum(fracs) - 1.0) < 1e-3
    describe = open_stage(cache, "paper-image", "describe").table()
    assert list(describe["status"]) == ["ok"] * 4
    assert all(len(raw) == len(ids) for raw, ids in zip(describe["raw"], regions["region_id"],
                                                         strict=True))  # fmt: skip
    backbone = open_stage(cache, "paper-image", "backbone")
    assert backbone.array("features").shape == (4, 2048, 12, 12)  # ResNet-50 at 384
    # the other describe mode with the same Qwen2.5-VL architecture
    code, out = cli("stage", "describe", "csv", *data, "--cache-dir", cache, "--workers", 1,
                    *paper_sets(real, "describe.mode=logprob"))  # fmt: skip
    assert code == 0, out
    logprob = open_stage(cache, "paper-image", "describe")
    assert (
        logprob.fingerprint
        != open_stage(cache, "paper-image", "text").manifest["upstream"]["describe"]
    )
    assert list(logprob.table()["status"]) == ["ok"] * 4

    code, out = cli("train", "rsa", "paper-image", "--cache-dir", cache, "--runs-dir", runs,
                    "--run", "paper", "--splits", 1, "--epochs", 1, "--device", "cpu")  # fmt: skip
    assert code == 0, out
    image = sorted((tmp_path / "data" / "images").iterdir())[0]
    code, out = cli("predict", runs / "paper", image, "--json", "--device", "cpu")
    assert code == 0, out
    result = json.loads(out)[0]
    assert result["status"] == "ok" and np.isfinite(result["score"])


def test_paper_preset_videos_end_to_end(real, demo_video_data, tmp_path):
    data = four_items(demo_video_data, "video", tmp_path / "data", "video")
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    sets = paper_sets(real, "frames.num_frames=2")
    code, out = cli("features", "csv", *data, "--cache-dir", cache, "--workers", 1, *sets)
    assert code == 0, out
    clip = open_stage(cache, "paper-video", "clip")
    assert list(clip.table()["status"]) == ["ok"] * 4
    hidden = clip.array("hidden")
    assert hidden.shape == (4, 2, 577, 1024)  # 2 frames, 24x24 patches + CLS, width 1024
    code, out = cli("train", "scma", "paper-video", "--cache-dir", cache, "--runs-dir", runs,
                    "--run", "paper", "--splits", 1, "--epochs", 1, "--device", "cpu")  # fmt: skip
    assert code == 0, out
    video = sorted((tmp_path / "data").rglob("*.mp4"))[0]
    code, out = cli("predict", runs / "paper", video, "--json", "--device", "cpu")
    assert code == 0, out
    assert np.isfinite(json.loads(out)[0]["score"])

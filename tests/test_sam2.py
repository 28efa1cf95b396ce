"""SAM 2.1 as the region model (pipeline/models/sam2_build.py): the sam2 package's own
classes, configs and automatic mask generator, feeding the regions stage's partition;
``qfeat weights`` knows the official files and checks their shapes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from qfeat.cli.main import app
from qfeat.errors import DatasetError
from qfeat.pipeline.config import resolve_config
from qfeat.pipeline.stages import get_stage, stage_settings

TINY_SETS = ["regions.model=tiny-sam2.1", "regions.points_per_side=4"]


def regions_stage(sets: list[str]):
    cfg = resolve_config("tiny", sets, stage_settings())["regions"]
    return get_stage("regions")(cfg, seed=0)


def test_tiny_sam2_regions_are_the_package_generators_partition(demo_image_data):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.modeling.sam2_base import SAM2Base

    from qfeat.pipeline.images import open_image
    from qfeat.pipeline.regions import decode_rle

    stage = regions_stage(TINY_SETS)
    stage.check()
    stage.load()
    assert isinstance(stage.model, SAM2Base) and stage.model.image_size == 256
    assert isinstance(stage.generator, SAM2AutomaticMaskGenerator)
    path = sorted((demo_image_data / "images").glob("*.png"))[0]
    table, _ = stage.process_shard([{"item_id": "a", "path": str(path)}], {})
    (row,) = table.to_pylist()
    assert row["status"] == "ok" and len(row["region_id"]) >= 2
    masks = np.stack([decode_rle(r, row["height"], row["width"]) for r in row["rle"]])
    assert masks.sum(0).max() == 1  # a partition: every pixel in at most one region
    # the same regions straight from the package's generator (same settings, same seed)
    image = open_image(path, max_side=int(stage.cfg["max_side"]))
    with torch.inference_mode():
        records = stage.generator.generate(image)
    direct = stage.regions_row(image, records)
    assert direct["rle"] == row["rle"] and direct["region_id"] == row["region_id"]


def test_sam2_identity_and_missing_checkpoint_name_the_official_file():
    tiny = regions_stage(TINY_SETS).model_identity()
    assert tiny["name"] == "tiny-sam2.1" and tiny["arch"]
    stage = regions_stage(["regions.model=sam2.1_hiera_t"])
    with pytest.raises(DatasetError, match="sam2.1_hiera_tiny.pt"):
        stage.check()


def test_sam2_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sam2.automatic_mask_generator", None)
    with pytest.raises(DatasetError, match=r"qfeat\[sam2\]"):
        regions_stage(TINY_SETS).check()


def _weights(*args: str):
    return CliRunner().invoke(app, ["weights", "--json", *args], catch_exceptions=False)


def test_weights_knows_sam2_files_and_checks_their_shapes(tmp_path):
    from qfeat.pipeline.models.sam2_build import sam2_shapes

    shapes, params = sam2_shapes("sam2.1_hiera_t")
    # a checkpoint of the right shapes in the release's layout, each tensor one stored
    # element expanded (a few KB on disk: only shapes are checked)
    good = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": {k: torch.zeros(1).expand(s) for k, s in shapes.items()}}, good)
    sets = ["--preset", "paper", "--stages", "regions", "--set", "regions.model=sam2.1_hiera_t"]
    unset = json.loads(_weights(*sets).stdout)["weights"][0]
    assert unset["official"] == "sam2.1_hiera_tiny.pt" and unset["status"] == "not set"
    assert unset["parameters"] == params > 30_000_000  # hiera-t: ~39M
    ok = _weights(*sets, "--set", f"regions.checkpoint={good}")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["weights"][0]["status"] == "ok"
    small = ["--set", "regions.model=sam2.1_hiera_s", "--set", f"regions.checkpoint={good}"]
    wrong = _weights("--preset", "paper", "--stages", "regions", *small)
    row = json.loads(wrong.stdout)["weights"][0]
    assert wrong.exit_code == 1 and row["status"] == "wrong"
    assert "set regions.model=sam2.1_hiera_t" in row["message"]

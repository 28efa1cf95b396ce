"""A worker keeps the stage models it built between runs (a long-lived cluster given
with --scheduler): a weights file replaced under the same path is loaded again, not
served by the model built from the old file."""

from __future__ import annotations

import torch

from qfeat.cache.reader import open_stage


def test_a_weights_file_replaced_in_place_is_loaded_again(qfeat, demo_image_data, tmp_path):
    from distributed import LocalCluster
    from torchvision.models import resnet18

    weights = tmp_path / "resnet18.pth"

    def write(seed: int) -> None:
        torch.manual_seed(seed)
        torch.save(resnet18(weights=None).state_dict(), weights)

    def features(cache, address):
        result = qfeat("stage", "backbone", "demo", "--root", str(demo_image_data),
                       "--cache-dir", str(cache), "--limit", "2", "--scheduler", address,
                       "--set", "backbone.model=resnet18", "--set", f"backbone.weights={weights}",
                       "--set", "backbone.input_size=64")  # fmt: skip
        assert result.exit_code == 0, result.output
        stage = open_stage(cache, "demo", "backbone")
        return stage.manifest["model"]["sha256"], stage.array("features")

    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        write(0)
        old_sha, old = features(tmp_path / "a", cluster.scheduler_address)
        write(1)
        new_sha, new = features(tmp_path / "b", cluster.scheduler_address)
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        _, fresh = features(tmp_path / "c", cluster.scheduler_address)  # a new worker
    assert old_sha != new_sha
    assert not torch.allclose(torch.from_numpy(old), torch.from_numpy(new))
    assert torch.equal(torch.from_numpy(new), torch.from_numpy(fresh))

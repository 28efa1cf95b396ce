"""A worker's stage models on a long-lived cluster (--scheduler): a weights file replaced
under the same path is loaded again, not served by the model built from the old file,
and a stage's models are dropped when the stage ends."""

from __future__ import annotations

import torch

from qfeat.cache.reader import open_stage


def test_a_weights_file_replaced_in_place_is_loaded_again(qfeat, demo_image_data, tmp_path):
    from distributed import Client, LocalCluster
    from torchvision.models import resnet18

    from qfeat.pipeline import worker

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
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        write(0)
        old_sha, old = features(tmp_path / "a", cluster.scheduler_address)
        # the stage ended: its worker holds no model (the next stage gets the memory)
        assert list(client.run(lambda: len(worker._MODELS)).values()) == [0]
        write(1)
        new_sha, new = features(tmp_path / "b", cluster.scheduler_address)
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:  # fmt: skip
        _, fresh = features(tmp_path / "c", cluster.scheduler_address)  # a new worker
    assert old_sha != new_sha
    assert not torch.allclose(torch.from_numpy(old), torch.from_numpy(new))
    assert torch.equal(torch.from_numpy(new), torch.from_numpy(fresh))


def test_a_stage_without_a_model_never_imports_torch_on_its_worker(qfeat, demo_video_data,
                                                                   tmp_path):  # fmt: skip
    """frames decodes only: a new worker spends no seconds importing torch for it."""
    import sys

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        result = qfeat("stage", "frames", "demo-video", "--root", str(demo_video_data),
                       "--cache-dir", str(tmp_path), "--limit", "2",
                       "--scheduler", cluster.scheduler_address)  # fmt: skip
        assert result.exit_code == 0, result.output
        imported = client.run(lambda: "torch" in sys.modules)
    assert len(open_stage(tmp_path, "demo-video", "frames").table()) == 2
    assert list(imported.values()) == [False]

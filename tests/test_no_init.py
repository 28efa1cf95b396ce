"""A model built for a weights file skips its random init (pipeline/models/no_init.py):
every parameter must then come from the file, so a file that lacks one is refused.
(That a loaded model equals the one its file was written from, in open_clip's and in
Meta's format, is in test_clip_split.py.)"""

from __future__ import annotations

import pytest
import torch

from qfeat.pipeline.models import clip_build as cb
from qfeat.pipeline.models.no_init import skip_random_init


def test_random_fills_are_skipped_inside_only():
    torch.manual_seed(0)
    with skip_random_init():
        torch.nn.Linear(64, 64)  # kaiming fill skipped: draws nothing from the RNG
        marked = torch.full((4,), 7.0)
        assert torch.equal(torch.nn.init.normal_(marked), torch.full((4,), 7.0))
    after = torch.nn.Linear(64, 64)
    torch.manual_seed(0)
    assert torch.equal(after.weight, torch.nn.Linear(64, 64).weight)  # filled as usual
    assert not torch.equal(torch.nn.init.normal_(marked), torch.full((4,), 7.0))


def test_fills_bound_elsewhere_are_skipped_too():
    """nn.MultiheadAttention (open_clip's text towers) binds xavier_uniform_ at import;
    timm's Eva trunk (PE-Core) fills with timm's own trunc_normal_."""
    from timm.layers import trunc_normal_, trunc_normal_tf_

    def built() -> tuple[torch.Tensor, ...]:
        torch.manual_seed(0)
        mha = torch.nn.MultiheadAttention(16, 2)
        marked = torch.full((4,), 7.0)
        return mha.in_proj_weight.detach().clone(), trunc_normal_(marked.clone(), std=0.02)

    with skip_random_init():
        torch.manual_seed(0)
        torch.nn.MultiheadAttention(16, 2)  # draws nothing from the RNG
        after = torch.rand(3)
        assert torch.equal(trunc_normal_(torch.full((4,), 7.0)), torch.full((4,), 7.0))
        assert torch.equal(trunc_normal_tf_(torch.full((4,), 7.0)), torch.full((4,), 7.0))
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))
    weight, normal = built()
    assert weight.abs().max() > 0 and (normal != 7.0).all()  # filled again outside
    assert torch.equal(weight, built()[0])


def test_skipping_loads_no_library_of_its_own():
    """SAM's build (no timm) does not pay for importing timm."""
    import subprocess
    import sys

    code = ("import sys; from qfeat.pipeline.models.no_init import skip_random_init\n"
            "with skip_random_init(): pass\nprint('timm' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-pe"])
def test_a_file_missing_a_parameter_is_refused(name, tmp_path):
    model, _ = cb.build_clip(name, seed=0)
    state = model.state_dict()
    dropped = next(k for k in state if k.endswith("mlp.fc1.weight") or k.endswith("c_fc.weight"))
    del state[dropped]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="Missing key"):
        cb.build_clip(name, pretrained=str(path), seed=1)


def test_the_fills_are_back_after_a_failed_build(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"something.else": torch.zeros(2)}, path)
    with pytest.raises(RuntimeError, match="Missing key"):
        cb.build_clip("tiny-vit", pretrained=str(path), seed=1)
    marked = torch.full((4,), 7.0)
    assert not torch.equal(torch.nn.init.uniform_(marked), torch.full((4,), 7.0))


def test_sam_from_a_file_equals_the_model_it_was_written_from(tmp_path, monkeypatch):
    """build_sam with a checkpoint (the toy architecture standing in for vit_b's, which
    is built the same way): equal to the saved model; a file lacking a key is refused."""
    from qfeat.pipeline.models import sam

    monkeypatch.setitem(sam.sam_model_registry, "vit_b", lambda checkpoint=None: sam._tiny_sam())
    torch.manual_seed(3)
    written = sam._tiny_sam()
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(written.state_dict(), path)
    loaded = sam.build_sam("vit_b", str(path), seed=9)
    for key, value in written.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)
    partial = written.state_dict()
    del partial["mask_decoder.iou_prediction_head.layers.0.weight"]
    torch.save(partial, path)
    with pytest.raises(RuntimeError, match="Missing key"):
        sam.build_sam("vit_b", str(path))

"""benchmarks/gpu.py runs end to end with tiny sizes on the CPU (--dry-run), so the GPU
script cannot rot between the rare runs on a GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_dry_run(tmp_path):
    out = tmp_path / "gpu.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--dry-run", "--out", str(out)],
        cwd=REPO, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["device"] == "cpu"
    assert result["matmul"]["tflops"] > 0
    sam = result["sam"]
    assert sam["masks_stock"] == sam["masks_qfeat"] > 0 and sam["mean_matched_iou"] > 0.99
    fast = result["sam_speed"]  # the ViT-H / hiera-l comparisons, on the toy models
    assert fast["sam2_model"] == "sam2.1_hiera_l" and fast["encoder"]["fp32_max_abs_diff"] < 1e-3
    assert fast["masks"]["sam_masks_stock_vs_qfeat"] > 0 and fast["sam2"]["sam_vs_sam2_1"] > 0
    assert result["clip"]["frames_per_s"] > 0 and result["clip"]["tflops"] > 0
    assert result["describe"]["regions_per_s"] > 0 and result["describe"]["new_tokens"] == 8
    assert result["scma"]["step_s"] > 0 and result["scma"]["trainable_params"] > 0
    assert {"cpu", "cores", "torch"} <= set(result["machine"])

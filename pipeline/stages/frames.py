"""``frames``: a cheap low-resolution pass over every frame, then T chosen frame indices.

Columns: ``n_frames``, ``fps``, ``duration``, ``width``, ``height``, ``indices`` (T ints),
``diff`` (the per-frame difference curve, fp16), ``reader`` (decord or pyav), ``padded``
(fewer than T frames, indices repeat). No model: the work is decoding.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from qfeat.errors import ItemError
from qfeat.pipeline.stages.base import Stage
from qfeat.pipeline.stages.settings import FramesSettings
from qfeat.pipeline.video.reader import VideoError, read_video
from qfeat.pipeline.video.sampling import frame_differences, sample


class FramesStage(Stage):
    name = "frames"
    help = "frame-difference sampling of T frames per video"
    settings = FramesSettings
    uses_torch = False  # decoding only
    version = 1
    modality = "video"

    def model_identity(self) -> dict[str, Any]:
        return {"name": "frame-difference", "reader": "decord|pyav"}

    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("n_frames", pa.int32()),
                ("fps", pa.float32()),
                ("duration", pa.float32()),
                ("width", pa.int32()),
                ("height", pa.int32()),
                ("indices", pa.list_(pa.int32())),
                ("diff", pa.list_(pa.float16())),
                ("reader", pa.string()),
                ("padded", pa.bool_()),
            ]
        )

    def process_item(self, item: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
        path = Path(item["path"])
        lowres = int(self.cfg["lowres"])
        try:
            luma, reader = read_video(path, lambda r: r.lowres_luma(lowres))
        except VideoError as exc:
            raise ItemError(exc.kind, str(exc)) from exc
        if len(luma) == 0:
            raise ItemError("no_frames", f"{path.name}: no decodable frame")
        diff = frame_differences(luma)
        # A per-item seed: the random sampler gives the same frames for the same video.
        seed = zlib.crc32(f"{self.seed}:{item['item_id']}".encode())
        indices, padded = sample(diff, int(self.cfg["num_frames"]), self.cfg["strategy"], seed)
        info = reader.info
        return {
            "n_frames": len(luma),
            "fps": info.fps,
            "duration": len(luma) / info.fps if info.fps > 0 else 0.0,
            "width": info.width,
            "height": info.height,
            "indices": indices,
            "diff": diff.astype(np.float16),
            "reader": reader.name,
            "padded": padded,
        }

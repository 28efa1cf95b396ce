"""LIVE-Qualcomm Mobile In-Capture VQA (Ghadiyaram et al. 2017): 208 raw YUV videos.

``qualcommSubjectiveData.mat`` holds two structs: ``qualcommVideoData`` (vidNames,
distortionNames, distortionType: 1-based index into distortionNames) and
``qualcommSubjectiveData`` (unBiasedMOS, about 0–100). Videos are headerless
YUV 4:2:0 8-bit, 1920x1080, 30 fps, at ``<distortionName>/<vidName>``.
"""

from __future__ import annotations

from qfeat.errors import DatasetError
from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import (
    as_float_list,
    as_str_list,
    mat_field,
    mat_var,
    read_mat,
)

MAT = "qualcommSubjectiveData.mat"


class LIVEQualcomm(DatasetAdapter):
    name = "live-qualcomm"
    modality = "video"
    layout = f"{MAT} (qualcommVideoData, qualcommSubjectiveData) + <Distortion>/<vidName>.yuv"
    scale = ScoreScale(0.0, 100.0)
    raw_video = (1920, 1080, 30.0)  # width, height, fps of the headerless yuv420p files

    def list_items(self) -> Listing:
        path = self.require_file(MAT)
        mat = read_mat(path)
        video = mat_var(mat, "qualcommVideoData", path)
        subjective = mat_var(mat, "qualcommSubjectiveData", path)
        names = as_str_list(mat_field(video, "vidNames", path))
        kinds = as_str_list(mat_field(video, "distortionNames", path))
        types = [int(t) for t in as_float_list(mat_field(video, "distortionType", path))]
        scores = as_float_list(mat_field(subjective, "unBiasedMOS", path))
        if not len(names) == len(types) == len(scores):
            raise DatasetError(
                f"{path}: {len(names)} names, {len(types)} distortion types, {len(scores)} scores"
            )
        listing = Listing()
        for name, kind, mos in zip(names, types, scores, strict=True):
            if not 1 <= kind <= len(kinds):
                raise DatasetError(f"{path}: distortionType {kind} out of range for {name}")
            scene = "_".join(name.split("_")[:2])
            self.make_item(listing, f"{kinds[kind - 1]}/{name}", mos, group=scene, source=name)
        return listing

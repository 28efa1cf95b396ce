"""LIVE In the Wild Image Quality Challenge (Ghadiyaram & Bovik 2016): 1,162 images.

``Data/AllImages_release.mat`` (cell array of 1169 names) and ``Data/AllMOS_release.mat``
(1x1169 MOS, about 0–100). The first 7 names (t1.bmp .. t7.bmp) are the subjects'
training images in ``Images/trainingImages/``; like everyone, they are left out unless
``--option training_images=true``.
"""

from __future__ import annotations

from qfeat.errors import DatasetError
from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import as_float_list, as_str_list, mat_var, read_mat

N_TRAINING = 7


class LIVEChallenge(DatasetAdapter):
    name = "livec"
    modality = "image"
    layout = "Data/AllImages_release.mat + Data/AllMOS_release.mat + Images/<name>.bmp"
    scale = ScoreScale(0.0, 100.0)
    options = {"training_images": "false"}

    def list_items(self) -> Listing:
        names_path = self.require_file("Data/AllImages_release.mat")
        mos_path = self.require_file("Data/AllMOS_release.mat")
        names = as_str_list(mat_var(read_mat(names_path), "AllImages_release", names_path))
        scores = as_float_list(mat_var(read_mat(mos_path), "AllMOS_release", mos_path))
        if len(names) != len(scores):
            raise DatasetError(
                f"livec: {len(names)} names but {len(scores)} scores; are both .mat files "
                "from the same release?"
            )
        keep_training = self.opts["training_images"].lower() in ("true", "1", "yes")
        listing = Listing()
        for i, (name, mos) in enumerate(zip(names, scores, strict=True)):
            training = i < N_TRAINING and name.startswith("t")
            if training and not keep_training:
                continue
            folder = "Images/trainingImages" if training else "Images"
            self.make_item(listing, f"{folder}/{name}", mos, group=name, source=name)
        return listing

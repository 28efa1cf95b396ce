"""KADID-10k (Lin et al. 2019): 81 references x 25 distortions x 5 levels, DMOS 1–5."""

from __future__ import annotations

from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_csv, require_columns


class KADID(DatasetAdapter):
    name = "kadid"
    modality = "image"
    layout = "dmos.csv (dist_img, ref_img, dmos, var) + images/ holding dist_img files"
    # Despite the name, KADID's "dmos" is a mean opinion score: 5 = best quality.
    scale = ScoreScale(1.0, 5.0, higher_is_better=True)

    def list_items(self) -> Listing:
        path = self.require_file("dmos.csv")
        rows = read_csv(path)
        require_columns(rows, ["dist_img", "ref_img", "dmos"], path)
        listing = Listing()
        for row in rows:
            # Group by reference image: content-disjoint splits keep all 125 versions
            # of one reference on the same side.
            name = row["dist_img"]
            self.make_item(
                listing, f"images/{name}", row["dmos"], group=row["ref_img"], source=name
            )
        return listing

"""Building a real-size model for its weights file: with vs. without the random init.

``build_clip(name, pretrained=FILE)`` and ``build_sam(model, FILE)`` build the
architecture inside :func:`qfeat.pipeline.models.no_init.skip_random_init`, because the
strict load that follows replaces every parameter. This times the architecture build
alone (no file read, which is the same on both sides), random init first, then skipped,
``--repeats`` times each on CPU, and reports the best of each.
``model_build_init_vs_skip`` = init time / skipped time, for PE-Core-L-14-336.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from benchmarks.common import options, record


def best_of(build: Callable[[], Any], repeats: int, skip: bool) -> float:
    from qfeat.pipeline.models.no_init import skip_random_init

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with skip_random_init() if skip else nullcontext():
            build()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    import open_clip
    from segment_anything import sam_model_registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = options(parser, argv)
    logging.getLogger().setLevel(logging.ERROR)
    builds = {
        "PE-Core-L-14-336": lambda: open_clip.create_model("PE-Core-L-14-336"),
        "ViT-B-16": lambda: open_clip.create_model("ViT-B-16"),
        "sam_vit_b": lambda: sam_model_registry["vit_b"](checkpoint=None),
    }
    if args.dry_run:  # the same code on a model small enough for the tests
        from qfeat.pipeline.models.sam import _tiny_sam

        builds, args.repeats = {"tiny_sam": _tiny_sam}, 1
    results = {}
    for name, build in builds.items():
        init, skipped = best_of(build, args.repeats, False), best_of(build, args.repeats, True)
        results[name] = {"init_s": round(init, 4), "skip_s": round(skipped, 4)}
        print(f"{name}: random init {init:.2f} s, skipped {skipped:.2f} s ({init / skipped:.1f}x)")
    pe = next(iter(results.values()))  # PE-Core-L-14-336 (the dry run: tiny_sam)
    record("ratios", {"model_build_init_vs_skip": round(pe["init_s"] / pe["skip_s"], 2)})
    record("model_build", results)


if __name__ == "__main__":
    main()

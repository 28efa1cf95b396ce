"""`qfeat import qclip CHECKPOINT DATASET`, `qfeat export qclip RUN`: checkpoints of the
Q-CLIP authors' release (xiao-mi-d/Q-CLIP) as qfeat runs, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qfeat.cli.errors import user_errors
from qfeat.cli.shown import shown
from qfeat.cli.train import (
    CacheDirOpt,
    DeviceOpt,
    RunOpt,
    RunsDirOpt,
    SeedOpt,
    SplitsOpt,
    _common,
    console,
    print_run,
    training_progress,
)
from qfeat.pipeline.paths import runs_dir as default_runs_dir

import_app = typer.Typer(help="Bring models trained elsewhere into qfeat.", no_args_is_help=True)
export_app = typer.Typer(help="Write qfeat runs in other code's formats.", no_args_is_help=True)


@import_app.command("qclip")
def import_qclip(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint the release's train.py saved.")],
    dataset: Annotated[str, typer.Argument(help="A cached video dataset to evaluate it on.")],
    cache_dir: CacheDirOpt = None,
    runs_dir: RunsDirOpt = None,
    run: RunOpt = None,
    splits: SplitsOpt = 10,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    adapter_start_layer: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="The release's adapter_start_layer (default: the first block whose adapter "
            "was trained); refused unless L minus it is the cache's clip.adapted_blocks.",
        ),
    ] = None,
) -> None:
    """A run folder from a Q-CLIP release checkpoint: its weights, tested on DATASET's splits."""
    from qfeat.trainers.scma_release import import_state
    from qfeat.trainers.scma_train import ScmaRequest, train_scma

    with user_errors():
        common = _common({
            "dataset": dataset, "cache_dir": cache_dir, "runs_dir": runs_dir, "run": run,
            "splits": splits, "epochs": None, "seed": seed, "device": device, "set_": None,
        })  # fmt: skip
        state, r, clip_cfg = import_state(
            checkpoint, common["cache_dir"], dataset, adapter_start_layer
        )
        if clip_cfg.get("rope", "pe") != "qclip-release" and str(clip_cfg["model"]).startswith(
            "PE-"
        ):
            console.print(
                f"[yellow]{shown(dataset)}'s clip cache uses "
                f"clip.rope={clip_cfg.get('rope', 'pe')}; "
                "models trained with the release expect qclip-release (recompute with --set "
                "clip.rope=qclip-release to get the release's numbers)"
            )
        common["sets"] = [f"scma.r={r}"]
        request = ScmaRequest(**common, init=str(checkpoint), init_state=state, imported=True)
        with training_progress() as (log, progress):
            folder, metrics = train_scma(request, log=log, progress=progress)
    print_run(metrics, f"qclip {checkpoint.name} on {dataset} (imported, not trained)", folder)


@export_app.command("qclip")
def export_qclip(
    run: Annotated[Path, typer.Argument(help="An scma run folder, or its name.")],
    split: Annotated[int, typer.Option(min=0, help="Which split's checkpoint.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output file (default: RUN/qclip.pth).")] = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Write an scma run's split as a checkpoint the Q-CLIP release's train.py loads."""
    from qfeat.trainers.runfolder import RunFolder
    from qfeat.trainers.scma_release import export_run

    with user_errors():
        folder = RunFolder.find(run, default_runs_dir(runs_dir))
        target = out or folder.path / f"qclip-split{split:02d}.pth"
        info = export_run(folder, split, target)
    console.print(
        f"wrote {shown(target.resolve())}: load it with the release's load_checkpoint "
        "(strict=False) "
        f"into QCLIP(adapter_start_layer={info['adapter_start_layer']}, "
        f"shared_dim={info['shared_dim']})"
    )
    if info["rope"] != "qclip-release":
        console.print(
            f"[yellow]trained with clip.rope={info['rope']}: the release's PE rotates tokens in "
            "its own order (qfeat's qclip-release), so its scores will differ"
        )

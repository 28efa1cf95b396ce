"""`qfeat weights`: the files a preset's models need, and a check of the ones given.

    qfeat weights --preset paper
    qfeat weights --preset paper --set regions.checkpoint=/models/sam_vit_h_4b8939.pth ...

Each given path is opened (shapes only), compared with the architecture the preset asks
for, and hashed (sha256, remembered for the next `qfeat features`). The good ones come
back as the exact `--set` line to use; a wrong file gets one line naming the key and the
shapes that differ. Exit 1 when a given path is wrong or missing.
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer
from rich.table import Table

from qfeat.cli.console import make_console
from qfeat.cli.errors import EXIT_DATA, user_errors
from qfeat.cli.features import Preset, Sets
from qfeat.cli.shown import shown

app = typer.Typer()
console = make_console()
STYLE = {"ok": "green", "wrong": "red", "missing": "red", "unreachable": "red",
         "not set": "yellow"}  # fmt: skip
BAD = ("wrong", "missing", "unreachable")  # exit 1


@app.command("weights")
def weights(
    preset: Preset = "paper",
    set_: Sets = None,
    stages: Annotated[
        str | None, typer.Option(help="Comma-separated stages (default: every stage).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the weights files a preset needs; check, hash and echo the ones given."""
    from qfeat.pipeline.config import resolve_config
    from qfeat.pipeline.models.vlm import quiet_transformers
    from qfeat.pipeline.models.weights_table import needs, weights_stages
    from qfeat.pipeline.preflight import check_need, choose_stages
    from qfeat.pipeline.stages import stage_settings

    with user_errors():
        cfg = resolve_config(preset or "paper", list(set_ or []), stage_settings())
        named = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
        chosen = choose_stages(named) if named else list(weights_stages())
        quiet_transformers()
        # the same check `qfeat features` runs before any work (qfeat.pipeline.preflight)
        rows = [check_need(need, cfg) for need in needs(cfg, chosen)]
    good = [r for r in rows if r.status == "ok"]
    bad = [r for r in rows if r.status in BAD]
    # the other --set values given (e.g. regions.model=vit_b) belong to the same line
    weights_keys = {r.setting for r in rows}
    others = [s for s in set_ or [] if s.partition("=")[0].strip() not in weights_keys]
    line = " ".join(
        [f"--preset {shlex.quote(cfg['preset'])}"]
        + [f"--set {shlex.quote(s)}" for s in others]
        + [f"--set {shlex.quote(f'{r.setting}={r.given}')}" for r in good]
    )
    if as_json:
        out = {"preset": cfg["preset"], "weights": [r.as_dict() for r in rows], "use": line}
        typer.echo(json.dumps(out, indent=2))
    else:
        _print(rows, line if good else "")
    if bad:
        raise typer.Exit(EXIT_DATA)


def _print(rows, line: str) -> None:
    table = Table(title="weights the configuration needs", title_justify="left")
    for column in ("setting", "architecture", "official file", "≈ size", "given", "check"):
        table.add_column(column, overflow="fold")
    for r in rows:
        size = f"{r.size_gb:.2f} GB" if r.size_gb is not None else "-"
        status = f"[{STYLE.get(r.status, 'white')}]{r.status}[/]"
        table.add_row(r.setting, shown(r.architecture), shown(r.official), size,
                      shown(r.given or "-"), status)  # fmt: skip
    console.print(table)
    for r in rows:
        if r.status in BAD:
            console.print(f"[red]{r.setting}={shown(r.given)}: {shown(r.message)}[/]")
        elif r.status == "ok":
            console.print(f"{r.setting}: sha256 {r.sha256} ({r.parameters:,} parameters)")
        elif r.status == "not set":
            console.print(f"{r.setting}: not set; get {shown(r.official)} from {shown(r.where)}")
    if line:
        console.print("use:", shown(line))

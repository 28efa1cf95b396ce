"""Issue 36 item 9: output read at 80 columns (piped, SLURM logs) never folds words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.table import Table

from qfeat.cli.console import PIPED_WIDTH, make_console

REPO = Path(__file__).resolve().parents[1]


def test_a_piped_console_ignores_columns_and_keeps_rows_whole(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    console = make_console()  # stdout is captured here: not a terminal
    assert console.width == PIPED_WIDTH and not console.is_terminal
    table = Table()
    for name in ("setting", "given"):
        table.add_column(name, overflow="fold")
    table.add_row("regions.checkpoint", "/data/models/" + "x" * 90 + "/demo-video/sam.pth")
    console.print(table)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "regions.checkpoint" in line)
    assert (
        "/demo-video/sam.pth" in row and len(out.splitlines()) == 5
    )  # top, head, rule, row, bottom


def test_qfeat_piped_at_80_columns_folds_nothing():
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "qfeat", "datasets"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    koniq = next(line for line in done.stdout.splitlines() if line.startswith("│ koniq "))
    assert "koniq10k_distributions_sets.csv (set column) beside it" in koniq

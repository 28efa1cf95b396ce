"""``python -m qfeat``: the same as the ``qfeat`` command."""

from qfeat.cli.main import app

app(prog_name="qfeat")

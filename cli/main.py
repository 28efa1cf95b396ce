"""The ``qfeat`` command: joins the sub-apps, one per file."""

from __future__ import annotations

import logging

import typer

from qfeat.cli import cache, datasets, features, qclip, report, runs, train, version, weights
from qfeat.cli import predict as predict_cli

app = typer.Typer(
    name="qfeat",
    help="Compute IQA/VQA features once into a cache, then train small quality heads on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.registered_commands.extend(version.app.registered_commands)
app.registered_commands.extend(features.app.registered_commands)
app.registered_commands.extend(train.eval_app.registered_commands)
app.registered_commands.extend(report.app.registered_commands)
app.registered_commands.extend(predict_cli.app.registered_commands)
app.registered_commands.extend(runs.app.registered_commands)
app.registered_commands.extend(weights.app.registered_commands)
app.add_typer(datasets.app, name="datasets")
app.add_typer(cache.app, name="cache")
app.add_typer(train.app, name="train")
app.add_typer(qclip.import_app, name="import")
app.add_typer(qclip.export_app, name="export")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"qfeat {version.qfeat_version()}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
):
    """qfeat: learned image and video quality assessment from a feature cache."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="qfeat")

"""The ``qfeat`` command: joins the sub-apps, one per file."""

from __future__ import annotations

import logging

import typer

from cli import cache, datasets, features, report, train, version
from cli import predict as predict_cli

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
app.add_typer(datasets.app, name="datasets")
app.add_typer(cache.app, name="cache")
app.add_typer(train.app, name="train")


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")):
    """qfeat: learned image and video quality assessment from a feature cache."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":  # pragma: no cover
    app()

"""qfeat's command line: one Typer sub-app per file, joined in ``qfeat.cli.main``."""

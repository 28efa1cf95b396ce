"""Text from data (item ids, paths, model output, error reasons) as the terminal shows it.

Item ids come from users' metadata and may hold rich markup (``[/bold]`` crashed
``datasets check``) or terminal escape sequences; :func:`shown` escapes the markup and
makes control characters visible (``\\x1b``) instead of letting them act.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape


def visible(value: Any) -> str:
    """``value`` as text with control characters shown as escapes (``\\x1b``, ``\\r``),
    for output that is not rich markup (``typer.echo``)."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode()
        for ch in str(value)
    )


def shown(value: Any) -> str:
    """:func:`visible`, with rich markup escaped too (for ``console.print``)."""
    return escape(visible(value))

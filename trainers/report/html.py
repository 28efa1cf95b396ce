"""The report's HTML: one self-contained page, every text from data escaped.

Rules that keep the page safe to open and to archive:

- every string that comes from data or a model (item ids, paths, descriptions, raw
  model text, dataset names, notes) goes through :func:`esc`; only fragments this module
  builds are marked :class:`Html` and inserted as they are;
- images are ``data:`` URIs; styles are inline; the only script is :data:`SCRIPT`
  (it counts decoded images into ``<body data-images-decoded>``), allowed by its hash in
  a Content-Security-Policy that forbids every other source, so even a string that
  escaped escaping could neither run nor load anything from the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable
from typing import Any

SCRIPT = (
    "window.addEventListener('load',function(){"
    "var imgs=Array.prototype.slice.call(document.images);"
    "var ok=imgs.filter(function(i){return i.complete&&i.naturalWidth>0;}).length;"
    "document.body.setAttribute('data-images-total',String(imgs.length));"
    "document.body.setAttribute('data-images-decoded',String(ok));});"
)
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1180px;padding:16px 24px;color:#1d232b;background:#fff;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #d9dee5;
padding-bottom:4px;margin-top:1.6em}h3{font-size:1em;margin:.2em 0 .4em}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0}
th,td{border:1px solid #d9dee5;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.92em;word-break:break-all}.muted{color:#667085}
.cols,.plots,.media,.frames{display:flex;flex-wrap:wrap;gap:12px 28px;align-items:flex-start}
figure{margin:0}#plots figure img{max-height:280px;width:auto}
.cols h3{margin-top:0}
figcaption{font-size:.8em;color:#667085}
.frames figure img{max-width:160px;image-rendering:auto}
img{max-width:100%;height:auto;border:1px solid #eef0f3}
.sample{border:1px solid #d9dee5;border-radius:6px;padding:10px 14px;margin:12px 0}
.badge{display:inline-block;font-size:.75em;font-weight:600;padding:1px 7px;
border-radius:9px;color:#fff;text-transform:uppercase;letter-spacing:.04em}
.best .badge{background:#2e7d32}.median .badge{background:#8d6e00}
.worst .badge{background:#b3261e}.swatch{display:inline-block;width:14px;height:14px;
border:1px solid #888;vertical-align:middle}.note{font-size:.88em;color:#8d4b00}
.raw{font-family:ui-monospace,monospace;font-size:.85em;color:#667085;white-space:pre-wrap;
word-break:break-all}
"""


class Html(str):
    """A fragment of markup built here: inserted without escaping."""


def esc(value: Any) -> Html:
    """``value`` as HTML text: markup characters escaped (quotes too, so it is safe in
    attributes), control characters removed. :class:`Html` passes through unchanged."""
    if isinstance(value, Html):
        return value
    text = "" if value is None else str(value)
    return Html(html.escape(_CONTROL.sub("", text), quote=True))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, content: Any = "", **attrs: Any) -> Html:
    """``<name attrs>content</name>``; attribute values are escaped (``class_`` ->
    ``class``, ``data_x`` -> ``data-x``)."""
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None
    )
    return Html(f"<{name}{rendered}>{esc(content)}</{name}>")


def mime_of(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    raise ValueError("report images must be PNG or JPEG")


def img(data: bytes, alt: str, **attrs: Any) -> Html:
    uri = f"data:{mime_of(data)};base64,{base64.b64encode(data).decode('ascii')}"
    rendered = "".join(f' {k.rstrip("_")}="{esc(v)}"' for k, v in attrs.items())
    return Html(f'<img src="{uri}" alt="{esc(alt)}"{rendered}>')


def figure(data: bytes | None, caption: Any, alt: str) -> Html:
    if data is None:
        return tag("p", join([caption, ": not available"]), class_="note")
    return tag("figure", join([img(data, alt), tag("figcaption", caption)]))


def number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


def table(header: list[Any], rows: list[list[Any]], numeric: set[int] = frozenset()) -> Html:
    """A table (no head row when ``header`` is empty); cells are escaped unless
    :class:`Html`; the columns in ``numeric`` are right-aligned."""
    head = tag("thead", tag("tr", join(tag("th", h) for h in header))) if header else ""
    body = join(
        tag("tr", join(tag("td", c, class_="num" if i in numeric else None)
                       for i, c in enumerate(row)))
        for row in rows
    )  # fmt: skip
    return tag("table", join([head, tag("tbody", body)]))


def notes(lines: Iterable[str]) -> Html:
    return join(tag("p", line, class_="note") for line in lines)


def page(title: str, body: Html) -> str:
    """The whole document."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f'<body data-images-decoded="pending">\n{body}\n<script>{SCRIPT}</script>\n'
        "</body></html>\n"
    )

"""`qfeat report`: escaping and sample choice as units, then real reports of an rsa and
an scma run rendered in headless Chromium (sections present, every image a decoded
``data:`` URI, no console messages, hostile model text shown as text, a screenshot).

Chromium is the Debian package ``chromium``; when it is missing and the tests run as
root with apt-get, the session fixture installs it (as ``.ci/run`` does), otherwise the
browser tests fail with the command to run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qfeat.cli.main import app
from qfeat.trainers.report import build_report
from qfeat.trainers.report.html import SCRIPT, esc, tag
from qfeat.trainers.report.samples import choose_samples, map_predictions, map_split
from tests.cache_helpers import record_edit

EVIL = "<script>alert(1)</script><img src=x onerror=alert(2)>"
EVIL_RUN = "run-<img src=x onerror=alert(3)>"
SECTIONS = {"summary", "metrics", "plots", "samples"}


def qfeat(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# -- units: escaping and the choice of samples ------------------------------------------


def test_escape_makes_markup_text():
    assert esc(EVIL) == ("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;")
    assert esc("a\"b'c&d") == "a&quot;b&#x27;c&amp;d"
    assert esc("ok\x00\x1b[31m\x7f") == "ok[31m"  # control characters dropped
    assert esc(None) == "" and esc(esc("<b>")) == "&lt;b&gt;"  # escaped once only
    cell = tag("td", EVIL, title=EVIL, class_="x")
    assert "<script" not in cell and "<img" not in cell
    assert cell.startswith('<td title="&lt;script&gt;') and 'class="x"' in cell


def _frame(errors: dict[str, float], split: str = "test@0") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": list(errors),
            "split": split,
            "mos": 3.0,
            "pred": 0.0,
            "mapped": [3.0 + e for e in errors.values()],
            "error": list(errors.values()),
            "mapping": "logistic",
        }
    )


def test_samples_are_best_median_worst_by_absolute_error():
    errors = {f"i{k:02d}": float(e) for k, e in enumerate([5, 0.1, 3, 0.3, 9, 2, 0.2, 4, 7, 1, 6])}
    chosen = choose_samples(_frame(errors))
    by_kind = {k: [s.item_id for s in chosen if s.kind == k] for k in ("best", "median", "worst")}
    ranked = sorted(errors, key=errors.get)  # 0.1 0.2 0.3 1 2 3 4 5 6 7 9
    assert by_kind["best"] == ranked[:3]
    assert by_kind["worst"] == ranked[::-1][:3]  # largest first
    assert by_kind["median"] == ranked[4:7]  # around the middle (index 5 of 11)
    assert all(s.error == errors[s.item_id] for s in chosen)


def test_samples_take_each_item_once_and_share_few_items():
    twice = pd.concat([_frame({"a": 0.1, "b": 0.5}), _frame({"a": 2.0, "b": 0.2}, "test@1")])
    chosen = choose_samples(twice.reset_index(drop=True))
    assert sorted(s.item_id for s in chosen) == ["a", "b"]
    assert [(s.kind, s.item_id, s.split, s.split_index) for s in chosen][0] == (
        "best",
        "a",
        "test@0",
        0,
    )
    six = choose_samples(_frame({c: float(i) for i, c in enumerate("abcdef")}))
    assert [s.kind for s in six] == ["best", "best", "median", "median", "worst", "worst"]
    assert choose_samples(_frame({})) == []


def test_predictions_mapped_to_mos_per_split():
    mos = np.linspace(1, 5, 20)
    frame = pd.DataFrame(
        {
            "item_id": [f"x{i}" for i in range(40)],
            "split": ["test@0"] * 20 + ["test@1"] * 20,
            "mos": np.concatenate([mos, mos]),
            # split 0: a monotonic function of MOS; split 1: constant
            "pred": np.concatenate([0.1 * mos**1.5, np.full(20, 0.7)]),
        }
    )
    mapped = map_predictions(frame)
    first, second = mapped[mapped["split"] == "test@0"], mapped[mapped["split"] == "test@1"]
    assert set(first["mapping"]) == {"logistic"} and first["error"].max() < 0.2
    assert set(second["mapping"]) == {"constant"}
    np.testing.assert_allclose(second["mapped"], 3.0)
    line, kind = map_split(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert kind == "linear" and np.allclose(line, [1, 2, 3])


# -- real runs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evil_run(rsa_run, tmp_path_factory) -> Path:
    """A copy of the rsa run and its cache whose region descriptions (and run name) are
    markup, as a model or a user could produce."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("report-evil")
    config = json.loads((rsa_run / "config.json").read_text())
    cache = root / "cache"
    shutil.copytree(config["cache"]["dir"], cache)
    describe = cache / "demo" / "describe" / config["cache"]["describe"]
    for shard in sorted(describe.glob("shard-*.parquet")):
        table = pq.read_table(shard)
        content = [[EVIL] * len(ids) for ids in table.column("region_id").to_pylist()]
        index = table.schema.get_field_index("content")
        table = table.set_column(index, "content", pa.array(content, pa.list_(pa.string())))
        pq.write_table(table, shard)
        record_edit(describe, int(shard.name[6:11]))
    run = root / "runs" / EVIL_RUN
    shutil.copytree(rsa_run, run)
    config["cache"]["dir"] = str(cache)
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary; installed with apt-get when missing (root only)."""
    path = shutil.which("chromium")
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=1200).returncode:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True,
                           timeout=600)  # fmt: skip
            subprocess.run(install, env=env, capture_output=True, timeout=1200)
        path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "the report's browser tests need headless Chromium: install the Debian package "
            "with `apt-get install -y chromium` (as root), then run the tests again"
        )
    return path


class Dom(HTMLParser):
    """Start tags (name, attributes) and the text of a serialised DOM."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, name, attrs):
        self.tags.append((name, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag_name, attrs in self.tags if tag_name == name]


def browse(chromium: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--disable-default-apps",
            f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
            *extra, page.resolve().as_uri()]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def render(chromium: str, page: Path, tmp: Path) -> Dom:
    """The DOM Chromium built from ``page``, after checking it logged no console message."""
    done = browse(chromium, page, tmp, "--dump-dom")
    console = [
        line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line
    ]
    assert not console, "\n".join(console)
    return Dom(done.stdout)


def check_page(dom: Dom, kinds: set[str]) -> None:
    assert {a.get("id") for a in dom.all("section")} >= SECTIONS
    images = dom.all("img")
    assert len(images) >= 4
    assert all(str(a.get("src")).startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
               for a in images)  # fmt: skip
    body = dom.all("body")[0]
    assert body.get("data-images-total") == str(len(images))
    assert body.get("data-images-decoded") == str(len(images)), "an image did not decode"
    assert {a.get("data-kind") for a in dom.all("article")} == kinds
    assert not any(dom.all(name) for name in ("iframe", "object", "embed", "base", "form"))
    assert dom.all("link") == [{"rel": "icon", "href": "data:,"}]  # no favicon request
    # the only script is the report's own, and it has no source but itself
    assert [a for a in dom.all("script")] == [{}]
    assert all(not any(k.startswith("on") for k in attrs) for _, attrs in dom.tags)


def test_rsa_report_renders(rsa_run, chromium, tmp_path):
    out = build_report(rsa_run, tmp_path / "rsa.html")
    markup = out.read_text()
    assert SCRIPT in markup and "http://" not in markup and "https://" not in markup
    dom = render(chromium, out, tmp_path)
    check_page(dom, {"best", "median", "worst"})
    text = " ".join(dom.text)
    params = json.loads((rsa_run / "metrics.json").read_text())["trainable_params"]
    for words in ("trainable parameters", f"{params:,}", "PLCC (logistic)", "coloured by RSA"):
        assert words in text
    assert "changed since training" not in text  # weights recomputed from the same inputs
    config = json.loads((rsa_run / "config.json").read_text())
    assert all(config["cache"][s] in text for s in ("backbone", "regions", "describe", "text"))
    # a picture and an overlay with its legend per sample, plus the scatter and curves
    samples = len(dom.all("article"))
    assert len(dom.all("img")) == 2 + 2 * samples
    shot = tmp_path / "rsa.png"
    browse(chromium, out, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000",
           "--hide-scrollbars")  # fmt: skip
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        assert np.asarray(image.convert("L")).std() > 10  # not a blank page


def test_scma_report_renders(scma_run, chromium, tmp_path):
    out = build_report(scma_run, tmp_path / "scma.html")
    dom = render(chromium, out, tmp_path)
    check_page(dom, {"best", "median", "worst"})
    text = " ".join(dom.text)
    for words in ("frame-difference curve", "cosine similarity", "excellent", "score weight w"):
        assert words in text
    assert "changed since training" not in text
    frames = [a for a in dom.all("img") if str(a.get("alt")).startswith("frame ")]
    samples = len(dom.all("article"))
    assert len(frames) >= 4 * samples  # the chosen frames of every sample were decoded


def test_model_text_is_escaped(evil_run, chromium, tmp_path):
    out = build_report(evil_run, tmp_path / "evil.html")
    markup = out.read_text()
    assert EVIL not in markup and EVIL_RUN not in markup
    assert esc(EVIL) in markup and esc(EVIL_RUN) in markup
    dom = render(chromium, out, tmp_path)
    check_page(dom, {"best", "median", "worst"})
    text = " ".join(dom.text)
    assert EVIL in text and EVIL_RUN in text  # shown as text...
    assert all(str(a.get("src")).startswith("data:") for a in dom.all("img"))  # ...not as tags


def test_global_run_shows_the_picture_and_says_why(rsa_run, tmp_path):
    config = json.loads((rsa_run / "config.json").read_text())
    result = qfeat("train", "rsa", "demo", "--splits", "2", "--epochs", "1", "--attention",
                   "global", "--cache-dir", config["cache"]["dir"], "--runs-dir", str(tmp_path),
                   "--run", "global", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    dom = Dom(build_report(tmp_path / "global").read_text())
    assert (tmp_path / "global" / "report.html").is_file()
    text = " ".join(dom.text)
    assert "no region weights" in text and "changed since training" not in text
    pictures = [a for a in dom.all("img") if a.get("alt") == "picture"]
    assert len(pictures) == len(dom.all("article")) > 0
    assert not [a for a in dom.all("img") if a.get("alt") == "regions coloured by weight"]


def test_cli_report_prints_the_page_absolute(rsa_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = qfeat("report", str(rsa_run), "--out", "rel.html")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == str(tmp_path / "rel.html")


def test_cli_report(rsa_run, tmp_path):
    result = qfeat("report", rsa_run.name, "--runs-dir", str(rsa_run.parent), "--out",
                   str(tmp_path / "r.html"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "r.html") in result.output and "rsa on demo: test SRCC" in result.output
    assert (tmp_path / "r.html").stat().st_size > 10_000
    missing = qfeat("report", "no-such-run", "--runs-dir", str(tmp_path))
    assert missing.exit_code == 1 and "no run folder" in missing.output
    # a cache that is gone: the report still stands, and says why items lack details
    result = qfeat("report", str(rsa_run), "--cache-dir", str(tmp_path / "nowhere"), "--out",
                   str(tmp_path / "bare.html"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Details are not available" in (tmp_path / "bare.html").read_text()

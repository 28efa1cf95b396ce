"""Issue 40.7: a preset may leave out a section only where it says which defaults it
inherits (`inherits = "defaults"`); otherwise the error names the missing section."""

from __future__ import annotations

import tomllib

import pytest

from qfeat.errors import OptionError
from qfeat.pipeline.config import PRESET_DIR


def _preset(tmp_path, drop: str, inherits: bool = False):
    data = "\n".join(
        line
        for line in (PRESET_DIR / "tiny.toml").read_text().splitlines()
        if not line.startswith("inherits")
    )
    start = data.index(f"[{drop}]")
    end = data.find("\n[", start + 1)
    text = data[:start] + (data[end + 1 :] if end != -1 else "")
    assert drop not in tomllib.loads(text)
    path = tmp_path / f"no-{drop}.toml"
    path.write_text(('inherits = "defaults"\n' if inherits else "") + text)
    return str(path)


def test_a_trainer_section_left_out_is_named_not_defaulted(tmp_path):
    from qfeat.trainers.settings import SCMASettings as ScmaSettings
    from qfeat.trainers.settings import trainer_settings

    with pytest.raises(OptionError, match=r"has no \[scma\] section.*inherits = \"defaults\""):
        trainer_settings(ScmaSettings, _preset(tmp_path, "scma"), None)
    inherited = trainer_settings(ScmaSettings, _preset(tmp_path, "scma", inherits=True), None)
    assert inherited == ScmaSettings().as_dict()  # declared: the defaults, as documented


def test_features_without_clip_names_the_section(tmp_path, qfeat):
    result = qfeat("features", "demo-video", "--root", str(tmp_path / "data"), "--cache-dir",
                   str(tmp_path / "c"), "--preset", _preset(tmp_path, "clip"))  # fmt: skip
    assert result.exit_code == 2
    assert "has no [clip] section" in result.output and "PE" not in result.output
    assert not (tmp_path / "c").exists()

"""Weight digests remembered across runs (cache/weights_hash.py)."""

from __future__ import annotations

import json
import os

import pytest

import qfeat.cache.weights_hash as wh
from qfeat.cache.fingerprint import file_sha256, model_identity


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "store" / "weights-sha256.json"
    monkeypatch.setenv("QFEAT_HASH_CACHE", str(path))
    return path


def test_second_lookup_does_not_read_the_file(store, tmp_path, monkeypatch):
    weights = tmp_path / "sam.pth"
    weights.write_bytes(b"weights" * 1000)
    first = wh.weights_sha256(weights)
    assert first == file_sha256(weights)
    assert json.loads(store.read_text())[str(weights.resolve())]["sha256"] == first

    def no_reading(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(wh, "file_sha256", no_reading)
    assert wh.weights_sha256(weights) == first
    assert model_identity("sam_vit_b", weights)["sha256"] == first  # what manifests use


def test_changed_file_is_hashed_again(store, tmp_path):
    weights = tmp_path / "model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"a" * 64)
    before = model_identity("vlm", weights.parent)["sha256"]["model.safetensors"]
    weights.write_bytes(b"b" * 64)  # same size, new content
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = model_identity("vlm", weights.parent)["sha256"]["model.safetensors"]
    assert after != before and after == file_sha256(weights)


def test_unreadable_store_falls_back_to_hashing(store, tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"x")
    store.parent.mkdir(parents=True)
    store.write_text("{not json")
    assert wh.weights_sha256(weights) == file_sha256(weights)
    assert json.loads(store.read_text())  # rewritten as valid JSON

"""Weights cache and download: verification, atomic rename, fast failure offline."""

from __future__ import annotations

import dataclasses
import hashlib
import time

import pytest

from face3d_mesh.depth import _weights
from face3d_mesh.depth._registry import get_spec
from face3d_mesh.errors import ModelError

NAME = "midas_v21_small_256"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path / "home" / "hub" / "checkpoints"


def _serve(monkeypatch, tmp_path, payload: bytes, **overrides):
    """Point NAME's spec at a local file:// URL with ``payload``."""
    src = tmp_path / "served.bin"
    src.write_bytes(payload)
    spec = dataclasses.replace(
        get_spec(NAME),
        url=src.as_uri(),
        size_bytes=len(payload),
        sha256_prefix=hashlib.sha256(payload).hexdigest()[:8],
    )
    spec = dataclasses.replace(spec, **overrides)
    monkeypatch.setattr(_weights, "get_spec", lambda name: spec)
    return spec


def test_download_verifies_and_renames(cache, tmp_path, monkeypatch):
    payload = b"weights" * 1000
    _serve(monkeypatch, tmp_path, payload)
    assert _weights.cached_weights_path(NAME) is None
    path = _weights.download_weights(NAME, progress=False)
    assert path == cache / "midas_v21_small_256.pt"
    assert path.read_bytes() == payload
    sha = hashlib.sha256(payload).hexdigest()
    assert (cache / "midas_v21_small_256.pt.sha256").read_text().split()[0] == sha
    assert not list(cache.glob("*.part"))
    assert _weights.cached_weights_path(NAME) == path
    assert _weights.download_weights(NAME, progress=False) == path  # cached: no download
    row = next(r for r in _weights.list_models() if r.name == NAME)
    assert row.cached and row.path == path


def test_download_rejects_wrong_hash(cache, tmp_path, monkeypatch):
    _serve(monkeypatch, tmp_path, b"x" * 100, sha256_prefix="00000000")
    with pytest.raises(ModelError) as err:
        _weights.download_weights(NAME, progress=False)
    assert "SHA-256" in str(err.value) and "\n" not in str(err.value)
    assert not any(cache.iterdir())  # neither the file nor a .part is left


def test_download_rejects_wrong_size(cache, tmp_path, monkeypatch):
    _serve(monkeypatch, tmp_path, b"x" * 100, size_bytes=12345)
    with pytest.raises(ModelError) as err:
        _weights.download_weights(NAME, progress=False)
    assert "incomplete" in str(err.value)
    assert not any(cache.iterdir())


def test_partial_file_in_cache_is_not_trusted(cache, tmp_path, monkeypatch):
    payload = b"y" * 2000
    _serve(monkeypatch, tmp_path, payload)
    cache.mkdir(parents=True)
    (cache / "midas_v21_small_256.pt").write_bytes(payload[:500])  # truncated
    assert _weights.cached_weights_path(NAME) is None
    assert _weights.download_weights(NAME, progress=False).read_bytes() == payload


def test_unreachable_server_fails_fast(cache, tmp_path, monkeypatch):
    _serve(monkeypatch, tmp_path, b"z", url="http://127.0.0.1:9/none.pt")
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        _weights.download_weights(NAME, progress=False)
    assert time.monotonic() - start < 15
    msg = str(err.value)
    assert "could not download" in msg and "--weights" in msg and "\n" not in msg
    assert not any(cache.iterdir())


def test_unknown_name():
    with pytest.raises(ModelError):
        _weights.download_weights("nope")
    with pytest.raises(ModelError):
        _weights.cached_weights_path("nope")

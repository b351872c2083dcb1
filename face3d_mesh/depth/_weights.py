"""Checkpoint cache: find, download (with progress, size and SHA-256 checks) and list.

Files live in ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``, by
default ``~/.cache/torch/hub/checkpoints``), the same place ``torch.hub`` uses, so weights
fetched by the reference code are reused. A download goes to a unique ``*.part`` file in
that folder, is checked (size, SHA-256 prefix) and only then atomically renamed; the full
SHA-256 is recorded next to the file as ``<file>.sha256``. Nothing here imports torch unless
torch is already imported (then ``torch.hub.set_dir`` is respected).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ._registry import MODEL_NAMES, get_spec

__all__ = [
    "ModelInfo",
    "cache_dir",
    "cached_weights_path",
    "download_weights",
    "list_models",
    "CONNECT_TIMEOUT_S",
]

#: Seconds to wait for a connection (and for each read) before giving up.
CONNECT_TIMEOUT_S = 10.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelInfo:
    """One row of :func:`list_models`.

    Attributes
    ----------
    name, family, licence : str
    params : int
        Number of parameters.
    download_bytes : int
        Checkpoint size in bytes (approximate where not published exactly).
    input_size : int
        Network input size in pixels.
    cached : bool
        Whether a usable checkpoint is in the cache.
    path : pathlib.Path
        Where the checkpoint is (or would be) cached.
    url : str
    """

    name: str
    family: str
    params: int
    download_bytes: int
    licence: str
    input_size: int
    cached: bool
    path: Path
    url: str


def cache_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (computed without importing torch if need be)."""
    torch = sys.modules.get("torch")
    hub = getattr(torch, "hub", None) if torch is not None else None
    if hub is not None and hasattr(hub, "get_dir"):
        return Path(hub.get_dir()) / "checkpoints"
    default = os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", default))
    return Path(torch_home) / "hub" / "checkpoints"


def _cache_path(name: str) -> Path:
    return cache_dir() / get_spec(name).filename


def cached_weights_path(name: str) -> Path | None:
    """Path of the cached checkpoint of ``name``, or None if absent or of the wrong size.

    Raises
    ------
    ModelError
        Unknown ``name``.
    """
    spec = get_spec(name)
    path = _cache_path(name)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if not path.is_file():
        return None
    if spec.size_bytes is not None and size != spec.size_bytes:
        return None
    return path


def list_models() -> list[ModelInfo]:
    """All registered models with their cache state, in registry order."""
    rows = []
    for name in MODEL_NAMES:
        spec = get_spec(name)
        cached = cached_weights_path(name)
        rows.append(
            ModelInfo(
                name=spec.name,
                family=spec.family,
                params=spec.params,
                download_bytes=spec.size_bytes or spec.approx_size_bytes,
                licence=spec.licence,
                input_size=spec.input_size,
                cached=cached is not None,
                path=cached if cached is not None else _cache_path(name),
                url=spec.url,
            )
        )
    return rows


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def download_weights(name: str, *, progress: bool = True, force: bool = False) -> Path:
    """Return the cached checkpoint of ``name``, downloading it first if needed.

    Parameters
    ----------
    name : str
        Registry name.
    progress : bool
        Show a tqdm progress bar on stderr.
    force : bool
        Download again even if a cached file exists.

    Returns
    -------
    pathlib.Path
        The verified checkpoint in the cache.

    Raises
    ------
    ModelError
        Unknown name, no connection (fails within ~10 s), HTTP error, wrong size or
        SHA-256, or the cache folder is not writable.
    """
    spec = get_spec(name)
    if not force:
        cached = cached_weights_path(name)
        if cached is not None:
            return cached
    dest = _cache_path(name)
    advice = f"download it elsewhere from {spec.url} and pass --weights PATH"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, part_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    except OSError as exc:
        raise ModelError(
            f"cannot write to the weights cache {dest.parent}: {_one_line(exc)}"
        ) from None
    part = Path(part_name)
    try:
        digest = hashlib.sha256()
        received = 0
        try:
            request = urllib.request.Request(spec.url, headers={"User-Agent": "face3d_mesh"})
            with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S) as response:
                header = response.headers.get("Content-Length")
                total = int(header) if header and header.isdigit() else spec.size_bytes
                bar = _progress_bar(total, spec.name, enabled=progress)
                try:
                    with os.fdopen(fd, "wb") as out:
                        fd = -1
                        while True:
                            chunk = response.read(_CHUNK)
                            if not chunk:
                                break
                            out.write(chunk)
                            digest.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
                finally:
                    bar.close()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ModelError(
                f"could not download {spec.name} weights ({_one_line(reason)}); "
                f"check the connection or {advice}"
            ) from None
        except OSError as exc:
            raise ModelError(f"could not save {spec.name} weights: {_one_line(exc)}") from None
        if spec.size_bytes is None and received < spec.approx_size_bytes // 2:
            raise ModelError(
                f"download of {spec.name} too small ({received} bytes, expected about "
                f"{spec.approx_size_bytes}); try again or {advice}"
            )
        if spec.size_bytes is not None and received != spec.size_bytes:
            raise ModelError(
                f"download of {spec.name} incomplete or wrong: {received} bytes, expected "
                f"{spec.size_bytes}; try again or {advice}"
            )
        sha = digest.hexdigest()
        if spec.sha256_prefix is not None and not sha.startswith(spec.sha256_prefix):
            raise ModelError(
                f"download of {spec.name} has SHA-256 {sha[:12]}..., expected "
                f"{spec.sha256_prefix}...; try again or {advice}"
            )
        os.replace(part, dest)
        try:
            dest.with_name(dest.name + ".sha256").write_text(f"{sha}  {dest.name}\n")
        except OSError:
            pass
        return dest
    finally:
        if fd >= 0:
            os.close(fd)
        if part.exists():
            part.unlink(missing_ok=True)


def _progress_bar(total: int | None, name: str, *, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass

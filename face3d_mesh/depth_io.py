"""Depth maps as files: grayscale PNG (lighter = closer) or float ``.npy`` in millimetres."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ._atomic import check_writable, write_atomically
from .errors import OutputError
from .presentation import depth_to_gray, png_bytes

__all__ = [
    "depth_to_gray",
    "encode_depth",
    "save_depth",
    "supported_depth_extension",
    "DEPTH_EXTENSIONS",
]

DEPTH_EXTENSIONS = (".png", ".npy")


def supported_depth_extension(path) -> str:
    """The lower-case extension of ``path``; OutputError if it is not .png or .npy."""
    ext = Path(path).suffix.lower()
    if ext not in DEPTH_EXTENSIONS:
        raise OutputError(
            f"{path}: unsupported depth file type {ext or '(none)'}; use .png or .npy"
        )
    return ext


def save_depth(depth_mm: np.ndarray, path, *, sixteen_bit: bool = False) -> Path:
    """Write a depth map atomically.

    ``.png``: grayscale, lighter = closer, background black (8-bit, or 16-bit with
    ``sixteen_bit``). ``.npy``: the float32 millimetres themselves (NaN background).
    """
    supported_depth_extension(path)
    path = check_writable(path)
    write_atomically({path: encode_depth(depth_mm, path, sixteen_bit=sixteen_bit)})
    return path


def encode_depth(depth_mm: np.ndarray, path, *, sixteen_bit: bool = False) -> bytes:
    """The bytes :func:`save_depth` would write to ``path`` (its extension picks the format)."""
    if supported_depth_extension(path) == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(depth_mm, dtype=np.float32))
        return buffer.getvalue()
    return png_bytes(depth_to_gray(depth_mm, bits=16 if sixteen_bit else 8))

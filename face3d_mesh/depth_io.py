"""Depth maps as files: grayscale PNG (lighter = closer) or float ``.npy`` in millimetres."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ._atomic import check_writable, write_atomically
from .errors import OutputError

__all__ = ["depth_to_gray", "save_depth", "supported_depth_extension", "DEPTH_EXTENSIONS"]

DEPTH_EXTENSIONS = (".png", ".npy")


def supported_depth_extension(path) -> str:
    """The lower-case extension of ``path``; OutputError if it is not .png or .npy."""
    ext = Path(path).suffix.lower()
    if ext not in DEPTH_EXTENSIONS:
        raise OutputError(
            f"{path}: unsupported depth file type {ext or '(none)'}; use .png or .npy"
        )
    return ext


def depth_to_gray(depth_mm: np.ndarray, *, bits: int = 8) -> np.ndarray:
    """Depth map as a grayscale image: lighter = closer, background black.

    Parameters
    ----------
    depth_mm : numpy.ndarray
        H×W float depth, mm, larger = farther, NaN outside the face.
    bits : {8, 16}, keyword-only
        Output depth.

    Returns
    -------
    numpy.ndarray
        H×W uint8 (or uint16): 0 where ``depth_mm`` is NaN; inside the face the farthest
        point maps to 1 and the nearest to the maximum (255 or 65535), linearly in depth.
    """
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    depth = np.asarray(depth_mm, dtype=np.float64)
    valid = np.isfinite(depth)
    out = np.zeros(depth.shape, dtype=dtype)
    if not valid.any():
        return out
    near, far = depth[valid].min(), depth[valid].max()
    span = far - near if far > near else 1.0
    out[valid] = np.rint(1 + (top - 1) * (far - depth[valid]) / span).astype(dtype)
    return out


def save_depth(depth_mm: np.ndarray, path, *, sixteen_bit: bool = False) -> Path:
    """Write a depth map atomically.

    ``.png``: grayscale, lighter = closer, background black (8-bit, or 16-bit with
    ``sixteen_bit``). ``.npy``: the float32 millimetres themselves (NaN background).
    """
    import cv2

    ext = supported_depth_extension(path)
    path = check_writable(path)
    if ext == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(depth_mm, dtype=np.float32))
        data = buffer.getvalue()
    else:
        gray = depth_to_gray(depth_mm, bits=16 if sixteen_bit else 8)
        ok, encoded = cv2.imencode(".png", gray)
        if not ok:
            raise OutputError(f"{path}: PNG encoding failed")
        data = encoded.tobytes()
    write_atomically({path: data})
    return path

"""Continue a map with holes past its edge by linear extrapolation (shared by stages)."""

from __future__ import annotations

import numpy as np

__all__ = ["extend_linear"]

_DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def extend_linear(values: np.ndarray, rings: int) -> np.ndarray:
    """Give the NaN pixels within ``rings`` pixels of the finite ones extrapolated values.

    Ring by ring, a missing pixel next to finite ones takes the weighted mean, over its
    finite 8-neighbours ``q`` (weight 1 along an axis, 1/2 on a diagonal), of the linear
    continuation ``2 d(q) - d(2q - p)`` when the pixel beyond ``q`` is finite too, otherwise
    of ``d(q)``. A plane is continued exactly, so a steep edge stays steep (where the mean
    or the nearest value would bend it flat).

    Parameters
    ----------
    values : ndarray, shape (H, W), float
        NaN where undefined.
    rings : int
        How many pixels to extend by (>= 0).

    Returns
    -------
    ndarray, shape (H, W), float32
        A copy, NaN only farther than ``rings`` pixels (8-connected) from finite values.
    """
    import cv2

    h, w = values.shape
    d = np.pad(np.asarray(values, dtype=np.float64), 2, constant_values=np.nan)
    ok = np.isfinite(d)
    wp = w + 4
    frame = np.zeros(d.shape, bool)
    frame[2:-2, 2:-2] = True
    kernel = np.ones((3, 3), np.uint8)
    flat_d, flat_ok = d.ravel(), ok.ravel()
    for _ in range(int(rings)):
        ring = (cv2.dilate(ok.view(np.uint8), kernel) > 0) & ~ok & frame
        idx = np.flatnonzero(ring)
        if idx.size == 0:
            break
        num = np.zeros(idx.size)
        den = np.zeros(idx.size)
        for dy, dx in _DIRECTIONS:
            off = dy * wp + dx
            n1, n2 = idx + off, idx + 2 * off
            o1, o2 = flat_ok[n1], flat_ok[n2]
            weight = 1.0 / (dy * dy + dx * dx)
            guess = np.where(o2, 2.0 * flat_d[n1] - np.where(o2, flat_d[n2], 0.0), flat_d[n1])
            num += np.where(o1, weight * guess, 0.0)
            den += weight * o1
        flat_d[idx] = num / den
        flat_ok[idx] = True
    return d[2:-2, 2:-2].astype(np.float32)

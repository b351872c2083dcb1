"""Continue a map with holes past its edge by linear extrapolation (shared by stages)."""

from __future__ import annotations

import numpy as np

__all__ = ["extend_linear"]

_DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
_WEIGHTS = np.array([1.0 / (dy * dy + dx * dx) for dy, dx in _DIRECTIONS])


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

    rings = int(rings)
    h, w = values.shape
    d = np.full((h + 4, w + 4), np.nan)  # two pixels of NaN round it: no bounds checks
    d[2:-2, 2:-2] = values
    d[~np.isfinite(d)] = np.nan
    # Ring k is the pixels k steps (8-neighbours) from the finite ones: the chessboard
    # distance, so the rings come from one distance transform, not k dilations.
    dist = cv2.distanceTransform(np.isnan(d).view(np.uint8), cv2.DIST_C, 3)
    dist[:2], dist[-2:], dist[:, :2], dist[:, -2:] = 0, 0, 0, 0
    todo = np.flatnonzero((dist > 0) & (dist <= rings))
    ring_of = dist.ravel()[todo].astype(np.int16)
    order = np.argsort(ring_of, kind="stable")
    todo = todo[order]
    bounds = np.searchsorted(ring_of[order], np.arange(1, rings + 2))
    offsets = np.array([dy * (w + 4) + dx for dy, dx in _DIRECTIONS])
    flat = d.ravel()
    for k in range(rings):
        idx = todo[bounds[k] : bounds[k + 1]]
        if idx.size == 0:
            break
        near = idx[:, None] + offsets  # (n, 8): the neighbours q, then the pixels beyond
        d1, d2 = flat[near], flat[near + offsets]
        guess = 2.0 * d1 - d2
        np.copyto(guess, d1, where=np.isnan(d2))
        known = ~np.isnan(d1)
        np.copyto(guess, 0.0, where=~known)
        flat[idx] = (guess @ _WEIGHTS) / (known @ _WEIGHTS)
    return d[2:-2, 2:-2].astype(np.float32)

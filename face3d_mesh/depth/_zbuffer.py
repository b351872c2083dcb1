"""A small z-buffer: triangles with per-vertex depth, rasterised on a pixel grid (numpy).

Pixel centres are at integer coordinates ``(u, v) = (column, row)``. A pixel belongs to a
triangle when its centre lies inside it (edges shared by two triangles belong to both, so
a closed mesh leaves no cracks). Depth is interpolated linearly in the image plane, exact
for an orthographic camera and within ~1e-4 of the relief for a face a few face sizes from
a pinhole camera (triangles of a few mm). Where triangles overlap, the smallest depth wins.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rasterize", "barycentric"]


def _edge_functions(x, y):
    """Barycentric coordinates as affine functions of the pixel, l_k = a_k u + b_k v + c_k,
    for triangles with corner coordinates x, y (T, 3); also the signed doubled areas."""
    e1x, e1y = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
    e2x, e2y = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
    det = e1x * e2y - e1y * e2x
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.empty((len(det), 3))
        b = np.empty_like(a)
        c = np.empty_like(a)
        a[:, 1], b[:, 1] = e2y / det, -e2x / det
        c[:, 1] = -(a[:, 1] * x[:, 0] + b[:, 1] * y[:, 0])
        a[:, 2], b[:, 2] = -e1y / det, e1x / det
        c[:, 2] = -(a[:, 2] * x[:, 0] + b[:, 2] * y[:, 0])
    a[:, 0], b[:, 0] = -a[:, 1] - a[:, 2], -b[:, 1] - b[:, 2]
    c[:, 0] = 1.0 - c[:, 1] - c[:, 2]
    return a, b, c, det


def _fragments(x, y, a, b, c, height, width):
    """Every (triangle, pixel) pair with the pixel centre inside the triangle: scanline
    spans per triangle and row. Returns triangle index, column, row (int64 arrays)."""
    eps = -1e-7
    r0 = np.clip(np.ceil(y.min(axis=1)), 0, height).astype(np.int64)
    r1 = np.clip(np.floor(y.max(axis=1)), -1, height - 1).astype(np.int64)
    rows = np.maximum(r1 - r0 + 1, 0)
    t = np.repeat(np.arange(len(rows)), rows)
    v = r0[t] + (np.arange(len(t)) - np.repeat(np.cumsum(rows) - rows, rows))
    s = eps - (b[t] * v[:, None] + c[t])  # need a_k u >= s_k
    ak = a[t]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = s / ak
    lo = np.where(ak > 0, bound, -np.inf).max(axis=1)
    hi = np.where(ak < 0, bound, np.inf).min(axis=1)
    flat_ok = np.where(ak == 0, s <= 0, True).all(axis=1)
    col0 = np.clip(np.ceil(lo), 0, width).astype(np.int64)
    col1 = np.clip(np.floor(hi), -1, width - 1).astype(np.int64)
    span = np.where(flat_ok, np.maximum(col1 - col0 + 1, 0), 0)
    total = int(span.sum())
    pix_t = np.repeat(t, span)
    row = np.repeat(v, span)
    col = np.repeat(col0, span) + (np.arange(total) - np.repeat(np.cumsum(span) - span, span))
    return pix_t, col, row


def rasterize(
    xy: np.ndarray, z: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer a triangle mesh.

    Parameters
    ----------
    xy : numpy.ndarray
        (V, 2) float, vertex positions in pixels (column, row).
    z : numpy.ndarray
        (V,) float, vertex depths (any unit; smaller = nearer).
    triangles : numpy.ndarray
        (T, 3) int vertex indices (either winding).
    shape : tuple of int
        (H, W) of the grid.

    Returns
    -------
    depth : numpy.ndarray
        H×W float32, the nearest surface's depth at each pixel centre, NaN where no
        triangle covers it.
    triangle : numpy.ndarray
        H×W int32, index of that triangle, -1 where none.
    """
    height, width = int(shape[0]), int(shape[1])
    xy = np.asarray(xy, np.float64)
    z = np.asarray(z, np.float64)
    triangles = np.asarray(triangles, np.int64)
    x, y = xy[triangles, 0], xy[triangles, 1]
    a, b, c, det = _edge_functions(x, y)
    keep = np.flatnonzero(np.abs(det) > 1e-9)
    depth = np.full(height * width, np.inf)
    owner = np.full(height * width, -1, np.int64)
    if len(keep) == 0:
        return np.full((height, width), np.nan, np.float32), owner.reshape(height, width)
    x, y, a, b, c = x[keep], y[keep], a[keep], b[keep], c[keep]
    pix_t, col, row = _fragments(x, y, a, b, c, height, width)
    zc = z[triangles[keep]]
    # the depth plane of each triangle, z = pa u + pb v + pc
    pa, pb, pc = (a * zc).sum(axis=1), (b * zc).sum(axis=1), (c * zc).sum(axis=1)
    k = pix_t
    zq = pa[k] * col + pb[k] * row + pc[k]
    flat = row * width + col
    np.minimum.at(depth, flat, zq)
    winner = zq <= depth[flat]
    # ties: the highest triangle index (deterministic)
    np.maximum.at(owner, flat[winner], keep[k[winner]])
    depth[np.isinf(depth)] = np.nan
    return depth.reshape(height, width).astype(np.float32), owner.reshape(height, width).astype(
        np.int32
    )


def barycentric(xy: np.ndarray, triangles: np.ndarray, tri: np.ndarray, points: np.ndarray):
    """Image-plane barycentric coordinates of ``points`` (N, 2) in triangles ``tri`` (N,).

    Returns
    -------
    numpy.ndarray
        (N, 3) float64 (they sum to 1; all >= 0 inside the triangle).
    """
    corners = np.asarray(xy, np.float64)[np.asarray(triangles)[np.asarray(tri)]]  # (N, 3, 2)
    a, b, c, _ = _edge_functions(corners[:, :, 0], corners[:, :, 1])
    p = np.asarray(points, np.float64)
    return a * p[:, :1] + b * p[:, 1:2] + c

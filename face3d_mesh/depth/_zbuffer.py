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


def _spans(x, y, a, b, c, height, width):
    """The scanline spans of triangles with corners x, y (T, 3) and edge functions a, b,
    c: per (triangle, row) pair, the triangle ``t``, the row ``v``, the first column
    ``col0`` and the number of pixel centres inside it, ``span`` (int64 arrays; spans
    may be empty).

    (Corner by corner on whole columns: numpy's reductions along a length-3 axis cost
    several times more than the element-wise work, and most triangles are a few pixels.)
    """
    eps = -1e-7
    y_lo = np.minimum(np.minimum(y[:, 0], y[:, 1]), y[:, 2])
    y_hi = np.maximum(np.maximum(y[:, 0], y[:, 1]), y[:, 2])
    r0 = np.clip(np.ceil(y_lo), 0, height).astype(np.int64)
    r1 = np.clip(np.floor(y_hi), -1, height - 1).astype(np.int64)
    rows = np.maximum(r1 - r0 + 1, 0)
    t = np.repeat(np.arange(len(rows)), rows)
    v = r0[t] + (np.arange(len(t)) - np.repeat(np.cumsum(rows) - rows, rows))
    lo = np.full(len(t), -np.inf)
    hi = np.full(len(t), np.inf)
    inside = np.ones(len(t), bool)
    for k in range(3):
        ak = a[:, k][t]
        s = eps - (b[:, k][t] * v + c[:, k][t])  # need a_k u >= s_k
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = s / ak
        np.maximum(lo, np.where(ak > 0, bound, -np.inf), out=lo)
        np.minimum(hi, np.where(ak < 0, bound, np.inf), out=hi)
        inside &= (ak != 0) | (s <= 0)
    col0 = np.clip(np.ceil(lo), 0, width).astype(np.int64)
    col1 = np.clip(np.floor(hi), -1, width - 1).astype(np.int64)
    span = np.where(inside, np.maximum(col1 - col0 + 1, 0), 0)
    return t, v, col0, span


def _span_pixels(span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For spans of ``span`` pixels each: the span of each pixel, and its column offset
    in that span (int64 arrays)."""
    of = np.repeat(np.arange(len(span)), span)
    return of, np.arange(len(of)) - np.repeat(np.cumsum(span) - span, span)


def _fragments(x, y, a, b, c, height, width):
    """Every (triangle, pixel) pair with the pixel centre inside the triangle. Returns
    triangle index, column, row (int64 arrays)."""
    t, v, col0, span = _spans(x, y, a, b, c, height, width)
    of, offset = _span_pixels(span)
    return t[of], col0[of] + offset, v[of]


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

"""The small numerical helpers the stages share: the z-buffer and the linear extension.

Each is checked against a plain per-pixel reference written here (slow, obvious loops).
"""

from __future__ import annotations

import numpy as np

from face3d_mesh._extend import extend_linear
from face3d_mesh.depth._zbuffer import rasterize


def _inside(p, a, b, c):
    """Pixel centre p in triangle abc (edges included), by the signs of the edge tests."""

    def cross(o, q, r):
        return (q[0] - o[0]) * (r[1] - o[1]) - (q[1] - o[1]) * (r[0] - o[0])

    d = (cross(a, b, p), cross(b, c, p), cross(c, a, p))
    tol = 1e-9
    return all(x >= -tol for x in d) or all(x <= tol for x in d)


def test_rasterize_fills_the_pixel_centres_inside_each_triangle():
    rng = np.random.default_rng(5)
    height, width = 23, 31
    # tiny triangles (a pixel or two, like the face model's), large ones, slivers, and
    # some partly outside the grid
    xy = np.column_stack([rng.uniform(-4, width + 4, 60), rng.uniform(-4, height + 4, 60)])
    tris = [rng.choice(60, 3, replace=False) for _ in range(25)]
    for _ in range(25):
        centre = rng.uniform(0, [width, height])
        xy = np.vstack([xy, centre + rng.normal(scale=1.2, size=(3, 2))])
        tris.append(np.arange(len(xy) - 3, len(xy)))
    tris = np.array(tris)
    z = rng.uniform(0, 10, len(xy))
    depth, owner = rasterize(xy, z, tris, (height, width))
    for v in range(height):
        for u in range(width):
            best = np.inf
            for t in tris:
                a, b, c = xy[t]
                area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
                if abs(area) < 1e-9 or not _inside((u, v), a, b, c):
                    continue
                # the plane through the three corners, at the pixel centre
                m = np.column_stack([xy[t], np.ones(3)])
                best = min(best, float(np.linalg.solve(m, z[t]) @ (u, v, 1.0)))
            if np.isinf(best):
                assert np.isnan(depth[v, u]) and owner[v, u] == -1, (u, v)
            else:
                assert abs(depth[v, u] - best) < 1e-4, (u, v, depth[v, u], best)
                assert owner[v, u] >= 0


def _extend_reference(values, rings):
    """extend_linear's rule, one pixel at a time, ring after ring."""
    d = np.where(np.isfinite(values), values, np.nan).astype(np.float64)
    h, w = d.shape

    def at(y, x):
        return d[y, x] if 0 <= y < h and 0 <= x < w else np.nan

    for _ in range(rings):
        new = {}
        for y in range(h):
            for x in range(w):
                if np.isfinite(d[y, x]):
                    continue
                num = den = 0.0
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        q = at(y + dy, x + dx)
                        if (dy or dx) and np.isfinite(q):
                            weight = 1.0 / (dy * dy + dx * dx)
                            beyond = at(y + 2 * dy, x + 2 * dx)
                            num += weight * (2 * q - beyond if np.isfinite(beyond) else q)
                            den += weight
                if den:
                    new[y, x] = num / den
        for (y, x), value in new.items():
            d[y, x] = value
    return d.astype(np.float32)


def test_extend_linear_matches_the_ring_by_ring_rule():
    rng = np.random.default_rng(11)
    for case in range(40):
        h, w = rng.integers(1, 16, 2)
        values = rng.normal(size=(h, w))
        values[rng.random((h, w)) < rng.uniform(0.3, 0.97)] = np.nan
        if case % 7 == 0:
            values[rng.random((h, w)) < 0.1] = np.inf  # not finite: missing too
        rings = int(rng.integers(0, 7))
        out = extend_linear(values, rings)
        ref = _extend_reference(values, rings)
        assert out.dtype == np.float32 and out.shape == values.shape
        np.testing.assert_array_equal(np.isfinite(out), np.isfinite(ref))
        np.testing.assert_allclose(out[np.isfinite(ref)], ref[np.isfinite(ref)], atol=1e-5)


def test_extend_linear_continues_a_plane_and_stops_after_the_rings():
    v, u = np.mgrid[0:40, 0:50].astype(np.float64)
    plane = 0.7 * u - 1.3 * v + 4.0
    values = np.where(np.hypot(u - 25, v - 20) < 9, plane, np.nan)
    out = extend_linear(values, 5)
    reached = np.isfinite(out)
    np.testing.assert_allclose(out[reached], plane[reached], atol=1e-4)
    # exactly the pixels within 5 steps (8-neighbours) of the disc
    src = np.argwhere(np.isfinite(values))
    steps = np.abs(np.argwhere(np.ones_like(values, bool))[:, None] - src[None]).max(axis=2)
    np.testing.assert_array_equal(reached.ravel(), steps.min(axis=1) <= 5)
    assert np.isnan(extend_linear(np.full((6, 6), np.nan), 3)).all()

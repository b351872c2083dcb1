"""Quality figures of a surface's outline, rim and triangles, shared by tests and scripts.

Plain arrays in: ``points`` (N, 3) float in mm (x right, y up, z toward the camera),
``faces`` (M, 3) int vertex ids wound counter-clockwise seen from +z.
"""

from __future__ import annotations

import numpy as np


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Boundary of a manifold triangle mesh as ordered vertex loops, longest first.

    Each loop runs along its triangles' edge direction (counter-clockwise seen from +z for
    the outer boundary of a surface wound toward +z).
    """
    faces = np.asarray(faces, dtype=np.int64)
    a = faces.ravel()
    b = faces[:, [1, 2, 0]].ravel()
    n = int(faces.max()) + 1
    open_edge = ~np.isin(b * n + a, a * n + b)
    succ = dict(zip(a[open_edge].tolist(), b[open_edge].tolist(), strict=True))
    loops, seen = [], set()
    for start in succ:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = succ[v]
        loops.append(np.array(loop))
    return sorted(loops, key=len, reverse=True)


def turn_angles_deg(points: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Turn of a closed outline at each of its vertices in the image (xy) plane, degrees."""
    p = np.asarray(points, dtype=np.float64)[loop, :2]
    d_in = p - np.roll(p, 1, axis=0)
    d_out = np.roll(p, -1, axis=0) - p
    cross = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0]
    dot = np.sum(d_in * d_out, axis=1)
    return np.degrees(np.abs(np.arctan2(cross, dot)))


def rim_second_difference_mm(points: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """|z[i-1] - 2 z[i] + z[i+1]| along a closed outline, mm."""
    z = np.asarray(points, dtype=np.float64)[loop, 2]
    return np.abs(np.roll(z, 1) - 2 * z + np.roll(z, -1))


def edge_lengths(points: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Lengths of the outline's edges in the image plane (same unit as ``points``)."""
    p = np.asarray(points, dtype=np.float64)[loop, :2]
    return np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1)


def min_angles_deg(points: np.ndarray, faces: np.ndarray, *, plane: bool = True) -> np.ndarray:
    """Smallest angle of each triangle, degrees (in the xy plane, or in 3-D)."""
    p = np.asarray(points, dtype=np.float64)
    p = p[:, :2] if plane else p
    t = p[np.asarray(faces)]
    angles = []
    for k in range(3):
        u = t[:, (k + 1) % 3] - t[:, k]
        w = t[:, (k + 2) % 3] - t[:, k]
        cos = np.sum(u * w, axis=1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1))
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.min(angles, axis=0)


def band_faces(points: np.ndarray, faces: np.ndarray, width: float) -> np.ndarray:
    """Boolean mask of the triangles with a vertex within ``width`` (xy) of the boundary."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, dtype=np.float64)[:, :2]
    rim = np.concatenate(boundary_loops(faces))
    dist, _ = cKDTree(p[rim]).query(p)
    near = dist <= width
    return near[np.asarray(faces)].any(axis=1)


def inside_mask(
    points: np.ndarray, mask: np.ndarray, *, mm_per_px=None, origin_px=None, to_pixels=None
) -> np.ndarray:
    """Whether each vertex falls in a True pixel of ``mask`` (nearest pixel, with the
    float32 tolerance of a vertex exactly on a pixel edge). Points map to pixels by
    ``to_pixels(points) -> (u, v, ...)`` (e.g. ``rec.mesh_to_pixel``) or orthographically
    by ``mm_per_px`` about ``origin_px``."""
    p = np.asarray(points, dtype=np.float64)
    if to_pixels is not None:
        u, v = to_pixels(p)[:2]
    else:
        u = p[:, 0] / mm_per_px + origin_px[0]
        v = -p[:, 1] / mm_per_px + origin_px[1]
    h, w = mask.shape
    ok = np.zeros(len(p), dtype=bool)
    for du in (-1e-3, 1e-3):
        for dv in (-1e-3, 1e-3):
            iu = np.floor(u + 0.5 + du).astype(int)
            iv = np.floor(v + 0.5 + dv).astype(int)
            good = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
            ok[good] |= mask[iv[good], iu[good]]
    return ok


def _cross(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    return u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0]


def surface_z_at(points: np.ndarray, faces: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """z of the surface above each query point ``xy`` (K, 2); NaN where it has none."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, dtype=np.float64)
    f = np.asarray(faces)
    tri = p[f]
    centres = tri[:, :, :2].mean(axis=1)
    k = min(12, len(f))
    _, cand = cKDTree(centres).query(xy, k=k)
    cand = cand.reshape(len(xy), k)
    out = np.full(len(xy), np.nan)
    for j in range(k):
        t = tri[cand[:, j]]
        a, b, c = t[:, 0, :2], t[:, 1, :2], t[:, 2, :2]
        det = _cross(b - a, c - a)
        l1 = _cross(xy - a, c - a) / det
        l2 = _cross(b - a, xy - a) / det
        l0 = 1 - l1 - l2
        hit = np.isnan(out) & (np.minimum(np.minimum(l0, l1), l2) >= -1e-9)
        out[hit] = (l0 * t[:, 0, 2] + l1 * t[:, 1, 2] + l2 * t[:, 2, 2])[hit]
    return out


def rim_profile_second_difference_mm(
    points: np.ndarray,
    faces: np.ndarray,
    *,
    depth_mm: float = 2.0,
    spacing_mm: float = 0.5,
    start_mm: float = 0.0,
    z_at=None,
    convex_only: bool = False,
) -> np.ndarray:
    """Lip or step at the rim: second differences of the surface's z along inward normals.

    From every outer-boundary vertex, the surface is sampled every ``spacing_mm`` along the
    inward normal of the outline from ``start_mm`` (just inside the edge for 0) to
    ``start_mm + depth_mm``;
    returns |z[k-1] - 2 z[k] + z[k+1]| of all those profiles (mm), NaN-free. ``z_at``
    (a function of (K, 2) xy in mm) samples another surface along the same profiles, e.g.
    the depth map the mesh was made from.
    """
    p = np.asarray(points, dtype=np.float64)
    loop = boundary_loops(faces)[0]
    xy = p[loop, :2]
    tangent = np.roll(xy, -1, axis=0) - np.roll(xy, 1, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    inward = np.column_stack([-tangent[:, 1], tangent[:, 0]])  # left of a CCW outline
    ts = start_mm + np.arange(0.05, depth_mm + 1e-9, spacing_mm)
    q = xy[:, None, :] + ts[None, :, None] * inward[:, None, :]
    q = q.reshape(-1, 2)
    z = (surface_z_at(p, faces, q) if z_at is None else z_at(q)).reshape(len(loop), len(ts))
    d2 = z[:, :-2] - 2 * z[:, 1:-1] + z[:, 2:]
    d2 = d2[np.isfinite(d2)]
    return np.maximum(d2, 0.0) if convex_only else np.abs(d2)

"""Depth map to a triangulated surface mesh (PyVista), in millimetres.

Mesh frame: x right, y up, z toward the camera, origin at pixel ``origin_px`` and depth 0::

    x = (u - u0) * mm_per_px,   y = -(v - v0) * mm_per_px,   z = -depth_mm

Texture coordinates ("UV") are normalised photo coordinates with the OBJ convention
(origin at the bottom-left corner of the photo): ``s = (u + 0.5) / W``,
``t = 1 - (v + 0.5) / H``, so that the photo's pixel edges map to 0 and 1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pyvista as pv

__all__ = ["depth_to_mesh", "choose_grid_step"]

#: Refuse grids larger than this (memory guard against absurd steps / triangle targets).
_MAX_GRID_POINTS = 2e7


def choose_grid_step(n_valid_px: int, target_triangles: int) -> float:
    """Grid step (px) giving about ``target_triangles`` over ``n_valid_px`` pixels of area.

    Each grid quad of side ``step`` px makes two triangles, so
    ``step = sqrt(2 * n_valid_px / target_triangles)``.
    """
    if target_triangles <= 0:
        raise UsageError(f"target_triangles must be positive, got {target_triangles}")
    return math.sqrt(2.0 * max(n_valid_px, 1) / target_triangles)


def depth_to_mesh(
    depth_mm: np.ndarray,
    *,
    mm_per_px: float,
    origin_px: tuple[float, float],
    image: np.ndarray | None = None,
    grid_step_px: float | None = None,
    target_triangles: int = 80_000,
) -> pv.PolyData:
    """Triangulate the finite region of a depth map on a regular grid.

    Grid vertices are placed every ``grid_step_px`` photo pixels over the bounding box of the
    finite depth; a vertex is valid when the photo pixel it falls in has finite depth (so no
    vertex, and no triangle, lies outside the mask).  Off-pixel depth is interpolated
    bilinearly from the depth map extended by one pixel beyond the mask.  Each grid quad with
    4 valid corners gives two triangles wound counter-clockwise seen from +z (normals toward
    the camera).  Quads touching another only at a corner ("bowtie" vertices) are removed and
    only the largest edge-connected piece is kept, so the surface is a manifold whose boundary
    is a set of simple loops.

    Parameters
    ----------
    depth_mm : ndarray, shape (H, W), float
        Depth in millimetres (larger = farther), NaN outside the face.
    mm_per_px : float, keyword-only
        Millimetres per photo pixel (> 0).
    origin_px : (float, float), keyword-only
        Pixel ``(u0, v0)`` = (column, row) mapped to x = y = 0 (the nose tip).
    image : ndarray, shape (H, W, 3), uint8, optional, keyword-only
        RGB photo; when given, vertex colours are sampled from it (bilinear) into
        ``point_data["RGB"]`` (N x 3 uint8).
    grid_step_px : float, optional, keyword-only
        Grid step in photo pixels (> 0, may be < 1).  Default: chosen from
        ``target_triangles``.
    target_triangles : int, keyword-only
        Approximate triangle count wanted when ``grid_step_px`` is None.

    Returns
    -------
    pyvista.PolyData
        Triangle mesh, points float32 in mm.  ``point_data``: ``"Normals"`` (N x 3 float32,
        unit, active normals), ``"UV"`` (N x 2 float32, active texture coordinates), ``"RGB"``
        when ``image`` is given.  ``field_data``: ``"mm_per_px"``, ``"grid_step_px"``,
        ``"origin_px"`` (u0, v0) and ``"image_size_px"`` (W, H).

    Raises
    ------
    UsageError
        On bad shapes or values, or when the depth map has too few finite pixels to make a
        single triangle at this grid step.
    """
    import cv2

    depth = np.asarray(depth_mm)
    if depth.ndim != 2:
        raise UsageError(f"depth_mm must be a 2-D array, got shape {depth.shape}")
    h, w = depth.shape
    if not (np.isfinite(mm_per_px) and mm_per_px > 0):
        raise UsageError(f"mm_per_px must be a positive number, got {mm_per_px}")
    try:
        u0, v0 = (float(x) for x in origin_px)
    except (TypeError, ValueError):
        raise UsageError(
            f"origin_px must be a pair of numbers (u0, v0), got {origin_px!r}"
        ) from None
    if not (np.isfinite(u0) and np.isfinite(v0)):
        raise UsageError(f"origin_px must be finite, got {origin_px!r}")
    if image is not None:
        image = np.asarray(image)
        if image.shape != (h, w, 3) or image.dtype != np.uint8:
            raise UsageError(
                f"image must be an (H, W, 3) uint8 RGB array matching depth_mm {depth.shape}, "
                f"got {image.shape} {image.dtype}"
            )
    finite = np.isfinite(depth)
    n_valid = int(finite.sum())
    if n_valid == 0:
        raise UsageError("depth map has no finite value to mesh")
    if grid_step_px is None:
        step = choose_grid_step(n_valid, target_triangles)
    else:
        step = float(grid_step_px)
        if not (np.isfinite(step) and step > 0):
            raise UsageError(f"grid_step_px must be a positive number, got {grid_step_px}")

    # Bounding box of the finite region, one pixel of margin for interpolation.
    rows = np.flatnonzero(finite.any(axis=1))
    cols = np.flatnonzero(finite.any(axis=0))
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, h)
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, w)
    crop_ok = finite[r0:r1, c0:c1]
    crop = np.where(crop_ok, depth[r0:r1, c0:c1], 0.0).astype(np.float32)
    crop = _extend_one(crop, crop_ok)

    # Grid sample positions, photo pixels; start at the first finite pixel's centre.
    n_grid = ((rows[-1] - rows[0]) / step + 1) * ((cols[-1] - cols[0]) / step + 1)
    if n_grid > _MAX_GRID_POINTS:
        raise UsageError(
            f"grid step {step:.3g} px would make {n_grid:.3g} grid points "
            f"(limit {_MAX_GRID_POINTS:.0e}); use a larger step or fewer triangles"
        )
    us = np.arange(cols[0], cols[-1] + 0.5 + 1e-9, step, dtype=np.float64)
    vs = np.arange(rows[0], rows[-1] + 0.5 + 1e-9, step, dtype=np.float64)
    ny, nx = vs.size, us.size
    if ny < 2 or nx < 2:
        raise UsageError(f"depth map too small to mesh at grid step {step:.3g} px")
    mu = np.broadcast_to((us - c0).astype(np.float32)[None, :], (ny, nx))
    mv = np.broadcast_to((vs - r0).astype(np.float32)[:, None], (ny, nx))
    integer_grid = step == 1.0
    if integer_grid:
        z_grid = crop[np.ix_((vs - r0).astype(int), (us - c0).astype(int))]
    else:
        z_grid = cv2.remap(
            crop,
            np.ascontiguousarray(mu),
            np.ascontiguousarray(mv),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
    # A vertex is valid when the pixel it falls in is finite (nearest-pixel mask).
    iv = np.clip(np.floor(vs + 0.5).astype(int), 0, h - 1)
    iu = np.clip(np.floor(us + 0.5).astype(int), 0, w - 1)
    vmask = finite[np.ix_(iv, iu)]

    quads = vmask[:-1, :-1] & vmask[:-1, 1:] & vmask[1:, :-1] & vmask[1:, 1:]
    quads = _manifold_quads(quads)
    if not quads.any():
        raise UsageError(f"depth map too small to mesh at grid step {step:.3g} px")

    # Vertex ids: only vertices used by a kept quad.
    used = np.zeros((ny, nx), dtype=bool)
    used[:-1, :-1] |= quads
    used[:-1, 1:] |= quads
    used[1:, :-1] |= quads
    used[1:, 1:] |= quads
    vid = np.full((ny, nx), -1, dtype=np.int64)
    n_pts = int(used.sum())
    vid[used] = np.arange(n_pts)
    qr, qc = np.nonzero(quads)
    p00 = vid[qr, qc]
    p01 = vid[qr, qc + 1]
    p10 = vid[qr + 1, qc]
    p11 = vid[qr + 1, qc + 1]
    faces = np.empty((2 * qr.size, 3), dtype=np.int64)
    # Counter-clockwise seen from +z (row index grows downward, y grows upward).
    faces[0::2] = np.stack([p10, p11, p01], axis=1)
    faces[1::2] = np.stack([p10, p01, p00], axis=1)

    uu = np.broadcast_to(us[None, :], (ny, nx))[used]
    vv = np.broadcast_to(vs[:, None], (ny, nx))[used]
    points = np.empty((n_pts, 3), dtype=np.float32)
    points[:, 0] = (uu - u0) * mm_per_px
    points[:, 1] = -(vv - v0) * mm_per_px
    points[:, 2] = -z_grid[used]

    import pyvista as pv

    mesh = pv.PolyData.from_regular_faces(points, faces)
    mesh.point_data["Normals"] = _point_normals(points, faces)
    mesh.point_data.active_normals_name = "Normals"
    uv = np.empty((n_pts, 2), dtype=np.float32)
    uv[:, 0] = (uu + 0.5) / w
    uv[:, 1] = 1.0 - (vv + 0.5) / h
    mesh.point_data["UV"] = uv
    mesh.point_data.active_texture_coordinates_name = "UV"
    if image is not None:
        mesh.point_data["RGB"] = _bilinear_rgb(image, uu, vv)
    mesh.point_data.active_scalars_name = None
    mesh.field_data["mm_per_px"] = np.array([mm_per_px], dtype=np.float64)
    mesh.field_data["grid_step_px"] = np.array([step], dtype=np.float64)
    mesh.field_data["origin_px"] = np.array([u0, v0], dtype=np.float64)
    mesh.field_data["image_size_px"] = np.array([w, h], dtype=np.int64)
    return mesh


def _bilinear_rgb(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample an (H, W, 3) uint8 image bilinearly at pixel positions (u, v); (N, 3) uint8."""
    h, w = image.shape[:2]
    u = np.clip(u, 0, w - 1)
    v = np.clip(v, 0, h - 1)
    iu = np.minimum(np.floor(u).astype(np.int64), w - 2) if w > 1 else np.zeros(u.shape, int)
    iv = np.minimum(np.floor(v).astype(np.int64), h - 2) if h > 1 else np.zeros(v.shape, int)
    fu = (u - iu)[:, None]
    fv = (v - iv)[:, None]
    iu1 = np.minimum(iu + 1, w - 1)
    iv1 = np.minimum(iv + 1, h - 1)
    top = image[iv, iu] * (1 - fu) + image[iv, iu1] * fu
    bot = image[iv1, iu] * (1 - fu) + image[iv1, iu1] * fu
    return np.clip(np.rint(top * (1 - fv) + bot * fv), 0, 255).astype(np.uint8)


def _extend_one(d: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Give non-``ok`` pixels next to ``ok`` ones the mean of their ``ok`` 8-neighbours."""
    import cv2

    k = ok.astype(np.float32)
    num = cv2.boxFilter(d * k, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    den = cv2.boxFilter(k, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    ring = ~ok & (den > 0)
    out = d.copy()
    out[ring] = num[ring] / den[ring]
    return out


def _manifold_quads(quads: np.ndarray) -> np.ndarray:
    """Drop quads so that no vertex is a bowtie; keep the largest edge-connected piece.

    A grid vertex is a bowtie when exactly its two diagonally opposite quads are present;
    the upper one of the pair is removed (repeated until none is left).
    """
    from scipy import ndimage

    q = quads.copy()
    while True:
        p = np.pad(q, 1)
        # Quads around interior vertex (i, j) of the padded quad grid: nw, ne, sw, se.
        nw, ne = p[:-1, :-1], p[:-1, 1:]
        sw, se = p[1:, :-1], p[1:, 1:]
        bow_a = nw & se & ~ne & ~sw  # remove nw
        bow_b = ne & sw & ~nw & ~se  # remove ne
        if not (bow_a.any() or bow_b.any()):
            break
        # Vertex (i, j) of the (ny, nx) grid; its nw quad is q[i-1, j-1], ne is q[i-1, j].
        ia, ja = np.nonzero(bow_a)
        q[ia - 1, ja - 1] = False
        ib, jb = np.nonzero(bow_b)
        q[ib - 1, jb] = False
    labels, n = ndimage.label(q)  # 4-connectivity: quads sharing an edge
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        q = labels == int(np.argmax(sizes))
    return q


def _point_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, float32 (N, 3)."""
    p = points.astype(np.float64)
    fn = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    n = np.zeros((points.shape[0], 3))
    idx = faces.ravel()
    for k in range(3):
        n[:, k] = np.bincount(idx, weights=np.repeat(fn[:, k], 3), minlength=points.shape[0])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return (n / norm).astype(np.float32)

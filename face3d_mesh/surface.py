"""Depth map to a triangulated surface mesh (PyVista), in millimetres.

Mesh frame: x right, y up, z toward the camera, origin at pixel ``origin_px`` and depth 0::

    x = (u - u0) * mm_per_px,   y = -(v - v0) * mm_per_px,   z = -depth_mm

Texture coordinates ("UV") are normalised photo coordinates with the OBJ convention
(origin at the bottom-left corner of the photo): ``s = (u + 0.5) / W``,
``t = 1 - (v + 0.5) / H``, so that the photo's pixel edges map to 0 and 1.

The surface is a regular grid inside, and a band of Delaunay triangles between the grid and
the region's smooth outline (see :func:`depth_to_mesh`). The work is done on numpy arrays
(:func:`surface_arrays`, a :class:`~face3d_mesh.mesharrays.MeshArrays`); only
:func:`depth_to_mesh` wraps them into a ``pyvista.PolyData``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError
from .mesharrays import MeshArrays

if TYPE_CHECKING:  # pragma: no cover
    import pyvista as pv

    from .camera import Pinhole

__all__ = [
    "depth_to_mesh",
    "surface_arrays",
    "choose_grid_step",
    "rim_smoothing_mm",
]

#: Refuse grids larger than this (memory guard against absurd steps / triangle targets).
_MAX_GRID_POINTS = 2e7
#: Scale of the outline's smoothing (Gaussian blur of the mask), photo pixels; at least
#: OUTLINE_SIGMA_STEPS grid steps, so that a corner of the mask turns over a few vertices.
OUTLINE_SIGMA_PX = 2.0
OUTLINE_SIGMA_STEPS = 0.75
#: Grid nodes keep this distance from the outline, in grid steps (> 0.541: see _band).
_CLEARANCE = 0.6
#: Rim smoothing: depth is averaged along the outline (Gaussian, RIM_SIGMA_MM of arc, at
#: least RIM_SIGMA_MIN_PX photo pixels) with full weight on the outline, fading out over
#: RIM_BLEND_MM inward (at least RIM_BLEND_SIGMAS times that scale): rim_smoothing_mm().
RIM_SIGMA_MM = 2.5
RIM_SIGMA_MIN_PX = 3.0
RIM_BLEND_MM = 2.0
RIM_BLEND_SIGMAS = 1.5
#: Edge pixels (this deep, px) whose depth differs from the linear continuation of the
#: depth inside them by more than RIM_TOLERANCE_MM take that continuation.
RIM_TRIM_PX = 2.0
RIM_TOLERANCE_MM = 0.1
_TRUNCATE = 2.5  # the Gaussian along the outline is cut at 2.5 sigma


def rim_smoothing_mm(mm_per_px: float) -> tuple[float, float]:
    """Scale of the rim smoothing along the outline and the width of the band it fades
    over, both mm: (max(RIM_SIGMA_MM, RIM_SIGMA_MIN_PX px), max(RIM_BLEND_MM, RIM_BLEND_SIGMAS
    times that scale))."""
    sigma = max(RIM_SIGMA_MM, RIM_SIGMA_MIN_PX * mm_per_px)
    return sigma, max(RIM_BLEND_MM, RIM_BLEND_SIGMAS * sigma)


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
    camera: Pinhole | None = None,
) -> pv.PolyData:
    """Triangulate the finite region of a depth map: a regular grid inside a smooth outline.

    The outline is the iso-line of the finite-depth mask blurred over
    :data:`OUTLINE_SIGMA_PX` pixels (at least :data:`OUTLINE_SIGMA_STEPS` grid steps), at
    the level where a straight edge's outline runs through the centres of its edge pixels,
    smoothed along itself and sampled about every ``grid_step_px`` (only the largest region
    and its holes; samples that would fall outside the mask are moved inward, smoothly).
    Grid vertices are placed every ``grid_step_px`` photo pixels; those inside the outline,
    at least 0.6 step from it and in a finite pixel make the regular grid (two triangles per
    quad with 4 such corners, wound counter-clockwise seen from +z); the band between the
    grid and the outline is filled by Delaunay triangles. The result is a manifold whose
    boundary is the outline's loops, with every vertex in a finite pixel.

    Depth is sampled bilinearly; near the edge it is treated so that the rim carries no
    pixel-scale teeth and no lip: the outermost :data:`RIM_TRIM_PX` pixels take the linear
    continuation of the depth inside them where they differ from it by more than
    :data:`RIM_TOLERANCE_MM`, and vertices near the outline get their depth averaged along
    curves parallel to it (:func:`rim_smoothing_mm`: a Gaussian along the outline, full
    weight on it, fading out inward), which leaves the profile across the rim as it was.

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
    camera : Pinhole, optional, keyword-only
        The photo's camera (:class:`~face3d_mesh.camera.Pinhole`, its origin at
        ``origin_px``): vertices are placed by its perspective
        (:meth:`~face3d_mesh.camera.Pinhole.to_mesh`). None: orthographic, ``x = (u - u0)
        mm_per_px``, ``y = -(v - v0) mm_per_px``, ``z = -depth``.

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
        surface at this grid step.
    """
    arrays = surface_arrays(
        depth_mm,
        mm_per_px=mm_per_px,
        origin_px=origin_px,
        image=image,
        grid_step_px=grid_step_px,
        target_triangles=target_triangles,
        camera=camera,
    )
    return arrays.to_polydata()


def surface_arrays(
    depth_mm: np.ndarray,
    *,
    mm_per_px: float,
    origin_px: tuple[float, float],
    image: np.ndarray | None = None,
    grid_step_px: float | None = None,
    target_triangles: int = 80_000,
    timings: dict | None = None,
    camera: Pinhole | None = None,
) -> MeshArrays:
    """:func:`depth_to_mesh` without PyVista: the same surface as
    :class:`~face3d_mesh.mesharrays.MeshArrays` (points float32, mm).

    ``timings``, when given, receives the wall time (s) of each step: ``grid``,
    ``outline`` (smooth outline loops), ``band`` (triangulation of grid and band), ``rim``
    (depth sampling and rim smoothing) and ``attributes`` (normals, UV, colours).
    """
    clock = _Clock(timings)
    depth, (u0, v0), image = _check_inputs(depth_mm, mm_per_px, origin_px, image)
    h, w = depth.shape
    finite = np.isfinite(depth)
    n_valid = int(np.count_nonzero(finite))
    if n_valid == 0:
        raise UsageError("depth map has no finite value to mesh")
    step = _grid_step(grid_step_px, n_valid, target_triangles)
    sigma = max(OUTLINE_SIGMA_PX, OUTLINE_SIGMA_STEPS * step)
    trim = int(math.ceil(RIM_TRIM_PX))
    win = _Window.around(depth, finite, margin=max(trim + 4, int(3 * sigma) + 4))
    grid = _Grid.over(win, finite, step)
    clock.lap("grid")
    loops = _outline_loops(win, step, sigma)
    clock.lap("outline")
    pixels, faces = _triangulate(win, grid, loops)
    clock.lap("band")
    z = _rim_depth_at(win, pixels, loops, step=step, mm_per_px=mm_per_px)
    clock.lap("rim")
    arrays = _assemble(pixels, z, faces, image, (u0, v0), (w, h), mm_per_px, step, camera)
    clock.lap("attributes")
    return arrays


class _Clock:
    """Adds the time since the previous lap to ``timings[name]`` (when there is a dict)."""

    def __init__(self, timings: dict | None):
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
            self.last = now


def _rim_depth_at(win, pixels, loops, *, step: float, mm_per_px: float) -> np.ndarray:
    """Depth (mm, float64) at the vertices (photo px), with the rim treatment."""
    import cv2

    trim = int(math.ceil(RIM_TRIM_PX))
    inside = cv2.distanceTransform(win.finite.view(np.uint8), cv2.DIST_L2, 5)
    zmap = _rim_depth(
        win, inside, rings=trim + 3, trim_px=RIM_TRIM_PX, tolerance_mm=RIM_TOLERANCE_MM
    )
    uv_crop = pixels - win.offset
    sigma, width = (x / mm_per_px for x in rim_smoothing_mm(mm_per_px))
    near = _sample(inside, uv_crop) <= width + 2.0  # the outline is within ~1 px of the edge
    z = _sample(zmap, uv_crop).astype(np.float64)
    z[near] = _smooth_along_outline(
        z[near],
        uv_crop[near],
        loops,
        zmap,
        sigma_px=sigma,
        width_px=width,
        step_px=step,
    )
    return z


def _assemble(pixels, z, faces, image, origin, size, mm_per_px, step, camera) -> MeshArrays:
    """Mesh-frame points, normals, UVs, colours and field data of the vertices; ``size`` is
    the photo's (W, H)."""
    u0, v0 = origin
    w, h = size
    points = np.empty((len(pixels), 3), dtype=np.float32)
    if camera is None:
        points[:, 0] = (pixels[:, 0] - u0) * mm_per_px
        points[:, 1] = -(pixels[:, 1] - v0) * mm_per_px
        points[:, 2] = -z
    else:
        points[:] = camera.to_mesh(pixels[:, 0], pixels[:, 1], z)
    uv = np.empty((len(pixels), 2), dtype=np.float32)
    uv[:, 0] = (pixels[:, 0] + 0.5) / w
    uv[:, 1] = 1.0 - (pixels[:, 1] + 0.5) / h
    return MeshArrays(
        points=points,
        faces=faces,
        normals=_point_normals(points, faces),
        uv=uv,
        rgb=None if image is None else _bilinear_rgb(image, pixels[:, 0], pixels[:, 1]),
        field_data={
            "mm_per_px": np.array([mm_per_px], dtype=np.float64),
            "grid_step_px": np.array([step], dtype=np.float64),
            "origin_px": np.array([u0, v0], dtype=np.float64),
            "image_size_px": np.array([w, h], dtype=np.int64),
        },
    )


def _check_inputs(depth_mm, mm_per_px, origin_px, image):
    """Validated ``(depth, (u0, v0), image)``; UsageError on bad shapes or values."""
    depth = np.asarray(depth_mm)
    if depth.ndim != 2:
        raise UsageError(f"depth_mm must be a 2-D array, got shape {depth.shape}")
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
        if image.shape != (*depth.shape, 3) or image.dtype != np.uint8:
            raise UsageError(
                f"image must be an (H, W, 3) uint8 RGB array matching depth_mm {depth.shape}, "
                f"got {image.shape} {image.dtype}"
            )
    return depth, (u0, v0), image


def _grid_step(grid_step_px, n_valid: int, target_triangles: int) -> float:
    if grid_step_px is None:
        return choose_grid_step(n_valid, target_triangles)
    step = float(grid_step_px)
    if not (np.isfinite(step) and step > 0):
        raise UsageError(f"grid step must be a positive number, got {grid_step_px}")
    return step


@dataclass(frozen=True)
class _Window:
    """The finite region's bounding box plus a margin, cut from the depth map.

    ``depth`` and ``finite`` are (h, w) crops (NaN / False beyond the photo); photo pixel
    ``(u, v)`` is crop pixel ``(u, v) - offset``.
    """

    depth: np.ndarray
    finite: np.ndarray
    offset: np.ndarray  # (u, v) of the crop's top-left pixel in the photo
    rows: tuple[int, int]  # first and last photo row with a finite pixel
    cols: tuple[int, int]

    @classmethod
    def around(cls, depth: np.ndarray, finite: np.ndarray, *, margin: int) -> _Window:
        rows = np.flatnonzero(finite.any(axis=1))
        cols = np.flatnonzero(finite.any(axis=0))
        r0, c0 = int(rows[0]) - margin, int(cols[0]) - margin
        r1, c1 = int(rows[-1]) + margin + 1, int(cols[-1]) + margin + 1
        crop = np.full((r1 - r0, c1 - c0), np.nan, np.float32)
        h, w = depth.shape
        sr, sc = slice(max(r0, 0), min(r1, h)), slice(max(c0, 0), min(c1, w))
        crop[sr.start - r0 : sr.stop - r0, sc.start - c0 : sc.stop - c0] = depth[sr, sc]
        return cls(
            depth=crop,
            finite=np.isfinite(crop),
            offset=np.array([c0, r0], dtype=np.float64),
            rows=(int(rows[0]), int(rows[-1])),
            cols=(int(cols[0]), int(cols[-1])),
        )

    def valid_at(self, uv_crop: np.ndarray) -> np.ndarray:
        """Whether crop positions (N, 2) fall in a finite pixel (nearest pixel)."""
        h, w = self.finite.shape
        iu = np.floor(uv_crop[:, 0] + 0.5).astype(np.int64)
        iv = np.floor(uv_crop[:, 1] + 0.5).astype(np.int64)
        ok = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
        ok[ok] = self.finite[iv[ok], iu[ok]]
        return ok


@dataclass(frozen=True)
class _Grid:
    """Regular grid nodes ``(us[j], vs[i])`` (photo px) and which fall in finite pixels."""

    us: np.ndarray
    vs: np.ndarray
    step: float
    in_mask: np.ndarray  # (ny, nx) bool

    @classmethod
    def over(cls, win: _Window, finite: np.ndarray, step: float) -> _Grid:
        (ra, rb), (ca, cb) = win.rows, win.cols
        n_grid = ((rb - ra) / step + 1) * ((cb - ca) / step + 1)
        if n_grid > _MAX_GRID_POINTS:
            raise UsageError(
                f"grid step {step:.3g} px would make {n_grid:.3g} grid points "
                f"(limit {_MAX_GRID_POINTS:.0e}); use a larger step or fewer triangles"
            )
        # Start at the first finite pixel's centre.
        us = np.arange(ca, cb + 0.5 + 1e-9, step, dtype=np.float64)
        vs = np.arange(ra, rb + 0.5 + 1e-9, step, dtype=np.float64)
        if us.size < 2 or vs.size < 2:
            raise UsageError(f"depth map too small to mesh at grid step {step:.3g} px")
        h, w = finite.shape
        iv = np.clip(np.floor(vs + 0.5).astype(int), 0, h - 1)
        iu = np.clip(np.floor(us + 0.5).astype(int), 0, w - 1)
        return cls(us=us, vs=vs, step=step, in_mask=finite[np.ix_(iv, iu)])

    @property
    def shape(self) -> tuple[int, int]:
        return self.vs.size, self.us.size


def _outline_loops(win: _Window, step: float, sigma_px: float):
    """The region's smooth outline loops (crop px), sampled every grid step, in the mask."""
    from . import _outline

    loops = _outline.outline_loops(win.finite, sigma_px=sigma_px, spacing_px=step)
    for loop in loops:
        _outline.push_inside(loop, win.valid_at)
    if loops:
        loops = _outline.cut_pinches(loops)
    if not loops or loops[0].length < 4 * step or len(loops[0].points) < 4:
        raise UsageError(f"depth map too small to mesh at grid step {step:.3g} px")
    return [loops[0]] + [hole for hole in loops[1:] if len(hole.points) >= 4]


def _triangulate(win: _Window, grid: _Grid, loops) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 2) photo px and triangles (M, 3) of the grid-plus-band surface.

    Attempts whose boundary does not come out as the outline loops (an outline edge
    missing from the Delaunay triangulation, a core quad with no neighbour across an edge)
    are repaired, by refining those outline edges and demoting those quads, and retried.
    """
    origin = np.array([grid.us[0], grid.vs[0]]) - win.offset
    demoted = np.zeros((grid.shape[0] - 1, grid.shape[1] - 1), bool)
    for _attempt in range(6):
        band = _band(loops, grid, origin, demoted)
        if band.missing.size == 0 and band.stray.size == 0:
            break
        _repair(loops, band, demoted, win)
    else:
        raise UsageError(
            f"could not triangulate the region's outline at grid step {grid.step:.3g} px; "
            "try another grid step or triangle count"
        )
    return band.pixels + np.where(band.is_node[:, None], 0.0, win.offset), band.faces


@dataclass
class _Band:
    """Result of one triangulation attempt (see :func:`_band`)."""

    pixels: np.ndarray  # (N, 2): photo px for grid nodes, crop px for outline samples
    is_node: np.ndarray  # (N,) bool
    faces: np.ndarray  # (M, 3)
    missing: np.ndarray  # (k,) global outline-sample ids whose edge to the next is absent
    stray: np.ndarray  # (k,) core quads touching a boundary edge that is no outline edge
    n_outline: list  # samples per loop


def _band(loops, grid: _Grid, origin: np.ndarray, demoted: np.ndarray) -> _Band:
    """Core quads (regular grid) plus Delaunay triangles in the band up to the outline.

    Grid nodes keep a clearance of ``_CLEARANCE`` steps (> 0.541) from every outline
    sample, so every quad whose four corners are Delaunay points has an empty circumcircle
    and is a Delaunay cell: the Delaunay triangulation of the outline samples plus the
    nodes of the quads next to the band (two rings) contains those quads, and its triangles
    elsewhere are either in the band, inside the core (dropped), or outside the outline
    (dropped by the orientation test of triangles whose corners are all outline samples).
    """
    from . import _outline

    shape = grid.shape
    step = grid.step
    inside = _outline.inside_loops(loops, origin, step, shape)
    near = _outline.near_loops(loops, origin, step, shape, clearance=_CLEARANCE)
    valid = inside & ~near & grid.in_mask
    core = valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1] & valid[1:, 1:] & ~demoted
    interior = np.zeros(shape, bool)
    interior[1:-1, 1:-1] = core[:-1, :-1] & core[:-1, 1:] & core[1:, :-1] & core[1:, 1:]
    import cv2

    ring = cv2.dilate((~interior).view(np.uint8), np.ones((3, 3), np.uint8)) > 0
    node_i, node_j = np.nonzero(valid & ring)
    node_xy = origin + step * np.column_stack([node_j, node_i])
    samples = np.concatenate([lp.points for lp in loops])
    n_loop = [len(lp.points) for lp in loops]
    loop_id = np.repeat(np.arange(len(loops)), n_loop)
    pos = np.concatenate([np.arange(k) for k in n_loop])
    n_nodes = len(node_i)
    tri = _outline.delaunay(np.vstack([node_xy, samples]))
    tri = _keep_band_triangles(
        tri, np.vstack([node_xy, samples]), n_nodes, loop_id, pos, core, origin, step
    )
    # Vertex ids: every grid node used (core corners or band), then the outline samples.
    used = np.zeros(shape, bool)
    used[:-1, :-1] |= core
    used[:-1, 1:] |= core
    used[1:, :-1] |= core
    used[1:, 1:] |= core
    in_band = np.zeros(n_nodes, bool)
    in_band[tri[tri < n_nodes]] = True
    used[node_i, node_j] |= in_band
    vid = np.full(shape, -1, dtype=np.int64)
    n_used = int(used.sum())
    vid[used] = np.arange(n_used)
    remap = np.concatenate([vid[node_i, node_j], n_used + np.arange(len(samples))])
    faces = np.concatenate([_grid_faces(core, vid), remap[tri]])
    ui, uj = np.nonzero(used)
    pixels = np.vstack([np.column_stack([grid.us[uj], grid.vs[ui]]), samples])
    is_node = np.arange(len(pixels)) < n_used
    missing, stray = _check_boundary(
        remap[tri], _core_rim_edges(core, vid), n_used, n_loop, vid, core
    )
    return _Band(pixels, is_node, faces, missing, stray, n_loop)


def _keep_band_triangles(tri, xy, n_nodes, loop_id, pos, core, origin, step):
    """Drop Delaunay triangles inside core quads or outside the outline; orient the rest."""
    c = xy[tri].mean(axis=1)
    qj = np.floor((c[:, 0] - origin[0]) / step).astype(np.int64)
    qi = np.floor((c[:, 1] - origin[1]) / step).astype(np.int64)
    inq = (qi >= 0) & (qi < core.shape[0]) & (qj >= 0) & (qj < core.shape[1])
    in_core = np.zeros(len(tri), bool)
    in_core[inq] = core[qi[inq], qj[inq]]
    a, b, d = (xy[tri[:, k]] for k in range(3))
    cross = (b[:, 0] - a[:, 0]) * (d[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (d[:, 0] - a[:, 0])
    keep = ~in_core & (np.abs(cross) > 0)
    # Triangles whose corners are all samples of one loop: inside iff, taken in loop order,
    # they turn the way the loop does (clockwise in (u, v) maths: region on the right).
    outline_only = (tri >= n_nodes).all(axis=1)
    s = tri[outline_only] - n_nodes
    same = (loop_id[s] == loop_id[s[:, :1]]).all(axis=1)
    ordered = np.take_along_axis(s, np.argsort(pos[s], axis=1), axis=1)
    p0, p1, p2 = (xy[n_nodes + ordered[:, k]] for k in range(3))
    turn = (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (
        p2[:, 0] - p0[:, 0]
    )
    outside = np.zeros(len(tri), bool)
    outside[np.flatnonzero(outline_only)[same]] = turn[same] > 0
    keep &= ~outside
    tri, cross = tri[keep], cross[keep]
    # Counter-clockwise seen from +z (y = -v) is clockwise in (u, v) maths.
    flip = cross > 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return tri


def _grid_faces(core: np.ndarray, vid: np.ndarray) -> np.ndarray:
    """Two triangles per core quad, counter-clockwise seen from +z."""
    qr, qc = np.nonzero(core)
    faces = np.empty((qr.size, 2, 3), dtype=np.int64)
    # Counter-clockwise seen from +z (row index grows downward, y grows upward):
    # (p10, p11, p01) and (p10, p01, p00).
    faces[:, :, 0] = vid[qr + 1, qc][:, None]
    faces[:, 0, 1] = vid[qr + 1, qc + 1]
    faces[:, 0, 2] = faces[:, 1, 1] = vid[qr, qc + 1]
    faces[:, 1, 2] = vid[qr, qc]
    return faces.reshape(-1, 3)


def _core_rim_edges(core: np.ndarray, vid: np.ndarray) -> np.ndarray:
    """Directed edges (k, 2) of the core quads' boundary, in the quads' winding."""
    p = np.pad(core, 1)
    c = p[1:-1, 1:-1]
    sides = [  # (neighbour quad absent, from corner, to corner) with corners (row, col)
        (~p[2:, 1:-1], (1, 0), (1, 1)),  # bottom: p10 -> p11
        (~p[1:-1, 2:], (1, 1), (0, 1)),  # right: p11 -> p01
        (~p[:-2, 1:-1], (0, 1), (0, 0)),  # top: p01 -> p00
        (~p[1:-1, :-2], (0, 0), (1, 0)),  # left: p00 -> p10
    ]
    edges = []
    for absent, (ai, aj), (bi, bj) in sides:
        qr, qc = np.nonzero(c & absent)
        edges.append(np.column_stack([vid[qr + ai, qc + aj], vid[qr + bi, qc + bj]]))
    return np.concatenate(edges)


def _check_boundary(band_faces, rim_edges, n_used, n_loop, vid, core):
    """Outline edges missing from the boundary, and core quads next to stray boundary edges.

    The surface is right when the core's rim edges and the band triangles' edges pair up
    (each directed edge once, with its reverse) except for the outline loops' edges.
    """
    ids = np.arange(sum(n_loop))
    start = np.concatenate([[0], np.cumsum(n_loop)[:-1]])
    nxt = ids + 1
    nxt[start + np.asarray(n_loop) - 1] = start
    n = n_used + ids.size
    a = np.concatenate([band_faces.ravel(), rim_edges[:, 0]])
    b = np.concatenate([band_faces[:, [1, 2, 0]].ravel(), rim_edges[:, 1]])
    key = a * n + b
    srt = np.sort(key)
    dup = srt[1:][srt[1:] == srt[:-1]]
    open_ = ~np.isin(b * n + a, key)
    want = (n_used + ids) * n + (n_used + nxt)
    missing = ids[~np.isin(want, key[open_])]
    stray = open_ & ~np.isin(key, want)
    bad = np.unique(np.concatenate([a[stray], b[stray], dup // n, dup % n]))
    quads = np.zeros(core.shape, bool)
    nodes = bad[bad < n_used]
    if nodes.size:
        hit = np.isin(vid, nodes)
        quads = (hit[:-1, :-1] | hit[:-1, 1:] | hit[1:, :-1] | hit[1:, 1:]) & core
    samples = bad[bad >= n_used] - n_used
    if samples.size:  # refine the outline edges on both sides of those samples
        prev = np.flatnonzero(np.isin(nxt, samples))
        missing = np.unique(np.concatenate([missing, samples, prev]))
    return missing, np.flatnonzero(quads)


def _repair(loops, band: _Band, demoted: np.ndarray, win: _Window) -> None:
    """Refine outline edges that did not come out, demote core quads next to stray edges."""
    from . import _outline

    start = np.concatenate([[0], np.cumsum(band.n_outline)[:-1]])
    for k, loop in enumerate(loops):
        local = band.missing[
            (band.missing >= start[k]) & (band.missing < start[k] + len(loop.points))
        ]
        if local.size:
            n_before = len(loop.points)
            loop.split(local - start[k])
            if len(loop.points) > n_before:
                _outline.push_inside(loop, win.valid_at)
    demoted.ravel()[band.stray] = True


def _rim_depth(
    win: _Window, inside: np.ndarray, *, rings: int, trim_px: float, tolerance_mm: float
) -> np.ndarray:
    """The crop's depth continued ``rings`` pixels past its edge (float32, 0 beyond).

    The outermost ``trim_px`` pixels are a depth map's least reliable: where one differs by
    more than ``tolerance_mm`` from the linear continuation of the depth inside them, it
    takes that continuation instead. The continuation stays within the range of the map's
    own depths nearby (the same reach, ± ``tolerance_mm``): where the face turns away
    steeply at the temples of a small face (2 px of trim are ~3 mm there), the slope
    continued unbounded put the rim up to 25 mm behind every depth of the map, a flap.
    ``inside``: distance (px) of each crop pixel to the nearest undefined one.
    """
    import cv2

    from ._extend import extend_linear

    core = inside > trim_px
    if core.sum() * 4 < win.finite.sum():  # too thin to trim
        core = win.finite
    reach = rings + int(math.ceil(trim_px))
    ext = extend_linear(np.where(core, win.depth, np.nan), reach)
    # (past the edge the map continues the core, to within tolerance_mm of the edge pixels)
    keep = win.finite & (np.abs(win.depth - ext) <= tolerance_mm)
    ext = np.where(keep, win.depth, ext)
    ext = ext.astype(np.float32, copy=False)
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)  # the continuation's reach
    big = float(np.finfo(np.float32).max)
    undefined = ~win.finite
    values = np.where(undefined, np.float32(big), win.depth).astype(np.float32, copy=False)
    lo = cv2.erode(values, kernel, borderValue=big)
    lo -= tolerance_mm
    np.copyto(values, np.float32(-big), where=undefined)
    hi = cv2.dilate(values, kernel, borderValue=-big)
    hi += tolerance_mm
    np.maximum(ext, lo, out=ext)
    np.minimum(ext, hi, out=ext)
    return np.where(np.isfinite(ext), ext, 0.0).astype(np.float32)


def _smooth_along_outline(z, uv, loops, zmap, *, sigma_px: float, width_px: float, step_px: float):
    """Average the depth of vertices near the outline along curves parallel to it.

    Each loop is sampled at regular arc steps ``ds`` (a pixel, or half a grid step on
    coarse grids, so that pixel-scale teeth do not alias into the average; at least a
    fifth of ``sigma_px``). A vertex at
    distance ``d`` < ``width_px`` inside the outline, next to arc sample ``k``, becomes
    ``(1 - w(d)) z + w(d) m``: ``m`` is the Gaussian average (``sigma_px`` of arc) of
    ``zmap`` at the points ``p[k + j] + d n[k + j]`` of the parallel curve through it, ``w``
    falls smoothly from 1 on the outline to 0 at ``width_px``. Averaging along the outline
    only keeps the profile across the rim (no lip).
    """
    from . import _outline

    ds = min(0.5 * sigma_px, max(1.0, 0.5 * step_px, 0.2 * sigma_px))
    frames = [lp.arc_samples(ds) for lp in loops]
    p = np.concatenate([f[0] for f in frames])
    n = np.concatenate([f[1] for f in frames])
    size = np.array([len(f[0]) for f in frames])
    start = np.repeat(np.concatenate([[0], np.cumsum(size)[:-1]]), size)
    length = np.repeat(size, size)
    k = _outline.nearest_point(p, uv, zmap.shape)
    rel = uv - p[k]
    d = np.maximum(np.sum(rel * n[k], axis=1), 0.0)
    near = np.flatnonzero(d < width_px)
    out = z.astype(np.float64)
    if near.size == 0:
        return out
    k, d = k[near], d[near]
    # arc position of the vertex relative to sample k (along the tangent, region on the
    # right of the direction of travel): the Gaussian is centred there, not on sample k
    tau = rel[near, 0] * -n[k, 1] + rel[near, 1] * n[k, 0]
    half = int(math.ceil(_TRUNCATE * sigma_px / ds)) + 2
    offsets = np.arange(-half, half + 1)
    weights = np.exp(-0.5 * ((offsets[None, :] * ds - tau[:, None]) / sigma_px) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    idx = (k - start[k])[:, None] + offsets[None, :]
    idx = start[k][:, None] + idx % length[k][:, None]
    # the points of the parallel curves, x and y apart (gathers of whole (N, 2) rows
    # cost more than the arithmetic)
    qu = p[:, 0][idx] + d[:, None] * n[:, 0][idx]
    qv = p[:, 1][idx] + d[:, None] * n[:, 1][idx]
    mean = np.sum(_sample_at(zmap, qu.ravel(), qv.ravel()).reshape(idx.shape) * weights, axis=1)
    r = d / width_px
    blend = 1.0 - r * r * (3.0 - 2.0 * r)
    out[near] += blend * (mean - out[near])
    return out


def _sample(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (h, w) or (h, w, c) image at (N, 2) pixel positions: (N,) or
    (N, c), the image's dtype (OpenCV remap, edges replicated)."""
    return _sample_at(image, uv[:, 0], uv[:, 1])


def _sample_at(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """:func:`_sample` at the positions ``(u[i], v[i])`` (two (N,) arrays)."""
    import cv2

    n = len(u)
    cols = 1024
    rows = max(-(-n // cols), 1)
    maps = np.zeros((2, rows * cols), np.float32)
    maps[0, :n] = u
    maps[1, :n] = v
    out = cv2.remap(
        image,
        maps[0].reshape(rows, cols),
        maps[1].reshape(rows, cols),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(rows * cols, *image.shape[2:])[:n]


def _bilinear_rgb(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample an (H, W, 3) uint8 image bilinearly at pixel positions (u, v); (N, 3) uint8.

    OpenCV's remap: positions are rounded to 1/32 pixel, edges replicated."""
    return _sample_at(image, u, v).reshape(-1, 3)


def _point_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, float32 (N, 3)."""
    # Coordinate by coordinate on whole columns (np.cross and norms along a length-3 axis
    # cost several times the arithmetic).
    x, y, z = (np.asarray(points[:, k], dtype=np.float32) for k in range(3))
    f0, f1, f2 = (np.ascontiguousarray(faces[:, k]) for k in range(3))
    ax, ay, az = x[f0], y[f0], z[f0]
    ux, uy, uz = x[f1] - ax, y[f1] - ay, z[f1] - az
    vx, vy, vz = x[f2] - ax, y[f2] - ay, z[f2] - az
    face_normal = (uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx)
    idx = faces.ravel()
    n = [
        np.bincount(idx, weights=np.repeat(c.astype(np.float64), 3), minlength=points.shape[0])
        for c in face_normal
    ]
    norm = np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
    norm[norm == 0] = 1.0
    return np.column_stack([c / norm for c in n]).astype(np.float32)

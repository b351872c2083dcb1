"""Close a face relief into a watertight, printable solid (relief + side walls + flat back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import UsageError
from .mesharrays import MeshArrays, is_polydata

if TYPE_CHECKING:  # pragma: no cover
    import pyvista as pv

__all__ = ["make_solid", "solid_arrays"]


def make_solid(
    surface: pv.PolyData,
    *,
    base_mm: float = 3.0,
    width_mm: float | None = None,
    edge_mm: float = 0.0,
) -> pv.PolyData:
    """Turn a relief surface into a watertight solid with side walls and a flat back plate.

    The back plate is a copy of the surface's triangulation flattened onto the plane
    ``z = min(z) - base_mm`` with reversed winding; the walls are a strip of two triangles per
    boundary edge joining each boundary loop to its copy on the plate, so they are vertical
    and follow the surface's outline.  The result is a closed 2-manifold: every edge is
    shared by exactly two triangles, winding is consistent with normals pointing outward, no
    triangle is degenerate, and the enclosed volume is positive.

    With ``edge_mm`` > 0 the edge between relief and wall is rounded: a vertex at distance
    ``d`` < ``edge_mm`` (in x, y) from the outline is lowered by
    ``r - sqrt(r**2 - (r - d)**2)``, ``r = edge_mm`` (a quarter circle: the full ``r`` at
    the outline, where it meets the wall vertically, nothing from ``r`` inward, where it
    meets the relief tangentially). The rounding is sampled by the surface's own vertices
    (about one grid step apart).

    Parameters
    ----------
    surface : pyvista.PolyData or MeshArrays
        Relief as made by :func:`face3d_mesh.surface.depth_to_mesh`: triangles in mm, a
        manifold height field over the xy plane wound counter-clockwise seen from +z (normals
        toward the camera, +z), with boundary made of simple loops.  Not modified.
    base_mm : float, keyword-only
        Thickness of the back plate behind the deepest point of the relief, mm (> 0).  It is
        the thickness in the final object, after any ``width_mm`` scaling.
    width_mm : float, optional, keyword-only
        When given, the relief is first scaled uniformly (about the origin) so that its
        x-extent is exactly ``width_mm`` mm; otherwise it keeps its real size.
    edge_mm : float, keyword-only
        Radius of the rounded edge between relief and wall, mm in the final object (0 =
        sharp, the default; at most a quarter of the relief's smaller extent).

    Returns
    -------
    pyvista.PolyData
        Closed triangle mesh in mm (float64 points, no point data); ``field_data`` keeps the
        surface's entries and adds ``"scale"`` (factor applied) and ``"base_z_mm"`` (z of the
        back plate).

    Raises
    ------
    UsageError
        On bad parameters, an empty surface, or a surface that is not a consistently wound
        manifold height field facing +z.
    """
    return solid_arrays(surface, base_mm=base_mm, width_mm=width_mm, edge_mm=edge_mm).to_polydata()


def solid_arrays(
    surface: MeshArrays | pv.PolyData,
    *,
    base_mm: float = 3.0,
    width_mm: float | None = None,
    edge_mm: float = 0.0,
) -> MeshArrays:
    """:func:`make_solid` without PyVista: the same solid as
    :class:`~face3d_mesh.mesharrays.MeshArrays` (points float64, mm, no per-vertex data).

    ``surface`` may be a :class:`~face3d_mesh.mesharrays.MeshArrays` (as made by
    :func:`~face3d_mesh.surface.surface_arrays`) or a ``pyvista.PolyData``.
    """
    if is_polydata(surface):
        surface = MeshArrays.from_polydata(surface)
    elif not isinstance(surface, MeshArrays):
        raise UsageError(f"surface must be a pyvista.PolyData, got {type(surface).__name__}")
    if not (np.isfinite(base_mm) and base_mm > 0):
        raise UsageError(f"base_mm must be a positive number, got {base_mm}")
    if width_mm is not None and not (np.isfinite(width_mm) and width_mm > 0):
        raise UsageError(f"width_mm must be a positive number, got {width_mm}")
    if not (np.isfinite(edge_mm) and edge_mm >= 0):
        raise UsageError(f"edge_mm must be a number >= 0, got {edge_mm}")
    if surface.n_cells == 0 or surface.n_points == 0:
        raise UsageError("surface is empty")
    pts, faces = _height_field(surface)
    ba, bb = _boundary_edges(faces, pts.shape[0])

    scale = 1.0
    if width_mm is not None:
        extent = float(np.ptp(pts[:, 0]))
        if extent <= 0:
            raise UsageError("surface has zero width; cannot scale it")
        scale = float(width_mm) / extent
        pts = pts * scale
    if edge_mm > 0:
        pts = _round_edge(pts, ba, bb, float(edge_mm))
    z_back = float(pts[:, 2].min()) - float(base_mm)

    n = pts.shape[0]
    back = pts.copy()
    back[:, 2] = z_back
    points = np.concatenate([pts, back])
    wall1 = np.stack([bb, ba, ba + n], axis=1)
    wall2 = np.stack([bb, ba + n, bb + n], axis=1)
    all_faces = np.concatenate([faces, faces[:, ::-1] + n, wall1, wall2])
    field_data = {name: np.asarray(value) for name, value in surface.field_data.items()}
    field_data["scale"] = np.array([scale])
    field_data["base_z_mm"] = np.array([z_back])
    return MeshArrays(points=points, faces=all_faces, field_data=field_data)


def _height_field(surface) -> tuple[np.ndarray, np.ndarray]:
    """The surface's used points (float64) and triangles; UsageError unless every triangle
    faces +z with a non-zero area in xy."""
    faces = np.asarray(surface.faces, dtype=np.int64)
    # Compact: only the points used by a triangle.
    used, faces = np.unique(faces, return_inverse=True)
    faces = faces.reshape(-1, 3)
    pts = np.asarray(surface.points, dtype=np.float64)[used]
    e1 = pts[faces[:, 1], :2] - pts[faces[:, 0], :2]
    e2 = pts[faces[:, 2], :2] - pts[faces[:, 0], :2]
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    if not np.all(area2 > 0):
        raise UsageError(
            "surface is not a height field wound toward +z "
            f"({int(np.sum(area2 <= 0))} triangles face away or are degenerate in xy; a "
            "reconstruction's perspective surface can overhang: use rec.solid(), which is "
            "built on the photo's grid)"
        )
    return pts, faces


def _boundary_edges(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed boundary edges ``ba[k] -> bb[k]``; UsageError unless the surface is a
    consistently wound manifold whose boundary is a set of simple loops."""
    # Directed edges; a manifold, consistently wound surface has each at most once.
    a = faces.ravel()
    b = faces[:, [1, 2, 0]].ravel()
    key = a * n + b
    key_sorted = np.sort(key)
    if np.any(key_sorted[1:] == key_sorted[:-1]):
        raise UsageError("surface is not manifold or its winding is inconsistent")
    rev = b * n + a
    pos = np.searchsorted(key_sorted, rev)
    pos[pos == key_sorted.size] = 0
    boundary = key_sorted[pos] != rev
    ba, bb = a[boundary], b[boundary]
    if ba.size == 0:
        raise UsageError("surface has no boundary: it is already closed")
    if np.any(np.bincount(ba, minlength=n) > 1):
        raise UsageError("surface boundary is not a set of simple loops (bowtie vertex)")
    return ba, bb


def _round_edge(pts: np.ndarray, ba: np.ndarray, bb: np.ndarray, radius: float) -> np.ndarray:
    """Lower the vertices near the outline (boundary edges ``ba -> bb``) along a quarter
    circle of ``radius`` mm; returns new points."""
    from ._outline import nearest_segment

    extent = np.ptp(pts[:, :2], axis=0)
    if radius > 0.25 * float(extent.min()):
        raise UsageError(
            f"edge_mm {radius:g} is too large for a {extent[0]:.0f} x {extent[1]:.0f} mm "
            "relief (at most a quarter of its smaller side)"
        )
    xy = pts[:, :2]
    _, _, dist = nearest_segment(xy[ba], xy[bb], xy, max_dist=radius)
    near = dist < radius
    out = pts.copy()
    gap = radius - dist[near]
    out[near, 2] -= radius - np.sqrt(np.maximum(radius**2 - gap**2, 0.0))
    return out

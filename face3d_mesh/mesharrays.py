"""A triangle mesh as plain numpy arrays, and its conversion to and from ``pyvista.PolyData``.

The export path (reconstruct, close into a solid, write a file) works on these arrays and
never needs PyVista (~0.3 s to import); a ``PolyData`` is made only when one is asked for
(``Reconstruction.mesh``, the viewer), by :meth:`MeshArrays.to_polydata`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import UsageError

__all__ = ["MeshArrays", "as_mesh_arrays", "is_polydata"]


@dataclass(frozen=True, eq=False)
class MeshArrays:
    """A triangle mesh: points, triangles and the optional per-vertex data we use.

    Attributes
    ----------
    points : ndarray, shape (N, 3), float
        Vertex coordinates, mm.
    faces : ndarray, shape (M, 3), int64
        Triangles as indices into ``points``, counter-clockwise seen from outside.
    normals : ndarray, shape (N, 3), float32, optional
        Unit vertex normals.
    uv : ndarray, shape (N, 2), float32, optional
        Texture coordinates in the OBJ convention (origin at the photo's bottom-left).
    rgb : ndarray, shape (N, 3), uint8, optional
        Vertex colours.
    field_data : mapping of str to ndarray
        Mesh-wide values (e.g. ``"mm_per_px"``, ``"image_size_px"``), as in PyVista.
    """

    points: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    uv: np.ndarray | None = None
    rgb: np.ndarray | None = None
    field_data: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        """Number of vertices."""
        return int(self.points.shape[0])

    @property
    def n_cells(self) -> int:
        """Number of triangles (the name PyVista uses)."""
        return int(self.faces.shape[0])

    @property
    def bounds(self) -> tuple[float, float, float, float, float, float]:
        """``(xmin, xmax, ymin, ymax, zmin, zmax)`` of the points, as in PyVista."""
        lo, hi = self.points.min(axis=0), self.points.max(axis=0)
        return tuple(float(v) for pair in zip(lo, hi, strict=True) for v in pair)

    def to_polydata(self):
        """The mesh as a ``pyvista.PolyData``.

        Point data: ``"Normals"`` (active normals), ``"UV"`` (active texture coordinates),
        ``"RGB"``, for those present; field data copied.
        """
        import pyvista as pv

        mesh = pv.PolyData.from_regular_faces(self.points, self.faces)
        if self.normals is not None:
            mesh.point_data["Normals"] = self.normals
            mesh.point_data.active_normals_name = "Normals"
        if self.uv is not None:
            mesh.point_data["UV"] = self.uv
            mesh.point_data.active_texture_coordinates_name = "UV"
        if self.rgb is not None:
            mesh.point_data["RGB"] = self.rgb
        mesh.point_data.active_scalars_name = None
        for name, value in self.field_data.items():
            mesh.field_data[name] = np.asarray(value)
        return mesh

    @classmethod
    def from_polydata(cls, mesh) -> MeshArrays:
        """The arrays of a ``pyvista.PolyData`` (triangulated first if needed).

        Raises
        ------
        UsageError
            ``mesh`` is not a PolyData.
        """
        if not is_polydata(mesh):
            raise UsageError(f"mesh must be a pyvista.PolyData, got {type(mesh).__name__}")
        if mesh.n_cells and not mesh.is_all_triangles:
            mesh = mesh.triangulate()
        faces = (
            np.asarray(mesh.regular_faces, dtype=np.int64)
            if mesh.n_cells
            else np.empty((0, 3), np.int64)
        )
        pd = mesh.point_data
        tc = pd.active_texture_coordinates
        if tc is None and "UV" in pd:
            tc = pd["UV"]
        normals = pd["Normals"] if "Normals" in pd else None
        rgb = None
        if "RGB" in pd:
            rgb = np.asarray(pd["RGB"])
            if rgb.shape != (mesh.n_points, 3):
                raise UsageError(f"point_data['RGB'] must be (N, 3), got {rgb.shape}")
            rgb = rgb.astype(np.uint8)
        return cls(
            points=np.asarray(mesh.points),
            faces=faces,
            normals=None if normals is None else np.asarray(normals, np.float32),
            uv=None if tc is None else np.asarray(tc, np.float32),
            rgb=rgb,
            field_data={k: np.asarray(mesh.field_data[k]) for k in mesh.field_data.keys()},
        )


def is_polydata(obj) -> bool:
    """Whether ``obj`` is a ``pyvista.PolyData``, without importing PyVista to find out."""
    pv = sys.modules.get("pyvista")
    return pv is not None and isinstance(obj, pv.PolyData)


def as_mesh_arrays(mesh) -> MeshArrays:
    """``mesh`` (a :class:`MeshArrays` or a ``pyvista.PolyData``) as :class:`MeshArrays`."""
    if isinstance(mesh, MeshArrays):
        return mesh
    return MeshArrays.from_polydata(mesh)

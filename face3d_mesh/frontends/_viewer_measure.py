"""The viewer's overlays on the 3D face: landmarks, and the distance measurement in mm.

Part of :class:`~face3d_mesh.frontends._viewer_impl.FaceViewer` (a mixin).
"""

from __future__ import annotations

import numpy as np
import pyvista as pv

__all__ = ["MeasureMixin"]


def _pixel_to_mesh_affine(mesh, image_shape):
    """Least-squares map from photo pixels (u, v) to mesh (x, y), from the mesh's UVs.

    Returns a (3, 2) matrix ``A`` such that ``[u, v, 1] @ A = [x, y]``, or None when the
    mesh has no texture coordinates.
    """
    tc = mesh.point_data.active_texture_coordinates
    if tc is None or mesh.n_points < 3:
        return None
    h, w = image_shape[:2]
    tc = np.asarray(tc, dtype=np.float64)
    u = tc[:, 0] * w
    v = (1.0 - tc[:, 1]) * h
    sel = slice(None, None, max(1, mesh.n_points // 5000))
    design = np.stack([u[sel], v[sel], np.ones_like(u[sel])], axis=1)
    a, *_ = np.linalg.lstsq(design, np.asarray(mesh.points, np.float64)[sel, :2], rcond=None)
    return a


class MeasureMixin:
    """Landmarks drawn on the 3D face; two picked surface points and their distance."""

    def _update_landmarks3d(self):
        act = self.actors.get("landmarks")
        lm = getattr(self.rec, "landmarks", None) if self.rec is not None else None
        affine = _pixel_to_mesh_affine(self.base, self.rec.image.shape) if lm is not None else None
        if affine is None:
            if act is not None:
                act.visibility = False
            self._landmarks_available = False
            return
        lm_mesh = getattr(self.rec, "landmarks_mesh", None)
        if lm_mesh is not None:
            pts = np.array(lm_mesh, np.float64)  # the reconstruction's own camera model
        else:
            lm = np.asarray(lm, np.float64)
            # landmark z shares depth_mm's offset (nose tip ~ 0), the mesh's origin
            pts = np.c_[np.c_[lm[:, :2], np.ones(len(lm))] @ affine, -lm[:, 2]]
        pts[:, 2] = pts[:, 2] * self.exaggeration + 0.5  # a hair in front of the surface
        pts = pts.astype(np.float32)
        self.landmarks3d.copy_from(pv.PolyData(pts))
        self._landmarks_available = True
        act.visibility = self.show_landmarks3d

    def toggle_landmarks(self):
        """Show or hide the landmarks on the 3D face."""
        if not getattr(self, "_landmarks_available", False):
            self._message("no landmarks: this is a bare mesh")
            return
        self.show_landmarks3d = not self.show_landmarks3d
        self.actors["landmarks"].visibility = self.show_landmarks3d
        self._message(f"landmarks {'on' if self.show_landmarks3d else 'off'}")

    def measure_at_cursor(self):
        """Pick the surface point under the mouse; two picks give a distance in mm."""
        iren = self.plotter.iren
        if iren is None:
            return None
        x, y = iren.interactor.GetEventPosition()
        return self.pick(x, y)

    def pick(self, x, y):
        """Pick the surface point at display position (x, y) for the measurement.

        Parameters
        ----------
        x, y : int
            Display coordinates (pixels, origin bottom-left).

        Returns
        -------
        float or None
            The distance in mm once two points are picked.
        """
        import vtk

        picker = vtk.vtkCellPicker()
        picker.SetTolerance(0.0005)
        # pick the surface whatever the mode (the point cloud and the wireframe are not
        # triangles): the shaded actor, visible for the pick only (a pick draws nothing)
        surface = self.actors["shaded"]
        shown = surface.GetVisibility()
        for name, act in self.actors.items():
            act.SetPickable(name in ("shaded", "textured", "depth"))
        if self.mode not in ("shaded", "textured", "depth"):
            surface.SetVisibility(True)
        try:
            hit = picker.Pick(x, y, 0, self.main_renderer) and picker.GetCellId() >= 0
        finally:
            surface.SetVisibility(shown)
        if not hit:
            self._message("measure: no surface under the cursor")
            return None
        p = np.array(picker.GetPickPosition(), float)
        p[2] /= self.exaggeration  # real mm
        if len(self.picks) >= 2:
            self.picks = []
        self.picks.append(p)
        self._draw_picks()
        if len(self.picks) == 2:
            d = self.distance_mm()
            self._message(f"distance: {d:.1f} mm")
            return d
        self._message("measure: first point picked; press m over a second point")
        return None

    def distance_mm(self):
        """Distance between the two picked points in mm (NaN if fewer than two)."""
        if len(self.picks) < 2:
            return float("nan")
        return float(np.linalg.norm(self.picks[1] - self.picks[0]))

    def _draw_picks(self):
        pts = np.array(self.picks, float).reshape(-1, 3)
        pts[:, 2] *= self.exaggeration
        self.pick_cloud.copy_from(pv.PolyData(pts.astype(np.float32)))
        self.actors["picks"].visibility = len(pts) > 0
        if len(pts) == 2:
            self.pick_line.copy_from(pv.Line(pts[0], pts[1]))
        self.actors["pick_line"].visibility = len(pts) == 2

    def _clear_measurement(self, render=False):
        self.picks = []
        if "picks" in getattr(self, "actors", {}):
            self.actors["picks"].visibility = False
            self.actors["pick_line"].visibility = False

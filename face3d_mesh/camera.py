"""The camera behind a reconstruction: how photo pixels and depths become mesh points.

A pinhole camera with focal length ``f`` (pixels) and principal point ``(cx, cy)`` sees the
point at depth ``Z`` (mm, along the optical axis) that projects to pixel ``(u, v)`` at
``X = (u - cx) Z / f``, ``Y = (v - cy) Z / f``. The mesh frame puts its origin at the
nose tip, pixel ``(u0, v0)`` at depth ``Z0``, with x right, y up and z toward the camera;
a pixel with depth ``d`` behind the nose tip (``Z = Z0 + d``) is the mesh point::

    x = ((u - cx) (Z0 + d) - (u0 - cx) Z0) / f
    y = -((v - cy) (Z0 + d) - (v0 - cy) Z0) / f
    z = -d

Far parts of the face (its sides) look smaller in a photo than near ones (the nose); this
undoes that, where the orthographic mapping ``x = (u - u0) s`` leaves a face photographed
from 30 cm with its sides ~25 % too narrow against the nose. The distance ``Z0`` follows
from the metric scale: ``s`` mm per pixel at the depth of the outer eye corners (where the
scale cues measure) puts those corners at ``Z = s f``.

The pipeline uses this camera for every photo: with its focal length when known
(``--focal-px`` or EXIF, the principal point at the photo's centre), otherwise with a
guessed one (the principal point at the centre of the face's crop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Pinhole"]

#: The nose tip is never put nearer the camera than this (mm), whatever focal length a
#: user gives.
MIN_DISTANCE_MM = 150.0


@dataclass(frozen=True)
class Pinhole:
    """A pinhole camera and the nose tip's place in front of it.

    Attributes
    ----------
    focal_px : float
        Focal length, pixels of the photo.
    principal_point : (float, float)
        ``(cx, cy)``, pixels of the photo.
    origin_px : (float, float)
        ``(u0, v0)``: the pixel of the mesh origin (the nose tip).
    distance_mm : float
        ``Z0``: the nose tip's depth along the optical axis, mm.
    """

    focal_px: float
    principal_point: tuple[float, float]
    origin_px: tuple[float, float]
    distance_mm: float

    @classmethod
    def from_scale(
        cls, focal_px, principal_point, origin_px, *, mm_per_px: float, eye_depth_mm: float
    ) -> Pinhole:
        """The camera given the metric scale ``mm_per_px`` at depth ``eye_depth_mm`` (mm
        behind the nose tip) of the outer eye corners."""
        distance = max(float(mm_per_px) * float(focal_px) - float(eye_depth_mm), MIN_DISTANCE_MM)
        return cls(
            float(focal_px),
            (float(principal_point[0]), float(principal_point[1])),
            (float(origin_px[0]), float(origin_px[1])),
            distance,
        )

    def to_mesh(self, u, v, depth_mm) -> np.ndarray:
        """Pixels ``(u, v)`` with depths (mm behind the nose tip) to mesh points (mm).

        Returns
        -------
        numpy.ndarray
            (..., 3) float64, the broadcast shape of the inputs.
        """
        u, v, d = np.broadcast_arrays(
            np.asarray(u, float), np.asarray(v, float), np.asarray(depth_mm, float)
        )
        f, (cx, cy), (u0, v0), z0 = (
            self.focal_px,
            self.principal_point,
            self.origin_px,
            self.distance_mm,
        )
        z = z0 + d
        x = ((u - cx) * z - (u0 - cx) * z0) / f
        y = -((v - cy) * z - (v0 - cy) * z0) / f
        return np.stack([x, y, -d], axis=-1)

    def to_pixels(self, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inverse of :meth:`to_mesh`: mesh points (..., 3) to ``(u, v, depth_mm)``."""
        pts = np.asarray(points, float)
        f, (cx, cy), (u0, v0), z0 = (
            self.focal_px,
            self.principal_point,
            self.origin_px,
            self.distance_mm,
        )
        d = -pts[..., 2]
        z = z0 + d
        u = cx + (pts[..., 0] * f + (u0 - cx) * z0) / z
        v = cy + (-pts[..., 1] * f + (v0 - cy) * z0) / z
        return u, v, d

    def to_dict(self) -> dict:
        """Plain values (JSON-ready)."""
        return {
            "model": "perspective",
            "focal_px": self.focal_px,
            "principal_point_px": list(self.principal_point),
            "origin_px": list(self.origin_px),
            "distance_mm": self.distance_mm,
        }

"""A synthetic, face-like stand-in for :class:`face3d_mesh.Reconstruction`.

It follows the documented contract (image, landmarks, mask, depth_mm, mesh, scale, config,
``with_config``, ``save``) so the viewer can be tested without MediaPipe or a real photo:
the head is an ellipsoid with a nose, brows, eye sockets, lips and chin, the photo is a
painted face on a grey background, and the mesh is a regular grid over the face mask.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from face3d_mesh.config import ReconstructionConfig

__all__ = ["FakeReconstruction", "FakeScale", "make_fake_reconstruction", "grid_mesh"]


@dataclasses.dataclass(frozen=True)
class FakeScale:
    """Stand-in for the pipeline's scale estimate."""

    mm_per_px: float
    source: str = "synthetic"
    uncertainty: float = 0.05

    def describe(self) -> str:
        """One line: scale, source and relative uncertainty."""
        return f"{self.mm_per_px:.3f} mm/px ({self.source}, ±{100 * self.uncertainty:.0f}%)"


def _gauss(x, y, x0, y0, sx, sy):
    return np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2))


def _face_depth(size: int, mm_per_px: float, seed: int = 0):
    """Return (depth_mm, mask, centre_uv) of a synthetic face, nose tip at depth 0."""
    h = w = size
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    cu, cv = 0.5 * w, 0.53 * h
    x = (u - cu) * mm_per_px  # mm, right
    y = -(v - cv) * mm_per_px  # mm, up
    a, b, c = 72.0, 98.0, 62.0  # half width, half height, half depth of the head (mm)
    r2 = (x / a) ** 2 + (y / b) ** 2
    mask = r2 < 1.0
    z = c * np.sqrt(np.clip(1.0 - r2, 0.0, None))  # toward the camera
    # features, heights in mm (positive = toward the camera)
    z += 22.0 * _gauss(x, y, 0, 2, 7, 16) * (y < 22)  # nose ridge and tip
    z += 4.0 * _gauss(x, y, 0, 28, 12, 7)  # nose bridge
    z -= 9.0 * (_gauss(x, y, -30, 30, 12, 7) + _gauss(x, y, 30, 30, 12, 7))  # eye sockets
    z += 5.0 * (_gauss(x, y, -30, 44, 16, 4) + _gauss(x, y, 30, 44, 16, 4))  # brows
    z += 4.0 * _gauss(x, y, 0, -36, 18, 5)  # lips
    z += 5.0 * _gauss(x, y, 0, -72, 18, 10)  # chin
    z += 3.0 * (_gauss(x, y, -38, -5, 12, 12) + _gauss(x, y, 38, -5, 12, 12))  # cheekbones
    rng = np.random.default_rng(seed)
    z += rng.normal(0.0, 0.15, z.shape)  # sensor-like noise: smoothing has something to do
    depth = (z[mask].max() - z).astype(np.float32)
    depth[~mask] = np.nan
    return depth, mask, (cu, cv)


def _paint_photo(size: int, mask: np.ndarray, mm_per_px: float, depth: np.ndarray):
    """A painted RGB portrait matching the synthetic depth (uint8, H×W×3)."""
    import cv2

    h = w = size
    img = np.zeros((h, w, 3), np.float32)
    img[:] = np.linspace(150, 110, h)[:, None, None] * np.array([0.75, 0.82, 0.95])
    skin = np.array([224, 180, 150], np.float32)
    shade = np.nan_to_num(1.0 - 0.0045 * depth, nan=0.0)[..., None]
    img = np.where(mask[..., None], skin * (0.55 + 0.45 * shade), img)
    img = img.astype(np.uint8)
    cu, cv = 0.5 * w, 0.53 * h

    def px(xmm, ymm):
        return int(round(cu + xmm / mm_per_px)), int(round(cv - ymm / mm_per_px))

    def axes(a, b):
        return int(round(a / mm_per_px)), int(round(b / mm_per_px))

    for side in (-1, 1):
        cv2.ellipse(img, px(30 * side, 30), axes(11, 5), 0, 0, 360, (245, 245, 240), -1)
        cv2.circle(img, px(30 * side, 30), int(5 / mm_per_px), (70, 95, 60), -1)
        cv2.circle(img, px(30 * side, 30), int(2.2 / mm_per_px), (15, 15, 15), -1)
        cv2.ellipse(img, px(30 * side, 44), axes(15, 2.5), 0, 0, 360, (90, 60, 40), -1)
    cv2.ellipse(img, px(0, -36), axes(17, 4.5), 0, 0, 360, (180, 70, 80), -1)
    cv2.line(img, px(-16, -36), px(16, -36), (120, 40, 50), 2, cv2.LINE_AA)
    cv2.ellipse(img, px(0, -2), axes(6, 3), 0, 0, 360, (170, 120, 100), -1)  # nostrils
    return cv2.GaussianBlur(img, (3, 3), 0)


def _smooth_depth(depth: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing restricted to the mask (normalised convolution)."""
    if sigma_px <= 0:
        return depth.copy()
    import cv2

    d = np.where(mask, depth, 0).astype(np.float32)
    wgt = mask.astype(np.float32)
    k = int(2 * round(3 * sigma_px) + 1)
    num = cv2.GaussianBlur(d, (k, k), sigma_px)
    den = cv2.GaussianBlur(wgt, (k, k), sigma_px)
    out = num / np.maximum(den, 1e-6)
    out[~mask] = np.nan
    return out.astype(np.float32)


def grid_mesh(depth_mm, image, mm_per_px, origin_uv, step_px=1.0):
    """Triangulate a depth map on a regular pixel grid, following the mesh contract.

    Parameters
    ----------
    depth_mm : ndarray
        H×W depth in mm, NaN outside the face.
    image : ndarray
        H×W×3 uint8 RGB photo (vertex colours).
    mm_per_px : float
        Scale.
    origin_uv : tuple of float
        Pixel position (u, v) of the origin (the nose tip).
    step_px : float
        Grid step in pixels.

    Returns
    -------
    pyvista.PolyData
        Triangles in mm (x right, y up, z toward the camera) with point data ``RGB`` and
        active texture coordinates ``UV``.
    """
    import cv2
    import pyvista as pv

    h, w = depth_mm.shape
    us = np.arange(0, w - 1 + 1e-9, step_px, dtype=np.float32)
    vs = np.arange(0, h - 1 + 1e-9, step_px, dtype=np.float32)
    uu, vv = np.meshgrid(us, vs)
    d = cv2.remap(depth_mm.astype(np.float32), uu, vv, cv2.INTER_LINEAR)
    valid = np.isfinite(d)
    idx = np.full(d.shape, -1, np.int64)
    idx[valid] = np.arange(valid.sum())
    a, b_, c, e = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    quad = (a >= 0) & (b_ >= 0) & (c >= 0) & (e >= 0)
    t1 = np.stack([a[quad], c[quad], b_[quad]], axis=1)
    t2 = np.stack([b_[quad], c[quad], e[quad]], axis=1)
    tris = np.concatenate([t1, t2])
    faces = np.hstack([np.full((len(tris), 1), 3, np.int64), tris]).ravel()
    u0, v0 = origin_uv
    pts = np.stack([(uu[valid] - u0) * mm_per_px, -(vv[valid] - v0) * mm_per_px, -d[valid]], axis=1)
    mesh = pv.PolyData(pts.astype(np.float32), faces)
    ui = np.clip(np.round(uu[valid]).astype(int), 0, w - 1)
    vi = np.clip(np.round(vv[valid]).astype(int), 0, h - 1)
    mesh.point_data["RGB"] = image[vi, ui]
    mesh.point_data["UV"] = np.stack([uu[valid] / w, 1.0 - vv[valid] / h], axis=1).astype(
        np.float32
    )
    mesh.point_data.active_texture_coordinates_name = "UV"
    return mesh


class FakeReconstruction:
    """Synthetic object with the attributes and methods of ``face3d_mesh.Reconstruction``."""

    def __init__(self, image, depth_raw, mask, scale, origin_uv, config, landmarks):
        self.image = image
        self.mask = mask
        self.scale = scale
        self.config = config
        self.landmarks = landmarks
        self._depth_raw = depth_raw
        self._origin_uv = origin_uv
        sigma_px = config.smooth_sigma_mm / scale.mm_per_px
        self.depth_mm = _smooth_depth(depth_raw, mask, sigma_px)
        n_px = float(mask.sum())
        step = config.grid_step_px or max(0.5, float(np.sqrt(2.0 * n_px / config.target_triangles)))
        self.mesh = grid_mesh(self.depth_mm, image, scale.mm_per_px, origin_uv, step)

    def with_config(self, **changes) -> FakeReconstruction:
        """Re-run the (fake) filter and surface stages with ``changes`` applied."""
        cfg = self.config.replace(**changes)
        return FakeReconstruction(
            self.image,
            self._depth_raw,
            self.mask,
            self.scale,
            self._origin_uv,
            cfg,
            self.landmarks,
        )

    def save(self, path, *, solid=False, base_mm=3.0, width_mm=None, edge_mm=0.0) -> list[Path]:
        """Write the mesh to ``path`` with the real exporters; return the written paths."""
        from face3d_mesh.exporters import export_mesh

        mesh = self.mesh
        if solid:
            from face3d_mesh.solid import make_solid

            mesh = make_solid(mesh, base_mm=base_mm, width_mm=width_mm, edge_mm=edge_mm)
        return export_mesh(mesh, path, texture=None if solid else self.image)


def make_fake_reconstruction(size: int = 512, mm_per_px: float = 0.42, **config_changes):
    """Build a :class:`FakeReconstruction` of a synthetic face.

    Parameters
    ----------
    size : int
        Side of the square photo, in pixels.
    mm_per_px : float
        Scale of the photo at the face.
    **config_changes
        Fields of :class:`~face3d_mesh.config.ReconstructionConfig` to change.

    Returns
    -------
    FakeReconstruction
    """
    depth, mask, (cu, cv) = _face_depth(size, mm_per_px)
    image = _paint_photo(size, mask, mm_per_px, depth)
    # landmarks: a sunflower pattern over the inner face; index 1 is the nose tip
    n = 478
    k = np.arange(n)
    r = 0.92 * np.sqrt((k + 0.5) / n)
    th = k * np.pi * (3 - np.sqrt(5))
    lu = cu + r * np.cos(th) * 72.0 / mm_per_px
    lv = cv - r * np.sin(th) * 98.0 / mm_per_px
    tip_v, tip_u = np.unravel_index(np.nanargmin(depth), depth.shape)
    lu[1], lv[1] = tip_u, tip_v
    li = np.clip(lv.round().astype(int), 0, size - 1)
    lj = np.clip(lu.round().astype(int), 0, size - 1)
    lz = depth[li, lj]
    landmarks = np.stack([lu, lv, np.nan_to_num(lz, nan=float(np.nanmax(depth)))], axis=1)
    cfg = ReconstructionConfig().replace(**config_changes)
    return FakeReconstruction(
        image, depth, mask, FakeScale(mm_per_px), (float(tip_u), float(tip_v)), cfg, landmarks
    )

"""Synthetic depth maps with known geometry, shared by the meshing tests."""

from __future__ import annotations

import numpy as np

MM_PER_PX = 0.5
SIZE = 256
CENTRE = (128.0, 128.0)  # (u0, v0), px
SPHERE_R = 80.0  # mm
MASK_R = 50.0  # mm


def grid(size: int = SIZE, centre=None, mm_per_px: float = MM_PER_PX):
    """x, y (mm, y up) and r of every pixel centre."""
    centre = (size / 2, size / 2) if centre is None else centre
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    x = (u - centre[0]) * mm_per_px
    y = -(v - centre[1]) * mm_per_px
    return x, y, np.hypot(x, y)


def sphere_depth(r: np.ndarray, radius: float = SPHERE_R) -> np.ndarray:
    """Depth (mm, larger = farther) of a sphere cap whose apex (nose tip) is at depth 0."""
    return radius - np.sqrt(np.maximum(radius**2 - r**2, 0.0))


def sphere_cap(size: int = SIZE, mask_r: float = MASK_R, radius: float = SPHERE_R):
    """(depth_mm float32 with NaN outside, mask bool, r mm) of a sphere cap in a disc."""
    _, _, r = grid(size)
    mask = r < mask_r
    depth = np.where(mask, sphere_depth(r, radius), np.nan).astype(np.float32)
    return depth, mask, r


def sphere_cap_volume(mask_r: float, radius: float, base_below_deepest: float) -> float:
    """Volume (mm^3) of the solid: cap over a disc of radius mask_r + plate behind it."""
    h = radius - np.sqrt(radius**2 - mask_r**2)  # cap height = deepest depth
    cap = np.pi * h**2 * (3 * radius - h) / 3.0  # volume of the spherical cap
    cylinder = np.pi * mask_r**2 * (h + base_below_deepest)
    return cylinder - (np.pi * mask_r**2 * h - cap)


def gradient_image(size: int = SIZE) -> np.ndarray:
    """RGB uint8 image with R = column, G = row, B = 77 (exactly linear: bilinear is exact)."""
    v, u = np.mgrid[0:size, 0:size]
    img = np.empty((size, size, 3), np.uint8)
    img[..., 0] = u % 256
    img[..., 1] = v % 256
    img[..., 2] = 77
    return img


#: Synthetic face-like masks for the outline tests: name -> inside test on (x, y) in mm.
NOTCH_HALF_WIDTH_MM = 4.0
NOTCH_BOTTOM_MM = 25.0


def _rotated_ellipse(x, y, a, b, degrees):
    t = np.radians(degrees)
    xr = x * np.cos(t) + y * np.sin(t)
    yr = -x * np.sin(t) + y * np.cos(t)
    return (xr / a) ** 2 + (yr / b) ** 2 < 1


OUTLINE_SHAPES = {
    "disc": lambda x, y: np.hypot(x, y) < 45.0,
    "ellipse": lambda x, y: _rotated_ellipse(x, y, 52.0, 34.0, 0.0),
    "rotated_ellipse": lambda x, y: _rotated_ellipse(x, y, 52.0, 34.0, 33.0),
    # a disc with a slot cut in from the top, 8 mm wide, to 25 mm above the centre
    "notch": lambda x, y: (
        (np.hypot(x, y) < 45.0) & ~((np.abs(x) < NOTCH_HALF_WIDTH_MM) & (y > NOTCH_BOTTOM_MM))
    ),
}


def shape_sphere(name: str, size: int = 240, radius: float = SPHERE_R):
    """(depth_mm float32 NaN outside, mask bool) of a sphere cap over one of OUTLINE_SHAPES,
    centred in a size x size photo at MM_PER_PX."""
    x, y, r = grid(size)
    mask = OUTLINE_SHAPES[name](x, y)
    depth = np.where(mask, sphere_depth(r, radius), np.nan).astype(np.float32)
    return depth, mask

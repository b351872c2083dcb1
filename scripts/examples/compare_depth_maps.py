#!/usr/bin/env python
"""Compare the depth maps of two face photos in millimetres.

The faces are compared in a common frame: each depth map is resampled on a grid in
millimetres around its nose tip (the mesh frame's x, y), so photos of different sizes
and framings line up. Prints the median and 90th percentile of the absolute depth
difference over the region both faces cover, after removing the best constant offset.

Usage: python scripts/examples/compare_depth_maps.py PHOTO_A PHOTO_B
"""

import sys

import numpy as np
from scipy.ndimage import map_coordinates

import face3d_mesh

STEP_MM = 1.0
HALF_EXTENT_MM = 90.0


def depth_on_mm_grid(rec) -> np.ndarray:
    """Depth (mm) sampled on a square grid in the mesh frame's x, y (mm), NaN outside."""
    axis = np.arange(-HALF_EXTENT_MM, HALF_EXTENT_MM + STEP_MM, STEP_MM)
    x, y = np.meshgrid(axis, axis[::-1])  # rows top to bottom = y decreasing
    u0, v0 = rec.nose_px
    u = u0 + x / rec.mm_per_px
    v = v0 - y / rec.mm_per_px
    depth = np.nan_to_num(rec.depth_mm, nan=np.inf)
    sampled = map_coordinates(depth, [v, u], order=0, cval=np.inf)
    return np.where(np.isfinite(sampled), sampled, np.nan)


def main(photo_a: str, photo_b: str) -> int:
    a = depth_on_mm_grid(face3d_mesh.reconstruct(photo_a, depth="landmarks"))
    b = depth_on_mm_grid(face3d_mesh.reconstruct(photo_b, depth="landmarks"))
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        print("the two faces do not overlap")
        return 1
    diff = a[both] - b[both]
    diff -= np.median(diff)
    print(f"overlap: {both.sum() * STEP_MM**2 / 100:.0f} cm²")
    print(
        f"|depth difference|: median {np.median(np.abs(diff)):.2f} mm, "
        f"p90 {np.percentile(np.abs(diff), 90):.2f} mm"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

"""Dense depth from MediaPipe's 3D landmarks (the offline ``landmarks`` backend).

The 478 landmarks carry a depth each. They are interpolated over the face mesh's own
triangulation (not a Delaunay triangulation of the points, which joins the upper and lower
lips and the eyelids across their openings), piecewise linearly with barycentric weights,
so the result never overshoots its landmarks. Where triangles fold over each other in the
image (a turned head), the nearest surface wins, as in a z-buffer. The eye and mouth
openings are closed with fans from their centroids. The faceting of a piecewise linear
surface is then removed by a light Gaussian smoothing inside the mask.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rasterize_landmark_depth"]


def _mesh_with_holes_closed(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from ..landmarks import face_mesh_holes, face_mesh_triangles

    vertices = [points[:468]]
    triangles = [face_mesh_triangles()]
    next_index = 468
    for loop in face_mesh_holes():
        ring = points[list(loop)]
        vertices.append(ring.mean(axis=0, keepdims=True))
        loop_arr = np.asarray(loop, dtype=np.int32)
        fan = np.column_stack(
            [np.roll(loop_arr, -1), loop_arr, np.full(len(loop), next_index, np.int32)]
        )
        triangles.append(fan)
        next_index += 1
    return np.concatenate(vertices), np.concatenate(triangles)


def rasterize_landmark_depth(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Interpolate landmark depths over the face mesh, per pixel.

    Parameters
    ----------
    points : numpy.ndarray
        (478, 3) float: x, y in pixels of the target grid, z depth (any unit; larger =
        farther).
    shape : tuple of int
        (H, W) of the output grid.

    Returns
    -------
    numpy.ndarray
        H×W float32: z interpolated at every pixel centre covered by the face mesh (the
        face oval, eyes and mouth included), NaN elsewhere. Where several triangles
        cover a pixel the smallest z (nearest) is kept.
    """
    height, width = int(shape[0]), int(shape[1])
    vertices, triangles = _mesh_with_holes_closed(np.asarray(points, dtype=np.float64))
    corners = vertices[triangles]  # (T, 3 corners, 3)
    xy = corners[:, :, :2]

    # Affine map from pixel to barycentric coordinates (l1, l2); l0 = 1 - l1 - l2.
    e1 = xy[:, 1] - xy[:, 0]
    e2 = xy[:, 2] - xy[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    keep = np.abs(det) > 1e-9
    corners, xy, e1, e2, det = corners[keep], xy[keep], e1[keep], e2[keep], det[keep]

    u0 = np.clip(np.ceil(xy[:, :, 0].min(axis=1)), 0, width).astype(np.int64)
    u1 = np.clip(np.floor(xy[:, :, 0].max(axis=1)), -1, width - 1).astype(np.int64)
    v0 = np.clip(np.ceil(xy[:, :, 1].min(axis=1)), 0, height).astype(np.int64)
    v1 = np.clip(np.floor(xy[:, :, 1].max(axis=1)), -1, height - 1).astype(np.int64)
    nx = np.maximum(u1 - u0 + 1, 0)
    ny = np.maximum(v1 - v0 + 1, 0)
    counts = nx * ny
    depth = np.full(height * width, np.inf)
    total = int(counts.sum())
    if total == 0:
        return np.full((height, width), np.nan, np.float32)

    # Every (triangle, pixel-in-its-bounding-box) pair, vectorised.
    tri = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    u = u0[tri] + local % nx[tri]
    v = v0[tri] + local // nx[tri]
    du = u - xy[tri, 0, 0]
    dv = v - xy[tri, 0, 1]
    l1 = (du * e2[tri, 1] - dv * e2[tri, 0]) / det[tri]
    l2 = (dv * e1[tri, 0] - du * e1[tri, 1]) / det[tri]
    l0 = 1.0 - l1 - l2
    eps = -1e-7  # pixel centres on a shared edge belong to both triangles
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    tri, u, v, l0, l1, l2 = tri[inside], u[inside], v[inside], l0[inside], l1[inside], l2[inside]
    z = corners[tri, 0, 2] * l0 + corners[tri, 1, 2] * l1 + corners[tri, 2, 2] * l2
    np.minimum.at(depth, v * width + u, z)
    depth[np.isinf(depth)] = np.nan
    return depth.reshape(height, width).astype(np.float32)

"""Dense depth from MediaPipe's 3D landmarks (the offline ``landmarks`` backend).

The 478 landmarks carry a depth each (MediaPipe's ``z``, in the pixel units of ``x``).
Before they are interpolated, five corrections are applied, each physically motivated or
measured on more than one subject, and none tuned per photo:

0. **Ray-length curvature**. MediaPipe's ``z`` behaves like a distance measured along the rays
   of a virtual camera tied to the face crop (a few face sizes in front of the face), not like
   a depth along one axis: a flat face comes out curved back toward its rim by
   ``r**2 / (2 F)`` (``r`` the distance from the face centre, ``F`` the virtual camera's
   distance, in the same pixel units). That paraboloid is removed, with
   ``F = DEFAULT_FOCAL_PER_FACE_SIZE * face size``. Its strength follows the face's size in
   the image, not the photo's lens: with the photo's true focal length instead of ``F`` it
   overcorrects wide-angle shots. Without it the reconstructed forehead top and chin lie
   several mm too far back and the cheeks' sides too near (the largest part of the shape
   error on rendered head scans).
0b. **Forward tilt**. MediaPipe's depths put the upper face too near and the chin too far:
   on frontal renders of head scans, with or without the camera's focal length, the depth
   map comes out pitched by 4–6° (forehead ~10 mm too near, chin ~10 mm too far; on the
   other subject the issue tracker reports, +13 / −8 mm), less when the head is tilted up.
   The depths are turned back by :data:`MEDIAPIPE_PITCH_BIAS_DEG` about the face's
   horizontal axis. Measured on renders at pitch −15…15°, three lenses, several lights:
   the depth-map shape error of frontal views fell from 3.9 to 2.3 mm (``hybrid``, no
   focal length) and 2.4 to 1.6 mm (focal length known).
1. **Viewing-ray frame** (perspective). MediaPipe sees a crop around the face and predicts
   ``z`` along the ray from the camera to the face, as if the face sat on the optical axis.
   Ground-truth depth is measured along the optical axis. For a face seen off-axis, at an
   angle ``(a, b) = (u_c - c_x, v_c - c_y) / f`` from the principal point, the two frames
   differ by a rotation, to first order the shear ``z_axis = z_ray - a (x - u_c) - b (y - v_c)``.
2. **Perspective over-rotation**. Seen through a short lens, the near half of a turned face
   is magnified and the far half shrunk; a network that reasons in weak perspective reads
   that as extra yaw. The lateral (eye-line) tilt of the landmarks is scaled by
   ``1 / (1 + beta * size_px / f)``: no change for a distant camera, stronger for a close one.
3. **Bilateral symmetry**. The landmark cloud is averaged with its own mirror image (left and
   right landmarks swapped, rigidly aligned), which halves the independent left/right
   errors of the depths while keeping the head's pose.

Depths are then interpolated over the face mesh's own triangulation (not a Delaunay
triangulation of the points, which would join the lips and eyelids across their openings).
Inside each triangle the surface is a Phong-tessellation-style quadratic patch: the linear
interpolant plus a blend of the vertices' tangent planes (vertex gradients from their 1-ring),
so the surface bends smoothly across edges instead of being faceted; the bend is clamped to
the triangle's own depth range (plus a fraction of it), so nothing spikes where landmarks
nearly coincide (the lips). Where triangles fold over each other in the image (a turned
head), the nearest surface wins, as in a z-buffer. The eye and mouth openings are closed with
fans from their centroids.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..landmarks import MIRROR_PAIRS, mirror_permutation
from ._zbuffer import _edge_functions, _span_pixels, _spans

__all__ = [
    "rasterize_landmark_depth",
    "corrected_landmarks",
    "MIRROR_PAIRS",
    "mirror_permutation",
]

#: Default focal length when it is unknown: the larger of two guesses. The lens: a 50 mm
#: equivalent (36 mm frame width on the grid's long side), right for a whole photo. The
#: distance: the camera about 3 face sizes away (the face's size in pixels is the geometric
#: mean of the landmarks' bounding box, about 125 mm on an adult; 3 sizes ~ 38 cm, a phone
#: photo at arm's length), which still holds on a crop, where the first guess means nothing.
DEFAULT_FOCAL_35MM = 50.0
DEFAULT_FOCAL_PER_FACE_SIZE = 3.0
#: MediaPipe's depths tilt the face's top toward the camera and its chin away, by about this
#: much (degrees) on frontal views; removed as correction 0b.
MEDIAPIPE_PITCH_BIAS_DEG = 4.0
_FOREHEAD_TOP, _CHIN = 10, 152
# Strength of the perspective over-rotation model (dimensionless; ~1 from the horizontal
# curvature of a face relative to its size).
_OVERROTATION_BETA = 1.0
# Weight of the tangent-plane (curved) part of the interpolant, and how far beyond its
# corners' depth range a triangle may bend, as a fraction of that range.
_PHONG_ALPHA = 0.75
_PHONG_CLAMP = 0.0


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


@lru_cache(maxsize=1)
def _orientation_flips() -> np.ndarray:
    """Which triangles of the closed mesh to reverse so that all share one winding (the
    mesh is a disk, so it is orientable): breadth-first over shared edges."""
    from collections import deque

    _, triangles = _mesh_with_holes_closed(np.zeros((478, 3)))
    by_edge: dict[frozenset, list[int]] = {}
    for t, tri in enumerate(triangles):
        for k in range(3):
            by_edge.setdefault(frozenset((tri[k], tri[(k + 1) % 3])), []).append(t)
    flip = np.zeros(len(triangles), bool)
    seen = np.zeros(len(triangles), bool)
    for start in range(len(triangles)):
        if seen[start]:
            continue
        seen[start] = True
        queue = deque([start])
        while queue:
            t = queue.popleft()
            tri = triangles[t][::-1] if flip[t] else triangles[t]
            for k in range(3):
                a, b = tri[k], tri[(k + 1) % 3]
                for n in by_edge[frozenset((a, b))]:
                    if n == t or seen[n]:
                        continue
                    other = list(triangles[n])
                    i = other.index(a)
                    # a consistently wound neighbour runs the shared edge the other way
                    flip[n] = other[(i + 1) % 3] == b
                    seen[n] = True
                    queue.append(n)
    return flip


@lru_cache(maxsize=1)
def _closed_mesh_edges() -> np.ndarray:
    """Directed edges (both directions) of the mesh with its holes closed, (E, 2)."""
    _, triangles = _mesh_with_holes_closed(np.zeros((478, 3)))
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    return np.unique(edges, axis=0)


def _vertex_gradients(vertices: np.ndarray) -> np.ndarray:
    """Image-plane depth gradient at every vertex: least squares over its 1-ring of the
    directional slopes (each neighbour weighted by 1/distance², so near and far neighbours
    count alike), lightly regularised."""
    edges = _closed_mesh_edges()
    i, j = edges[:, 0], edges[:, 1]
    d = vertices[j, :2] - vertices[i, :2]
    dz = vertices[j, 2] - vertices[i, 2]
    w = 1.0 / np.maximum((d**2).sum(axis=1), 1e-6)
    n = len(vertices)
    a = np.zeros((n, 2, 2))
    b = np.zeros((n, 2))
    np.add.at(a, i, w[:, None, None] * d[:, :, None] * d[:, None, :])
    np.add.at(b, i, (w * dz)[:, None] * d)
    trace = a[:, 0, 0] + a[:, 1, 1]
    a += (1e-3 * trace + 1e-12)[:, None, None] * np.eye(2)
    return np.linalg.solve(a, b[:, :, None])[:, :, 0]


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre of the 468 mesh landmarks and every point's coordinates along the eye line
    (u) and across it (v), pixels."""
    from ..landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

    centre = points[:468, :2].mean(axis=0)
    eye = points[LEFT_EYE_OUTER, :2] - points[RIGHT_EYE_OUTER, :2]
    roll = math.atan2(eye[1], eye[0])
    dx, dy = points[:, 0] - centre[0], points[:, 1] - centre[1]
    u = dx * math.cos(roll) + dy * math.sin(roll)
    v = -dx * math.sin(roll) + dy * math.cos(roll)
    return centre, u, v


def _face_size_px(points: np.ndarray) -> float:
    """Geometric mean of the width and height of the landmarks' bounding box, pixels."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return math.sqrt(max(hi[0] - lo[0], 1e-6) * max(hi[1] - lo[1], 1e-6))


def _perspective_corrected(
    points: np.ndarray, focal_px: float, principal_point: tuple[float, float]
) -> np.ndarray:
    out = points.copy()
    centre, u, v = _face_frame(points)
    # 1. from the viewing ray's frame to the optical axis's frame
    a = (centre[0] - principal_point[0]) / focal_px
    b = (centre[1] - principal_point[1]) / focal_px
    out[:, 2] -= a * (points[:, 0] - centre[0]) + b * (points[:, 1] - centre[1])
    # 2. undo the perspective over-rotation about the vertical face axis
    gain = 1.0 / (1.0 + _OVERROTATION_BETA * _face_size_px(points) / focal_px)
    design = np.column_stack([u[:468], v[:468], np.ones(468)])
    slope_u = np.linalg.lstsq(design, out[:468, 2], rcond=None)[0][0]
    out[:, 2] -= (1.0 - gain) * slope_u * u
    return out


def _symmetrized(points: np.ndarray) -> np.ndarray:
    """Average each landmark's depth with its mirror partner's, the mirrored cloud rigidly
    aligned (Kabsch) to the original so that the head's pose is kept."""
    x = points[:468]
    m = x[mirror_permutation()] * np.array([-1.0, 1.0, 1.0])
    mx, mm = x.mean(axis=0), m.mean(axis=0)
    u, _, vt = np.linalg.svd((m - mm).T @ (x - mx))
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rot = vt.T @ fix @ u.T
    aligned = (m - mm) @ rot.T + mx
    out = points.copy()
    out[:468, 2] = 0.5 * (x[:, 2] + aligned[:, 2])
    return out


def _ray_curvature_removed(points: np.ndarray) -> np.ndarray:
    """Remove the paraboloid ``r**2 / (2 F)`` from the depths (correction 0 of the module's
    docstring); the correction scales with the face, so any pixel grid works."""
    out = points.copy()
    centre = points[:468, :2].mean(axis=0)
    r2 = ((points[:, :2] - centre) ** 2).sum(axis=1)
    distance = DEFAULT_FOCAL_PER_FACE_SIZE * _face_size_px(points)
    out[:, 2] -= r2 / (2.0 * distance)
    return out


def _pitch_bias_removed(points: np.ndarray) -> np.ndarray:
    """Turn the depths back by :data:`MEDIAPIPE_PITCH_BIAS_DEG` about the face's horizontal
    axis, chin forward (correction 0b of the module's docstring)."""
    out = points.copy()
    axis = points[_CHIN, :2] - points[_FOREHEAD_TOP, :2]  # the face's down, in the image
    norm = float(np.linalg.norm(axis))
    if norm == 0:
        return out
    down = (points[:, :2] - points[:468, :2].mean(axis=0)) @ (axis / norm)
    out[:, 2] -= math.tan(math.radians(MEDIAPIPE_PITCH_BIAS_DEG)) * down
    return out


def corrected_landmarks(
    points: np.ndarray,
    shape: tuple[int, int],
    *,
    focal_px: float | None = None,
    principal_point: tuple[float, float] | None = None,
    perspective: bool = True,
    symmetric: bool = True,
    ray_curvature: bool = True,
) -> np.ndarray:
    """The landmarks with their depths corrected (ray-length curvature, perspective) and
    made symmetric.

    The depths that :func:`rasterize_landmark_depth` interpolates; parameters as there.

    Returns
    -------
    numpy.ndarray
        (478, 3) float64, a new array: x, y unchanged, z corrected (units of ``points``).
    """
    height, width = int(shape[0]), int(shape[1])
    pts = np.array(points, dtype=np.float64, copy=True)
    if pts.shape != (478, 3):
        raise ValueError(f"points must be (478, 3), got {pts.shape}")
    if ray_curvature:
        pts = _pitch_bias_removed(_ray_curvature_removed(pts))
    if perspective:
        if focal_px is None:
            focal_px = max(
                DEFAULT_FOCAL_35MM / 36.0 * max(height, width),
                DEFAULT_FOCAL_PER_FACE_SIZE * _face_size_px(pts),
            )
        if principal_point is None:
            principal_point = ((width - 1) / 2.0, (height - 1) / 2.0)
        pts = _perspective_corrected(pts, float(focal_px), principal_point)
    if symmetric:
        pts = _symmetrized(pts)
    return pts


def rasterize_landmark_depth(
    points: np.ndarray,
    shape: tuple[int, int],
    *,
    focal_px: float | None = None,
    principal_point: tuple[float, float] | None = None,
    perspective: bool = True,
    symmetric: bool = True,
    smooth: bool = True,
    ray_curvature: bool = True,
) -> np.ndarray:
    """Interpolate landmark depths over the face mesh, per pixel.

    Parameters
    ----------
    points : numpy.ndarray
        (478, 3) float: x, y in pixels of the target grid, z depth in the same pixel units
        (MediaPipe's convention; larger = farther).
    shape : tuple of int
        (H, W) of the output grid.
    focal_px : float, optional, keyword-only
        Focal length of the camera in pixels of this grid (on a crop: the photo's focal
        length times the crop's scale). Default: the larger of a 50 mm-equivalent lens on
        ``shape`` and :data:`DEFAULT_FOCAL_PER_FACE_SIZE` times the face's size in pixels.
    principal_point : (float, float), optional, keyword-only
        Principal point (x, y) in pixels of this grid (on a crop: the photo's centre mapped
        into the crop). Default: the centre of ``shape``, right for a whole photo; on a crop
        centred on the face it makes the viewing-ray correction a no-op.
    perspective : bool, keyword-only
        Apply the perspective corrections (viewing-ray frame, over-rotation).
    symmetric : bool, keyword-only
        Average the depths with their mirror image (bilateral symmetry).
    smooth : bool, keyword-only
        Curved (Phong-style) patches instead of flat triangles.
    ray_curvature : bool, keyword-only
        Remove the curvature of MediaPipe's ray-length-like depth (a paraboloid about the
        face centre, its radius proportional to the face's size in pixels).

    Returns
    -------
    numpy.ndarray
        H×W float32: depth at every pixel centre covered by the face mesh (the face oval,
        eyes and mouth included, and every pixel of the face-oval mask of
        :func:`~face3d_mesh.mask.face_mask`), in the units of ``points[:, 2]``, NaN
        elsewhere. Where several triangles cover a pixel the smallest depth (nearest) wins.
    """
    height, width = int(shape[0]), int(shape[1])
    pts = corrected_landmarks(
        points,
        shape,
        focal_px=focal_px,
        principal_point=principal_point,
        perspective=perspective,
        symmetric=symmetric,
        ray_curvature=ray_curvature,
    )

    vertices, triangles = _mesh_with_holes_closed(pts)
    flip = _orientation_flips()
    triangles[flip] = triangles[flip][:, ::-1]
    grad = _vertex_gradients(vertices) if smooth else None
    depth = _rasterize(vertices, triangles, grad, height, width)
    return _fill_oval_rim(depth, pts)


def _fill_oval_rim(depth: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Give a depth to the pixels of the face-oval mask (:func:`~face3d_mesh.mask.face_mask`)
    that the triangles just miss: the mask's polygon fill takes in pixels whose centres lie
    up to about a pixel outside the oval. Each takes the mean of its covered neighbours."""
    import cv2

    from ..mask import face_mask

    missing = face_mask(points, depth.shape) & ~np.isfinite(depth)
    for _ in range(3):
        if not missing.any():
            break
        valid = np.isfinite(depth)
        total = cv2.blur(np.where(valid, depth, 0.0).astype(np.float32), (3, 3))
        weight = cv2.blur(valid.astype(np.float32), (3, 3))
        fill = missing & (weight > 0)
        depth[fill] = total[fill] / weight[fill]
        missing &= ~fill
    return depth


def _rasterize(vertices, triangles, grad, height, width):
    """Z-buffer the mesh: per triangle, depth = a quadratic polynomial in the pixel
    coordinates (linear interpolant plus the Phong bend), evaluated at the pixel centres
    inside it (scanline spans, so that no work is spent outside the triangles)."""
    corners = vertices[triangles]  # (T, 3 corners, 3)
    x, y, zc = corners[:, :, 0], corners[:, :, 1], corners[:, :, 2]
    # Barycentric coordinates as affine functions of the pixel: l_k = a_k u + b_k v + c_k.
    a, b, c, det = _edge_functions(x, y)
    keep = np.abs(det) > 1e-9
    triangles, x, y, zc = triangles[keep], x[keep], y[keep], zc[keep]
    a, b, c, det = a[keep], b[keep], c[keep], det[keep]
    depth = np.full(height * width, np.inf)
    if len(det) == 0:
        return np.full((height, width), np.nan, np.float32)

    # Depth polynomial: q0 + q1 u + q2 v + q3 u^2 + q4 uv + q5 v^2.
    q = np.zeros((len(det), 8))
    q[:, 0] = (zc * c).sum(axis=1)
    q[:, 1] = (zc * a).sum(axis=1)
    q[:, 2] = (zc * b).sum(axis=1)
    zmin, zmax = zc.min(axis=1), zc.max(axis=1)
    q[:, 6], q[:, 7] = zmin, zmax
    if grad is not None:
        # Triangles folded over in the image (wound against the majority: the far side of a
        # turned head, hidden behind the near side) stay flat.
        front = np.sign(det) == np.sign(np.sum(det))
        # Phong tessellation on a height field: blend the three vertices' tangent planes
        # with the barycentric weights, sum_k l_k (g_k . (p - p_k)). Linear functions are
        # reproduced exactly, vertices are interpolated, and along an edge only that edge's
        # two vertices matter, so neighbouring patches meet without seams.
        g = grad[triangles] * front[:, None, None]  # (T, 3, 2)
        gx, gy = _PHONG_ALPHA * g[:, :, 0], _PHONG_ALPHA * g[:, :, 1]
        h = gx * x + gy * y
        q[:, 0] -= (c * h).sum(axis=1)
        q[:, 1] += (c * gx - a * h).sum(axis=1)
        q[:, 2] += (c * gy - b * h).sum(axis=1)
        q[:, 3] = (a * gx).sum(axis=1)
        q[:, 4] = (a * gy + b * gx).sum(axis=1)
        q[:, 5] = (b * gy).sum(axis=1)
        margin = _PHONG_CLAMP * (zmax - zmin) * front
        q[:, 6] -= margin
        q[:, 7] += margin

    t, v, col0, span = _spans(x, y, a, b, c, height, width)
    if not span.any():
        return np.full((height, width), np.nan, np.float32)
    # Along a span (row v of triangle t) the polynomial is z = e0 + e1 u + e2 u^2.
    k = q[t]
    vf = v.astype(np.float64)
    e0 = k[:, 0] + vf * (k[:, 2] + vf * k[:, 5])
    e1 = k[:, 1] + vf * k[:, 4]
    e2, z_lo, z_hi = k[:, 3], k[:, 6], k[:, 7]
    of, offset = _span_pixels(span)
    u = col0[of] + offset
    uf = u.astype(np.float64)
    z = e0[of] + uf * (e1[of] + uf * e2[of])
    z = np.minimum(np.maximum(z, z_lo[of]), z_hi[of])
    np.minimum.at(depth, v[of] * width + u, z)
    depth[np.isinf(depth)] = np.nan
    return depth.reshape(height, width).astype(np.float32)

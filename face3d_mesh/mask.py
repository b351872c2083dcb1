"""The face region: the face oval of the landmarks, as a pixel mask.

A pixel belongs to the face when its centre lies inside the polygon through the
:data:`~face3d_mesh.landmarks.FACE_OVAL` landmarks, optionally grown outward by a margin
(``grow_px``), joined by the parts of the face mesh that stand out of the oval
(``silhouette``: a turned head's nose and lips) and shrunk inward (``erode_px``).

The margin exists because the face oval is itself uncertain: two MediaPipe runs on the same
photo (another crop, another image size) place it a few pixels apart, most on the forehead
of a head tilted up and on the chin of a turned head. The pipeline grows the mask by
``ReconstructionConfig.mask_margin_mm`` (4 mm on the face by default) so that it covers the
face oval of any such run, not only of its own, and stretches the oval's top and bottom
first (``stretch_px``, 0.375 of the margin), where the runs differ most.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UsageError
from .landmarks import FACE_OVAL

__all__ = ["face_mask", "face_alpha"]

_FOREHEAD_TOP, _CHIN = 10, 152  # face-oval landmarks at the top and the bottom of the face
_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point precision: 1/16 pixel
_WINDOW_BORDER_PX = 4  # background round the grown oval in face_mask's working window


def face_mask(
    landmarks: np.ndarray,
    shape: tuple[int, int],
    *,
    erode_px: float = 0.0,
    grow_px: float = 0.0,
    stretch_px: float = 0.0,
    silhouette: bool = False,
) -> np.ndarray:
    """Boolean mask of the face oval.

    Parameters
    ----------
    landmarks : numpy.ndarray
        (478, 2+) float, x/y in pixels of the image (column, row).
    shape : tuple of int
        (H, W) of the mask.
    erode_px : float, keyword-only
        Shrink the mask by this distance in pixels (0 = none), after growing it.
    grow_px : float, keyword-only
        First grow the oval outward by this distance in pixels (0 = none): every pixel at
        most ``grow_px`` from the oval joins the mask.
    stretch_px : float, keyword-only
        Before growing, move the oval's top and bottom outward along the face's own
        vertical axis (chin to forehead, so the head's roll is followed) by up to this many
        pixels: the topmost and bottommost oval points by all of it, the others in
        proportion to their height above or below the oval's centre (the sides not at
        all). Where the oval is least certain (see the module docstring) without widening
        the mask at the temples and cheeks, where the face turns away steeply.
    silhouette : bool, keyword-only
        Also every pixel of the face mesh's triangles (and of its eye and mouth openings)
        that reach out of the oval, after growing and before eroding (468 or 478
        landmarks needed). The oval runs along the cheeks: on a head turned by 30° the
        nose and lips stand out of it (on the shared renders turned 30°, 68-224 of the 468
        landmarks, the nose tip in 5 of 8), and the margin is for the oval's own
        uncertainty, not for them. The face mesh's outline is the face as MediaPipe sees
        it, so it is added as it is, not grown. (Its triangles come from MediaPipe's
        tesselation: MediaPipe is imported the first time a face needs them.)

    Returns
    -------
    numpy.ndarray
        H×W bool, True inside the face.
    """
    import cv2

    if erode_px < 0:
        raise UsageError("mask erosion must be >= 0 pixels")
    if grow_px < 0 or stretch_px < 0:
        raise UsageError("mask margin must be >= 0 pixels")
    height, width = int(shape[0]), int(shape[1])
    polygon = np.asarray(landmarks, dtype=np.float64)[list(FACE_OVAL), :2]
    # the stretched oval's sides slide along themselves: the union keeps every oval pixel
    polygons = [polygon, _stretched(polygon, float(stretch_px))] if stretch_px > 0 else [polygon]
    polygon = np.concatenate(polygons)  # the window covers both
    points = np.asarray(landmarks, dtype=np.float64)[:468, :2] if silhouette else None
    out = np.zeros((height, width), bool)
    # The work is done in a window round the oval (a face is a small part of a big photo),
    # with a border of background pixels wide enough for the distance transforms to see
    # everything they would on the whole image.
    pad = int(math.ceil(grow_px)) + _WINDOW_BORDER_PX
    corners = polygon if points is None else np.vstack([polygon, points])
    x0, y0 = (max(int(math.floor(v)) - pad, 0) for v in corners.min(axis=0))
    x1, y1 = (int(math.ceil(v)) + pad + 1 for v in corners.max(axis=0))
    x1, y1 = min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return out
    # fillPoly treats integer vertices as pixel centres; fixed point gives sub-pixel edges.
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for each in polygons:
        pts = np.rint((each - (x0, y0)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    oval = mask.copy() if silhouette else None
    if grow_px > 0:
        outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
        mask = (outside <= grow_px).astype(np.uint8)
    if silhouette:
        _fill_silhouette(mask, points - (x0, y0), oval)
    if erode_px > 0:
        inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        mask = (inside > erode_px).astype(np.uint8)
    out[y0:y1, x0:x1] = mask.astype(bool)
    return out


def _fill_silhouette(mask: np.ndarray, points: np.ndarray, oval: np.ndarray) -> None:
    """Fill into ``mask`` (uint8, in place) the face mesh's triangles and openings with a
    corner outside ``oval`` (the un-grown oval's mask); ``points``: the 468 landmarks in
    the mask's pixels."""
    import cv2

    h, w = oval.shape
    col = np.clip(np.rint(points[:, 0]).astype(np.intp), 0, w - 1)
    row = np.clip(np.rint(points[:, 1]).astype(np.intp), 0, h - 1)
    out = oval[row, col] == 0
    if not out.any():
        return  # a frontal face: nothing stands out of the oval
    from .landmarks import face_mesh_holes, face_mesh_triangles

    fixed = np.rint(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    triangles = face_mesh_triangles()
    # One polygon per call: cv2.fillPoly given several leaves where two overlap unfilled
    # (and on a turned head the nose's triangles overlap the cheek's).
    for corners in fixed[triangles[out[triangles].any(axis=1)]]:
        cv2.fillPoly(mask, [corners], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    for loop in face_mesh_holes():
        loop = np.asarray(loop)
        if out[loop].any():
            cv2.fillPoly(mask, [fixed[loop]], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)


def _stretched(polygon: np.ndarray, stretch_px: float) -> np.ndarray:
    """The oval (N, 2) with its top and bottom moved outward along the face's vertical
    axis (see :func:`face_mask`)."""
    order = list(FACE_OVAL)
    top, chin = polygon[order.index(_FOREHEAD_TOP)], polygon[order.index(_CHIN)]
    up = top - chin
    length = float(np.hypot(*up))
    if length < 1e-9:
        return polygon
    up /= length
    height = (polygon - polygon.mean(axis=0)) @ up  # along the axis, + toward the forehead
    reach = np.where(height > 0, height.max(), -height.min())
    share = height / np.maximum(reach, 1e-9)  # -1 at the bottom .. 1 at the top
    return polygon + (stretch_px * share)[:, None] * up


def face_alpha(mask: np.ndarray, *, feather_px: float) -> np.ndarray:
    """Soft version of ``mask`` that ramps from 0 to 1 over ``feather_px`` pixels inside it.

    Parameters
    ----------
    mask : numpy.ndarray
        H×W bool.
    feather_px : float, keyword-only
        Width of the ramp in pixels (> 0).

    Returns
    -------
    numpy.ndarray
        H×W float32 in [0, 1], 0 outside the mask.
    """
    import cv2

    if feather_px <= 0:
        return np.asarray(mask, dtype=np.float32)
    inside = cv2.distanceTransform(np.asarray(mask, np.uint8), cv2.DIST_L2, 5)
    return np.clip(inside / float(feather_px), 0.0, 1.0).astype(np.float32)

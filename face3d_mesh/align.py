"""Alignment: the face rotated upright and cropped, and maps back to the photo.

:func:`align_face` builds a similarity transform (rotation by the roll measured from the
outer eye corners, uniform scale, translation) from the photo's pixels to an upright crop
around the face oval with a margin, resampled so its long side is ``size_px``. The depth
stages work on that crop; :func:`warp_to_image` maps their results back to the photo's grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .landmarks import FACE_OVAL, FaceLandmarks

__all__ = ["AlignedFace", "align_face", "warp_to_image", "warp_window", "extend_nearest"]


@dataclass(frozen=True)
class AlignedFace:
    """An upright crop of one face.

    Attributes
    ----------
    image : numpy.ndarray
        h×w×3 uint8 RGB crop, face upright.
    landmarks : FaceLandmarks
        The landmarks in crop pixels (z scaled by the same factor as x and y).
    matrix : numpy.ndarray
        2×3 float64 similarity from photo pixels to crop pixels.
    roll_deg : float
        Roll that was removed, degrees.
    """

    image: np.ndarray
    landmarks: FaceLandmarks
    matrix: np.ndarray
    roll_deg: float

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def align_face(
    image: np.ndarray, face: FaceLandmarks, *, size_px: int = 512, margin: float = 0.15
) -> AlignedFace:
    """Rotate the face upright and crop it.

    Parameters
    ----------
    image : numpy.ndarray
        H×W×3 uint8 RGB photo.
    face : FaceLandmarks
        Landmarks in the photo's pixels.
    size_px : int, keyword-only
        Long side of the crop, pixels.
    margin : float, keyword-only
        Border around the face oval, as a fraction of the oval's size on each side.

    Returns
    -------
    AlignedFace
    """
    import cv2

    roll = face.roll_deg
    oval = face.points[list(FACE_OVAL), :2]
    centre = oval.mean(axis=0)
    angle = math.radians(roll)
    cos, sin = math.cos(angle), math.sin(angle)
    # Rotation by -roll about the oval's centre makes the eye line horizontal.
    rotation = np.array([[cos, sin], [-sin, cos]])
    rotated = (oval - centre) @ rotation.T
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    extent = hi - lo
    lo, hi = lo - margin * extent, hi + margin * extent
    scale = size_px / float(max(hi - lo))
    width = max(8, int(round((hi[0] - lo[0]) * scale)))
    height = max(8, int(round((hi[1] - lo[1]) * scale)))
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = -scale * (rotation @ centre) - scale * lo
    crop = cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return AlignedFace(
        image=crop,
        landmarks=face.transformed(matrix, shape=(height, width)),
        matrix=matrix,
        roll_deg=roll,
    )


def extend_nearest(values: np.ndarray) -> np.ndarray:
    """Copy of a float map whose NaNs take the value of the nearest finite pixel.

    Parameters
    ----------
    values : numpy.ndarray
        H×W float, NaN where undefined (at least one finite value).

    Returns
    -------
    numpy.ndarray
        H×W float32 with no NaN.
    """
    import cv2

    values = np.asarray(values, dtype=np.float32)
    missing = ~np.isfinite(values)
    if not missing.any():
        return values.copy()
    if missing.all():
        raise ValueError("extend_nearest needs at least one finite value")
    # OpenCV's labelled distance transform: each finite pixel is its own label, numbered
    # 1, 2, ... in row-major order, and every pixel gets the label of the nearest one
    # (5×5-mask Euclidean distance; a few times faster than SciPy's exact transform and
    # without SciPy's import cost on the export path).
    _, labels = cv2.distanceTransformWithLabels(
        missing.view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    sources = np.flatnonzero(~missing)
    return values.ravel()[sources[labels.ravel() - 1]].reshape(values.shape)


def warp_to_image(values: np.ndarray, aligned: AlignedFace, shape: tuple[int, int]) -> np.ndarray:
    """Map a crop-grid float map back onto the photo's pixel grid.

    Parameters
    ----------
    values : numpy.ndarray
        h×w float map on the crop's grid; NaN where undefined.
    aligned : AlignedFace
        The crop it belongs to.
    shape : tuple of int
        (H, W) of the photo.

    Returns
    -------
    numpy.ndarray
        H×W float32, bilinearly resampled; NaN outside the crop's footprint. Undefined
        crop pixels are first filled from their nearest neighbours so that valid values
        near them stay valid: re-apply a mask afterwards. Where the crop is finer than the
        photo (a face smaller than the crop), it is first smoothed so as not to alias
        (:func:`warp_window`).
    """
    out = np.full((int(shape[0]), int(shape[1])), np.nan, np.float32)
    found = warp_window(values, aligned, shape)
    if found is not None:
        rows, cols, block = found
        out[rows, cols] = block
    return out


def warp_window(values: np.ndarray, aligned: AlignedFace, shape: tuple[int, int]):
    """:func:`warp_to_image` on the crop's footprint only (a small window of a big photo).

    Returns
    -------
    tuple or None
        ``(rows, cols, block)``: the photo's slices the footprint covers and the
        resampled values there (float32, NaN beyond the footprint's edge); None when the
        footprint misses the photo. Everywhere else :func:`warp_to_image` gives NaN.

    Notes
    -----
    A crop finer than the photo (``aligned.scale`` crop pixels per photo pixel above 1) is
    smoothed first by a Gaussian of ``0.5 * sqrt(scale**2 - 1)`` crop pixels: sampled
    bilinearly without it, the crop's pixel-scale detail aliased into ripples along the
    photo's rows and columns, seen on a mesh's steep sides under light (the astronaut
    sample's jaw, 3.2 crop pixels per photo pixel).
    """
    import cv2

    height, width = int(shape[0]), int(shape[1])
    factor = float(aligned.scale)
    if factor > 1.0:
        from ._extend import extend_linear

        sigma = 0.5 * math.sqrt(factor * factor - 1.0)
        reach = int(math.ceil(2.5 * sigma))
        # the slope continued over the kernel's reach, so that the map's edge is not bent
        # toward the nearest-value fill beyond it
        filled = extend_nearest(extend_linear(values, reach + 1))
        size = 2 * reach + 1
        filled = cv2.GaussianBlur(filled, (size, size), sigma, borderType=cv2.BORDER_REPLICATE)
    else:
        filled = extend_nearest(values)
    h, w = filled.shape
    inverse = cv2.invertAffineTransform(aligned.matrix)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    corners = corners @ inverse[:, :2].T + inverse[:, 2]
    x0 = max(0, int(math.floor(corners[:, 0].min())))
    y0 = max(0, int(math.floor(corners[:, 1].min())))
    x1 = min(width, int(math.ceil(corners[:, 0].max())) + 1)
    y1 = min(height, int(math.ceil(corners[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    window = aligned.matrix.copy()
    window[:, 2] += aligned.matrix[:, :2] @ np.array([x0, y0], np.float64)
    block = cv2.warpAffine(
        filled,
        window,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float("nan"),
    )
    return slice(y0, y1), slice(x0, x1), block

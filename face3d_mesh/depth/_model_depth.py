"""Depth from the fitted morphable model (the ``model`` backend) and its blend with the
landmark depth (the ``hybrid`` backend).

``model``: the fitted face mesh (:mod:`face3d_mesh.model_fit`) z-buffered onto the crop's
grid (at half its resolution, then resampled: the surface is smooth). Its relief is
converted to the pipeline's millimetres (those of ``mm_per_px``, the metric scale stage),
not the model's own, so that depth and the image-plane size of the face agree: a relief
of ``Δz`` model-mm seen at ``k`` pixels per model-mm becomes ``Δz · k · mm_per_px``.
Pixels of the mask that the mesh does not cover (its border, when the face oval of the
landmarks reaches past the fitted face) are filled by a smooth extrapolation, so the map
has no holes inside the mask.

``hybrid``: the mean of the model's depth and the landmark depth (the latter first mapped
onto the model's by a least-squares scale and offset over the mask): two estimates whose
errors are largely independent (the model's from its shape prior and the head's pitch,
seen in 2D only; the landmarks' from MediaPipe's depth regression).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["model_depth_mm", "blend_depths"]


def model_depth_mm(
    fit, matrix: np.ndarray, mask: np.ndarray, *, mm_per_px: float, relief_at: str = "eyes"
):
    """The fitted mesh as a depth map on a crop's grid.

    Parameters
    ----------
    fit : ModelFit
        The model fitted in the photo's pixels.
    matrix : numpy.ndarray
        2×3 similarity from photo pixels to the crop's pixels.
    mask : numpy.ndarray
        h×w bool face mask on the crop.
    mm_per_px : float
        The pipeline's millimetres per photo pixel (at the outer eye corners).
    relief_at : {"eyes", "nose"}
        Where a model millimetre is given the size of a photo pixel (:func:`relief_gain`):
        at the outer eye corners, where ``mm_per_px`` holds (the ``model`` backend), or at
        the nose tip, 5-7 % deeper (what ``hybrid`` blends; see :func:`blend_depths`).

    Returns
    -------
    depth_mm : numpy.ndarray
        h×w float32, mm (pipeline scale), larger = farther, 0 at the fitted nose tip, NaN
        outside ``mask`` and finite everywhere inside it.
    landmark_z_mm : numpy.ndarray
        (478,) float64 depth of each fitted landmark, same units and offset.
    """
    import cv2

    from .._threads import single_threaded_blas
    from ..align import extend_nearest
    from ..landmarks import NOSE_TIP
    from ..morphable import face_model
    from ._zbuffer import rasterize

    model = face_model()
    with single_threaded_blas():
        uv, z = fit.project(fit.vertices_model())
        _, z_lm = fit.project(fit.landmarks_model)
    gain = relief_gain(fit, mm_per_px, at=relief_at)
    # Rendered at half the crop's resolution (the model's surface is smooth; a quarter
    # of the work), then resampled; pixel centres: low-res j <-> crop 2 j + 0.5.
    height, width = mask.shape
    low_shape = ((height + 1) // 2, (width + 1) // 2)
    crop_uv = uv @ matrix[:, :2].T + matrix[:, 2]
    tris = _front_facing(crop_uv, model.triangles)
    low, _ = rasterize((crop_uv + 0.5) / 2 - 0.5, (z - z_lm[NOSE_TIP]) * gain, tris, low_shape)
    low_mask = cv2.resize(mask.astype(np.uint8), low_shape[::-1], interpolation=cv2.INTER_AREA) > 0
    low = extend_nearest(_fill_inside(low, low_mask | np.isfinite(low)))
    depth = cv2.resize(low, (2 * low_shape[1], 2 * low_shape[0]), interpolation=cv2.INTER_LINEAR)
    depth = np.ascontiguousarray(depth[:height, :width])
    depth[~mask] = np.nan
    return depth, (z_lm - z_lm[NOSE_TIP]) * gain


def relief_gain(fit, mm_per_px: float, *, at: str = "eyes") -> float:
    """Pipeline millimetres per model millimetre of the fitted face's relief.

    ``at="eyes"``: the fit's pixels per model mm at the outer eye corners (focal length over
    their mean depth in the fit's camera) times ``mm_per_px``, which holds there, so that
    the model keeps its own proportions. ``at="nose"``: the pixels per mm at the nose tip
    (``fit.scale_px_per_mm``), larger by the eyes' distance behind the nose over the
    camera's, 5-7 % at the fit's 3 face sizes or more. Weak perspective: both its scale.
    """
    if at not in ("eyes", "nose"):
        raise ValueError(f"relief_at must be 'eyes' or 'nose', not {at!r}")
    px_per_mm = fit.eye_px_per_mm if at == "eyes" else math.nan
    if not (math.isfinite(px_per_mm) and px_per_mm > 0):
        px_per_mm = fit.scale_px_per_mm
    return float(px_per_mm * mm_per_px)


def _front_facing(uv: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The triangles wound like most of the face in the image (the others face away from
    the camera and lie behind the visible surface)."""
    p = uv[triangles]
    det = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (
        p[:, 2, 0] - p[:, 0, 0]
    )
    return triangles[np.sign(det) == np.sign(det.sum())]


def _fill_inside(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the mask's pixels that no triangle covers: repeated normalised 5×5 averages of
    the covered neighbours (a smooth continuation a few pixels deep), then the nearest
    value for whatever is left (a mask reaching far past the face)."""
    import cv2

    from ..align import extend_nearest

    missing = mask & ~np.isfinite(depth)
    if not missing.any():
        return depth
    if not np.isfinite(depth).any():
        raise ValueError("the fitted face does not cover the face mask")
    for _ in range(8):
        valid = np.isfinite(depth)
        total = cv2.blur(np.where(valid, depth, 0.0).astype(np.float32), (5, 5))
        weight = cv2.blur(valid.astype(np.float32), (5, 5))
        fill = missing & (weight > 0.2)
        if not fill.any():
            break
        depth[fill] = total[fill] / weight[fill]
        missing &= ~fill
        if not missing.any():
            return depth
    nearest = extend_nearest(depth)
    depth[missing] = nearest[missing]
    return depth


def blend_depths(
    model_mm: np.ndarray,
    landmark_mm: np.ndarray,
    mask: np.ndarray,
    *,
    tilt_from_landmarks: bool = False,
):
    """The ``hybrid`` depth: mean of the model's depth and the landmark depth mapped onto
    it (least-squares scale and offset over the mask where both are finite).

    With ``tilt_from_landmarks`` the model's depth is first given the landmark depth's
    tilt (the least-squares plane of their difference is added to it), so the mean keeps
    the landmarks' tilt: what the pipeline does when the focal length is only guessed,
    where the fit fixes the head's pitch worse than MediaPipe's (corrected) depths
    (frontal renders: 2.63 → 1.80 mm shape error with the weak-perspective fit of the
    time, 2.57 → 1.77 with the guessed perspective camera; with a known camera the mean of
    the two tilts is the better one).

    Returns
    -------
    depth_mm : numpy.ndarray
        float32, NaN outside ``mask``; where only one map is finite, that one.
    scale, offset : float
        The map applied to ``landmark_mm``.
    """
    both = mask & np.isfinite(model_mm) & np.isfinite(landmark_mm)
    if both.sum() < 16:
        return model_mm.copy(), 1.0, 0.0
    x = landmark_mm[both].astype(np.float64)
    y = model_mm[both].astype(np.float64)
    xm, ym = x.mean(), y.mean()
    var = float(((x - xm) ** 2).sum())
    scale = float(((x - xm) * (y - ym)).sum() / var) if var > 0 else 1.0
    if not math.isfinite(scale) or scale <= 0:
        scale = 1.0
    offset = float(ym - scale * xm)
    mapped = scale * landmark_mm + offset
    if tilt_from_landmarks:
        model_mm = model_mm + _plane_of(mapped - model_mm, both)
    out = np.where(np.isfinite(mapped), 0.5 * (model_mm + mapped), model_mm)
    out = np.where(np.isfinite(out), out, mapped)
    out[~mask] = np.nan
    return out.astype(np.float32), scale, offset


def _plane_of(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The least-squares plane ``a u + b v + c`` through ``values[where]``, everywhere
    (float32, the array's shape)."""
    rows, cols = np.nonzero(where)
    r0, c0 = rows.mean(), cols.mean()
    du, dv = cols - c0, rows - r0
    z = values[where].astype(np.float64)
    # The normal equations (3×3; du and dv have zero mean) rather than a least-squares
    # solve on the n×3 design matrix: the same plane, several times faster.
    normal = np.array([[du @ du, du @ dv, 0.0], [du @ dv, dv @ dv, 0.0], [0.0, 0.0, du.size]])
    a, b, c = np.linalg.lstsq(normal, np.array([du @ z, dv @ z, z.sum()]), rcond=None)[0]
    height, width = values.shape
    u = (a * (np.arange(width) - c0)).astype(np.float32)[None, :]
    v = (b * (np.arange(height) - r0) + c).astype(np.float32)[:, None]
    return u + v

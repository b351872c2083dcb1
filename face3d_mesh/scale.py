"""Metric scale: millimetres per pixel at the face, from the landmarks.

Two cues, in order of preference:

1. **Iris diameter.** The horizontal visible iris diameter of adults is remarkably constant,
   11.7 ± 0.5 mm. Used when both eyes are open and both irises look plausible (their sizes
   agree, and they are a sensible fraction of the eye's width).
2. **Anthropometric prior: biocular width**, the distance between the outer eye corners
   (exocanthion to exocanthion), about 90 ± 4.5 mm in adults (both sexes; Farkas'
   anthropometric surveys). Measured in 3D from the landmarks so that head yaw does not
   shorten it. Used when the eyes are closed or the irises are implausible.

The camera is treated as orthographic at the face (weak perspective): one ``mm_per_px``
applies to the whole face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .landmarks import (
    LEFT_EYE_INNER,
    LEFT_EYE_LOWER,
    LEFT_EYE_OUTER,
    LEFT_EYE_UPPER,
    LEFT_IRIS,
    RIGHT_EYE_INNER,
    RIGHT_EYE_LOWER,
    RIGHT_EYE_OUTER,
    RIGHT_EYE_UPPER,
    RIGHT_IRIS,
)

__all__ = ["ScaleEstimate", "estimate_scale", "IRIS_DIAMETER_MM", "BIOCULAR_WIDTH_MM"]

#: Horizontal visible iris diameter of adults, mm (mean, standard deviation).
IRIS_DIAMETER_MM = (11.7, 0.5)
#: Outer-eye-corner distance (exocanthion–exocanthion) of adults, mm (mean, std. dev.).
BIOCULAR_WIDTH_MM = (90.0, 4.5)

# Eye openness (lid gap / eye width) below which an eye counts as closed.
_MIN_EYE_OPENNESS = 0.18
# Plausible iris diameter as a fraction of the eye's width (corner to corner).
_IRIS_TO_EYE_WIDTH = (0.30, 0.65)
# The two irises must agree within this relative difference.
_IRIS_AGREEMENT = 0.25
# Relative measurement noise of landmark distances (a few pixels on a typical face).
_IRIS_MEASUREMENT = 0.06
_BIOCULAR_MEASUREMENT = 0.02


@dataclass(frozen=True)
class ScaleEstimate:
    """How millimetres were obtained.

    Attributes
    ----------
    mm_per_px : float
        Millimetres per pixel of the input photo, at the face.
    source : str
        ``"iris"`` or ``"biocular_width_prior"`` (or ``"user"`` when given explicitly).
    uncertainty : float
        Relative standard uncertainty of ``mm_per_px`` (0.07 = ±7 %).
    detail : str
        What was measured, for people.
    """

    mm_per_px: float
    source: str
    uncertainty: float
    detail: str

    def describe(self) -> str:
        """One line for people, e.g. ``0.231 mm/px from iris diameter (±7%)``."""
        return f"{self.mm_per_px:.4g} mm/px from {self.detail} (±{100 * self.uncertainty:.0f}%)"


def estimate_scale(landmarks: np.ndarray) -> ScaleEstimate:
    """Millimetres per pixel from 478 face-mesh landmarks.

    Parameters
    ----------
    landmarks : numpy.ndarray
        (478, 3) float: x, y in pixels, z relative depth in the same pixel units.

    Returns
    -------
    ScaleEstimate
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    iris = _iris_diameter_px(pts)
    if iris is not None:
        uncertainty = math.hypot(IRIS_DIAMETER_MM[1] / IRIS_DIAMETER_MM[0], _IRIS_MEASUREMENT)
        return ScaleEstimate(
            mm_per_px=IRIS_DIAMETER_MM[0] / iris,
            source="iris",
            uncertainty=uncertainty,
            detail=f"iris diameter ({iris:.1f} px = {IRIS_DIAMETER_MM[0]} mm)",
        )
    width = float(np.linalg.norm(pts[LEFT_EYE_OUTER] - pts[RIGHT_EYE_OUTER]))
    uncertainty = math.hypot(BIOCULAR_WIDTH_MM[1] / BIOCULAR_WIDTH_MM[0], _BIOCULAR_MEASUREMENT)
    return ScaleEstimate(
        mm_per_px=BIOCULAR_WIDTH_MM[0] / max(width, 1e-6),
        source="biocular_width_prior",
        uncertainty=uncertainty,
        detail=(
            f"anthropometric prior: outer eye corners {width:.1f} px apart = "
            f"{BIOCULAR_WIDTH_MM[0]:.0f} mm (irises not usable)"
        ),
    )


def _iris_diameter_px(pts: np.ndarray) -> float | None:
    """Mean iris diameter in pixels, or None when the irises are not usable."""
    diameters = []
    for iris, outer, inner, upper, lower in (
        (RIGHT_IRIS, RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
        (LEFT_IRIS, LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_EYE_UPPER, LEFT_EYE_LOWER),
    ):
        eye_width = np.linalg.norm(pts[outer, :2] - pts[inner, :2])
        openness = np.linalg.norm(pts[upper, :2] - pts[lower, :2]) / max(eye_width, 1e-6)
        if openness < _MIN_EYE_OPENNESS:
            return None
        _, right, top, left, bottom = iris
        horizontal = np.linalg.norm(pts[right, :2] - pts[left, :2])
        vertical = np.linalg.norm(pts[top, :2] - pts[bottom, :2])
        # Yaw foreshortens the horizontal diameter only: take the larger one.
        diameter = max(horizontal, vertical)
        ratio = diameter / max(eye_width, 1e-6)
        if not _IRIS_TO_EYE_WIDTH[0] <= ratio <= _IRIS_TO_EYE_WIDTH[1]:
            return None
        diameters.append(diameter)
    a, b = diameters
    if abs(a - b) / max(a, b) > _IRIS_AGREEMENT:
        return None
    return float((a + b) / 2)

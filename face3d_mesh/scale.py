"""Metric scale: millimetres per pixel at the face, from several cues combined.

Each cue is one estimate of ``mm_per_px`` with a relative standard uncertainty
(:class:`ScaleCue`). Two come from the landmarks:

1. **Iris diameter** (``"iris"``). The horizontal visible iris diameter of adults is
   remarkably constant, 11.7 ± 0.5 mm. Used when every eye not seen too obliquely (its 2D
   width at least 0.6 of its 3D width; a far eye of a turned head is skipped) is open (lid
   gap at least 0.5 iris diameters) and plausible (iris 0.25–0.65 of the eye's 3D
   corner-to-corner width), and both irises agree within 25 % when both count. The larger
   of the horizontal and vertical diameters is taken (a turned gaze shortens the
   horizontal one, pitch the vertical one); the eye less foreshortened weighs more. Given
   the fitted face model and the focal length, each iris is taken from its own depth to
   the outer eye corners', where ``mm_per_px`` holds; given the photo, where the lids are
   in doubt (a head pitched far, an eye skipped as oblique) each eye must also show a dark
   iris in it (:func:`iris_cue`).
2. **Anthropometric prior: biocular width** (``"biocular_width_prior"``), the distance
   between the outer eye corners (exocanthion to exocanthion), about 90 ± 4.5 mm in adults
   (both sexes; Farkas' anthropometric surveys), measured in 3D so that head yaw does not
   shorten it: through the fitted face model's head pose and camera when a fit is given
   (what the pipeline does), else from the landmarks' own depths. Always available.

Further cues (e.g. the face size implied by a morphable-model fit) can be passed to
:func:`estimate_scale` as ``extra_cues``. :func:`combine_cues` merges cues by inverse-variance
weighting of their logarithms (generalised least squares: cues of the same ``group``, such as
two population-size priors, are treated as correlated, coefficient
:data:`GROUP_CORRELATION`), then checks their consistency: when the weighted scatter exceeds
what the uncertainties allow (chi-square per degree of freedom above 1), the uncertainty is
inflated by its square root (the Birge ratio); with three or more cues, one that disagrees
by more than 3 standard deviations is left out.

Why open eyes used to fail on frontal photos: the old checks divided the lid gap and the
iris diameter by the eye's 2D corner-to-corner width, with thresholds (0.18 and 0.30) close
to normal values. That width is largest on a frontal view (yaw shortens it and so raised
both ratios), so a frontal photo of a person with long or narrow eye openings fell below the
thresholds while his turned views passed. The lid gap is now compared with the iris itself
and the iris with the eye's 3D width, neither of which changes with yaw.

``mm_per_px`` is the size of a photo pixel at the depth of the outer eye corners (the
pipeline's camera places the rest of the face by perspective from there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UsageError
from .landmarks import (
    FACE_OVAL,
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

__all__ = [
    "ScaleCue",
    "ScaleEstimate",
    "estimate_scale",
    "combine_cues",
    "iris_cue",
    "biocular_cue",
    "IRIS_DIAMETER_MM",
    "BIOCULAR_WIDTH_MM",
    "GROUP_CORRELATION",
    "POPULATION_SIZE_GROUP",
]

#: Horizontal visible iris diameter of adults, mm (mean, standard deviation).
IRIS_DIAMETER_MM = (11.7, 0.5)
#: Outer-eye-corner distance (exocanthion–exocanthion) of adults, mm (mean, std. dev.).
BIOCULAR_WIDTH_MM = (90.0, 4.5)
#: Correlation assumed between the errors of two cues of the same ``group`` (e.g. two
#: priors on the population's face size: a large face is large in every dimension).
GROUP_CORRELATION = 0.8
#: The group of the biocular-width prior; a model-size cue that rests on the same kind of
#: population prior should use it too.
POPULATION_SIZE_GROUP = "population_size"

# An eye counts as open when its lid gap is at least this many iris diameters. Open eyes
# measure 0.58-0.86 on real photos (smiling included); the closed eyes of 169 head-scan
# renders at most 0.43 on both eyes of a face (0.70 on one far eye of a head pitched down,
# whose closed lids MediaPipe then reads apart), so both eyes must pass.
_MIN_LID_GAP_PER_IRIS = 0.5
# Plausible iris diameter as a fraction of the eye's 3D corner-to-corner width (adults:
# 11.7 mm over 26–34 mm ≈ 0.34–0.45, widened for landmark noise).
_IRIS_TO_EYE_WIDTH = (0.25, 0.65)
# An eye whose 2D width is under this fraction of its 3D width (turned > ~53°) is skipped.
_MIN_FORESHORTENING = 0.6
# A fitted eye opening farther than this (mm) in front of or behind the outer corners' mean
# depth is not trusted to move the irises' depth (a head turned 53°, past which an eye is
# skipped as oblique, puts the near eye ~40 mm ahead).
_MAX_EYE_AHEAD_MM = 60.0
# Above this fitted pitch (degrees, either way) MediaPipe's lids are not trusted alone to
# say that the eyes are open (see iris_cue): the photo must show a dark iris too.
_DOUBTFUL_PITCH_DEG = 10.0
# Largest iris darkness (_iris_darkness) of an eye that counts as open where it is checked.
_MAX_IRIS_DARKNESS = 0.6
# The two irises must agree within this relative difference.
_IRIS_AGREEMENT = 0.25
# Landmark noise of an iris diameter: a relative part (the face mesh works on a fixed-size
# crop) and an absolute part in photo pixels (small faces).
_IRIS_NOISE_REL = 0.04
_IRIS_NOISE_PX = 0.5
_BIOCULAR_MEASUREMENT = 0.02
# A cue more than this many standard deviations from the others is left out (3+ cues).
_OUTLIER_SIGMAS = 3.0


@dataclass(frozen=True)
class ScaleCue:
    """One estimate of the scale.

    Attributes
    ----------
    name : str
        Short identifier, used in ``ScaleEstimate.source`` (e.g. ``"iris"``, ``"model"``).
    mm_per_px : float
        Millimetres per pixel of the photo at the face (> 0).
    rel_sigma : float
        Relative standard uncertainty (0.05 = ±5 %), population spread and measurement
        noise together (> 0).
    detail : str
        What was measured, for people.
    group : str or None
        Cues of the same group share a source of error (e.g. priors on the population's
        face size) and are combined as correlated; None = independent of all others.
    """

    name: str
    mm_per_px: float
    rel_sigma: float
    detail: str = ""
    group: str | None = None

    def __post_init__(self):
        ok = math.isfinite(self.mm_per_px) and self.mm_per_px > 0
        if not (ok and math.isfinite(self.rel_sigma) and self.rel_sigma > 0):
            raise UsageError(
                f"scale cue {self.name!r} needs mm_per_px > 0 and rel_sigma > 0, "
                f"got {self.mm_per_px!r} and {self.rel_sigma!r}"
            )


@dataclass(frozen=True)
class ScaleEstimate:
    """How millimetres were obtained.

    Attributes
    ----------
    mm_per_px : float
        Millimetres per pixel of the input photo, at the face.
    source : str
        The cues used, joined by ``+`` in the order given, e.g.
        ``"iris+biocular_width_prior"``, or ``"biocular_width_prior"`` alone (eyes closed),
        or ``"user"`` when given explicitly.
    uncertainty : float
        Relative standard uncertainty of ``mm_per_px`` (0.07 = ±7 %), after the consistency
        check.
    detail : str
        What was measured, for people.
    cues : tuple of ScaleCue
        The cues combined (new; empty for ``"user"``).
    weights : tuple of float
        Their weights in the combination (of ``log mm_per_px``), summing to 1 (new).
    consistency : float or None
        Chi-square per degree of freedom of the cues about the estimate (new; ~1 or less
        when they agree within their uncertainties; None with a single cue). When above 1
        the uncertainty has been multiplied by its square root.
    rejected : tuple of str
        Cues that were considered and left out, with the reason, e.g.
        ``"iris: eyes closed"`` (new).
    """

    mm_per_px: float
    source: str
    uncertainty: float
    detail: str
    cues: tuple[ScaleCue, ...] = ()
    weights: tuple[float, ...] = ()
    consistency: float | None = None
    rejected: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for people, e.g. ``1.44 mm/px from iris 8.4 px = 11.7 mm (both eyes,
        at the outer corners' depth) [40%] + outer eye corners 60.9 px = 90 mm
        (anthropometric prior) [60%] (±4%)``."""
        return f"{self.mm_per_px:.4g} mm/px from {self.detail} (±{100 * self.uncertainty:.0f}%)"


def estimate_scale(
    landmarks: np.ndarray,
    *,
    extra_cues: Iterable[ScaleCue] = (),
    model_fit=None,
    focal_px: float | None = None,
    image: np.ndarray | None = None,
) -> ScaleEstimate:
    """Millimetres per pixel from 478 face-mesh landmarks, and any further cues.

    Parameters
    ----------
    landmarks : numpy.ndarray
        (478, 3) float: x, y in pixels, z relative depth in the same pixel units.
    extra_cues : iterable of ScaleCue, keyword-only
        More estimates to combine with the landmark cues (e.g. a morphable-model fit's
        implied face size, with ``group=POPULATION_SIZE_GROUP`` when it rests on a
        population prior like the biocular width).
    model_fit : ModelFit, optional, keyword-only
        The face model fitted to these landmarks: the biocular width is then measured
        through its head pose and camera (:func:`biocular_cue`), and with ``focal_px``
        each iris is taken to the outer corners' depth (:func:`iris_cue`).
    focal_px : float, optional, keyword-only
        The photo's focal length in pixels (known or guessed).
    image : numpy.ndarray, optional, keyword-only
        The H×W×3 uint8 RGB photo: where the lids are in doubt, the eyes must look open
        in it for the iris to count (:func:`iris_cue`).

    Returns
    -------
    ScaleEstimate
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    cues, rejected = [], []
    iris, reason = iris_cue(pts, model_fit=model_fit, focal_px=focal_px, image=image)
    if iris is not None:
        cues.append(iris)
    else:
        rejected.append(f"iris: {reason}")
    cues.append(biocular_cue(pts, model_fit=model_fit))
    cues.extend(extra_cues)
    return combine_cues(cues, rejected=rejected)


def combine_cues(cues: Sequence[ScaleCue], *, rejected: Iterable[str] = ()) -> ScaleEstimate:
    """One estimate from several cues: weighted in log space, with a consistency check.

    Parameters
    ----------
    cues : sequence of ScaleCue
        At least one.
    rejected : iterable of str, keyword-only
        Cues already left out, with reasons (carried into the result).

    Returns
    -------
    ScaleEstimate
        ``source`` names the cues used; ``uncertainty`` is the combined relative standard
        uncertainty, inflated by ``sqrt(consistency)`` when the cues scatter more than
        their uncertainties allow.
    """
    cues = list(cues)
    rejected = list(rejected)
    if not cues:
        raise UsageError("combine_cues needs at least one scale cue")
    names = [c.name for c in cues]
    if len(set(names)) != len(names):
        raise UsageError(f"scale cue names must be unique, got {names}")
    estimate, sigma, weights, chi2 = _gls(cues)
    while len(cues) >= 3:
        z = [abs(math.log(c.mm_per_px) - estimate) / c.rel_sigma for c in cues]
        worst = int(np.argmax(z))
        if z[worst] <= _OUTLIER_SIGMAS:
            break
        dropped = cues.pop(worst)
        ratio = dropped.mm_per_px / math.exp(estimate)
        rejected.append(f"{dropped.name}: disagrees with the others (x{ratio:.2f})")
        estimate, sigma, weights, chi2 = _gls(cues)
    dof = len(cues) - 1
    consistency = chi2 / dof if dof else None
    if consistency is not None and consistency > 1:
        sigma *= math.sqrt(consistency)
    parts = [c.detail or c.name for c in cues]
    detail = parts[0] if len(parts) == 1 else _joined_detail(cues, weights)
    if consistency is not None and consistency > 1:
        detail += f"; cues disagree (chi2/dof {consistency:.1f}): uncertainty widened"
    if rejected:
        detail += f" ({'; '.join(rejected)})"
    return ScaleEstimate(
        mm_per_px=math.exp(estimate),
        source="+".join(c.name for c in cues),
        uncertainty=sigma,
        detail=detail,
        cues=tuple(cues),
        weights=tuple(float(w) for w in weights),
        consistency=consistency,
        rejected=tuple(rejected),
    )


def _gls(cues: Sequence[ScaleCue]) -> tuple[float, float, np.ndarray, float]:
    """Log-space generalised least squares: (log estimate, sigma, weights, chi-square)."""
    x = np.log([c.mm_per_px for c in cues])
    s = np.array([c.rel_sigma for c in cues])
    cov = np.diag(s**2)
    for i, a in enumerate(cues):
        for j, b in enumerate(cues):
            if i != j and a.group is not None and a.group == b.group:
                cov[i, j] = GROUP_CORRELATION * s[i] * s[j]
    inv = np.linalg.inv(cov)
    ones = np.ones(len(cues))
    information = float(ones @ inv @ ones)
    weights = inv @ ones / information
    estimate = float(weights @ x)
    resid = x - estimate
    return estimate, 1.0 / math.sqrt(information), weights, float(resid @ inv @ resid)


def _joined_detail(cues: Sequence[ScaleCue], weights: np.ndarray) -> str:
    return " + ".join(
        f"{c.detail or c.name} [{100 * w:.0f}%]" for c, w in zip(cues, weights, strict=True)
    )


def biocular_cue(landmarks: np.ndarray, *, model_fit=None) -> ScaleCue:
    """The anthropometric prior: outer eye corners ``BIOCULAR_WIDTH_MM`` apart (3D).

    The corners' distance in pixels, as if seen square-on at their depth: with
    ``model_fit``, the fitted face's outer corners' distance (model mm) times the fit's
    pixels per mm at their mean depth (focal length over that depth; weak perspective: its
    scale), so that the head's pose and the perspective come from the fit of all the
    landmarks; without it, the 3D distance of the two landmarks, MediaPipe's relative
    depth included. MediaPipe's depths shorten a turned head's corner-to-corner depth
    difference: the landmarks' own distance made the head scan 4-6 % smaller turned 30°
    than frontal (35 mm lens), and morphed faces up to 11 % at yaw 25° or more; through
    the fitted pose 0.3-2.5 % and up to 7 % (README, Metric scale).

    Parameters
    ----------
    landmarks : numpy.ndarray
        (478, 3) float landmarks, pixels.
    model_fit : ModelFit, optional, keyword-only
        The face model fitted to ``landmarks``.

    Returns
    -------
    ScaleCue
        Named ``"biocular_width_prior"``, group :data:`POPULATION_SIZE_GROUP`.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    width = _fitted_corner_distance_px(model_fit) if model_fit is not None else math.nan
    if not (math.isfinite(width) and width > 0):  # no fit, or one behind the camera
        width = float(np.linalg.norm(pts[LEFT_EYE_OUTER] - pts[RIGHT_EYE_OUTER]))
    sigma = math.hypot(BIOCULAR_WIDTH_MM[1] / BIOCULAR_WIDTH_MM[0], _BIOCULAR_MEASUREMENT)
    return ScaleCue(
        name="biocular_width_prior",
        mm_per_px=BIOCULAR_WIDTH_MM[0] / max(width, 1e-6),
        rel_sigma=sigma,
        detail=(
            f"outer eye corners {width:.1f} px = {BIOCULAR_WIDTH_MM[0]:.0f} mm "
            "(anthropometric prior)"
        ),
        group=POPULATION_SIZE_GROUP,
    )


def _fitted_corner_distance_px(fit) -> float:
    """The fitted face's outer-eye-corner distance in pixels at the corners' depth."""
    corners = fit.landmarks_model[[LEFT_EYE_OUTER, RIGHT_EYE_OUTER]].astype(np.float64)
    return float(np.linalg.norm(corners[0] - corners[1])) * fit.eye_px_per_mm


_OBLIQUE = "eye seen too obliquely"
_EYES = (
    ("right", RIGHT_IRIS, RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER),
    ("left", LEFT_IRIS, LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_EYE_UPPER, LEFT_EYE_LOWER),
)


def iris_cue(
    landmarks: np.ndarray,
    *,
    model_fit=None,
    focal_px: float | None = None,
    image: np.ndarray | None = None,
) -> tuple[ScaleCue | None, str]:
    """The iris-diameter cue, or None and the reason it is not usable.

    An iris's pixels measure the pixel size at the iris's own depth, nearer the camera than
    the outer eye corners where ``mm_per_px`` holds (the eye opening is 6.5 mm in front of
    them on MediaPipe's canonical face, 7-8.5 mm on the fitted ICT faces, 4-7 mm on the
    head scan's closed lids): 2-4 % of the distance of a close-up. With ``model_fit`` and
    ``focal_px``, each eye's pixel size is taken to the corners' depth, ``mm_per_px`` +
    that eye's lid midpoint's distance in front of the corners (mm, in the fit's camera
    frame, so the head's pose counts) / ``focal_px``: the near eye of a turned head then
    agrees with the far one.

    Where MediaPipe's lids are least to be trusted — a head pitched by more than
    :data:`_DOUBTFUL_PITCH_DEG` (the fit's) or an eye skipped as oblique — it reads closed
    lids apart (the head scan's, at yaw 30-45° and pitch ±20-25°: lid gaps of 0.5-0.84
    iris diameters, as open eyes have), and the "iris" then gave the scale 30-55 % large.
    With ``image``, each eye must there also look open in the photo: its iris disc darker
    than the skin round it (:func:`_iris_darkness` at most :data:`_MAX_IRIS_DARKNESS`).

    Parameters
    ----------
    landmarks : numpy.ndarray
        (478, 3) float landmarks with the 10 iris points (468–477), pixels.
    model_fit : ModelFit, optional, keyword-only
        The face model fitted to ``landmarks``.
    focal_px : float, optional, keyword-only
        The photo's focal length, pixels.
    image : numpy.ndarray, optional, keyword-only
        The H×W×3 uint8 RGB photo the landmarks are in.

    Returns
    -------
    (ScaleCue or None, str)
        The cue (named ``"iris"``) and ``""``, or None and why (e.g. ``"eyes closed"``).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape[0] < 478:
        return None, "no iris landmarks"
    ahead = _eyes_ahead_of_corners_mm(model_fit, focal_px)
    measured, reasons, oblique, oblique_sides = [], [], [], set()
    for side, iris, outer, inner, upper, lower in _EYES:
        diameter, weight, reason = _eye_iris_px(pts, iris, outer, inner, upper, lower)
        if diameter is not None:
            if ahead is not None:  # the diameter the iris would have at the corners' depth
                mm_per_px = IRIS_DIAMETER_MM[0] / diameter + ahead[side] / focal_px
                diameter = IRIS_DIAMETER_MM[0] / mm_per_px
            measured.append((diameter, weight))
        elif reason == _OBLIQUE:
            oblique.append(f"{side} {reason}")
            oblique_sides.add(side)
        else:
            reasons.append(f"{side} {reason}")
    if reasons or not measured:
        # Every eye that is seen well enough must count: an open-looking eye beside a
        # closed one is more often closed lids read apart than a wink.
        if reasons and all("closed" in r for r in reasons):
            return None, "eyes closed"
        return None, "; ".join(reasons + oblique)
    if image is not None and (oblique or _pitch_in_doubt(model_fit)):
        dark = [_iris_darkness(image, pts, eye[1]) for eye in _EYES if eye[0] not in oblique_sides]
        if any(not d <= _MAX_IRIS_DARKNESS for d in dark):
            shown = ", ".join(f"{d:.2f}" for d in dark)
            return None, f"eyes closed (no dark iris in the photo: {shown} of the skin round it)"
    if len(measured) == 2:
        (a, _), (b, _) = measured
        if abs(a - b) / max(a, b) > _IRIS_AGREEMENT:
            return None, f"the two irises disagree ({a:.1f} vs {b:.1f} px)"
    total = sum(w for _, w in measured)
    diameter = sum(d * w for d, w in measured) / total
    noise = math.hypot(_IRIS_NOISE_REL, _IRIS_NOISE_PX / diameter) / math.sqrt(len(measured))
    sigma = math.hypot(IRIS_DIAMETER_MM[1] / IRIS_DIAMETER_MM[0], noise)
    eyes = "both eyes" if len(measured) == 2 else "one eye: " + "; ".join(oblique)
    if ahead is not None:
        eyes += ", at the outer corners' depth"
    return (
        ScaleCue(
            name="iris",
            mm_per_px=IRIS_DIAMETER_MM[0] / diameter,
            rel_sigma=sigma,
            detail=f"iris {diameter:.1f} px = {IRIS_DIAMETER_MM[0]} mm ({eyes})",
        ),
        "",
    )


def _pitch_in_doubt(fit) -> bool:
    """Whether the fitted head is pitched more than :data:`_DOUBTFUL_PITCH_DEG`."""
    if fit is None:
        return False
    return abs(float(fit.yaw_pitch_roll_deg[1])) > _DOUBTFUL_PITCH_DEG


def _iris_darkness(image: np.ndarray, pts: np.ndarray, iris) -> float:
    """How dark an eye's iris disc is against the skin round it: the median luminance of
    the disc (0.7 of the iris radius) over that of the ring 1.8-2.6 iris radii from its
    centre inside the face oval (lids, the skin under the eye, some white of the eye). Open
    eyes, where the iris and pupil fill the disc, measure 0.18-0.40 on real photos (two
    women, light skin, and variants of one); closed lids 0.4-1.4 on renders of the head
    scan (0.4-0.5 only in a hard side light's shadow, where the lids are not in doubt).
    NaN when the eye is too small or too near the photo's edge to tell."""
    import cv2

    centre = pts[iris[0], :2]
    radius = float(np.mean([np.linalg.norm(pts[i, :2] - centre) for i in iris[1:]]))
    reach = int(math.ceil(2.6 * radius)) + 1
    h, w = image.shape[:2]
    x0, y0 = int(centre[0]) - reach, int(centre[1]) - reach
    x1, y1 = int(centre[0]) + reach + 1, int(centre[1]) + reach + 1
    if radius < 1.5 or x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return math.nan
    window = image[y0:y1, x0:x1].astype(np.float32)
    luma = window @ np.array([0.299, 0.587, 0.114], np.float32)
    oval = np.zeros(luma.shape, np.uint8)
    outline = np.round(pts[list(FACE_OVAL), :2] - (x0, y0)).astype(np.int32)
    cv2.fillPoly(oval, [outline], 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d2 = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2
    disc = d2 <= (0.7 * radius) ** 2
    ring = (d2 >= (1.8 * radius) ** 2) & (d2 <= (2.6 * radius) ** 2) & (oval > 0)
    if disc.sum() < 3 or ring.sum() < 10:
        return math.nan
    skin = float(np.median(luma[ring]))
    return float(np.median(luma[disc])) / skin if skin > 0 else math.nan


def _eyes_ahead_of_corners_mm(fit, focal_px) -> dict[str, float] | None:
    """How far each eye's lid midpoint lies in front of the outer eye corners' mean depth
    (mm along the fit's optical axis, negative behind; keys ``"right"``, ``"left"``: the
    far eye of a turned head lies behind the corners' mean), or None without a fit and a
    focal length, or with a fit that puts either farther than :data:`_MAX_EYE_AHEAD_MM`
    from it."""
    if fit is None or focal_px is None or not (math.isfinite(focal_px) and focal_px > 0):
        return None
    axis = np.asarray(fit.rotation, np.float64)[2]
    depth = np.asarray(fit.landmarks_model, np.float64) @ axis
    corners = float(np.mean(depth[[RIGHT_EYE_OUTER, LEFT_EYE_OUTER]]))
    ahead = {
        side: corners - float(np.mean(depth[[upper, lower]]))
        for side, _, _, _, upper, lower in _EYES
    }
    return ahead if all(abs(v) <= _MAX_EYE_AHEAD_MM for v in ahead.values()) else None


def _eye_iris_px(pts, iris, outer, inner, upper, lower):
    """(diameter px, weight, "") of one eye's iris, or (None, 0, reason)."""
    width_2d = float(np.linalg.norm(pts[outer, :2] - pts[inner, :2]))
    width_3d = float(np.linalg.norm(pts[outer] - pts[inner]))
    if width_3d < 1e-6:
        return None, 0.0, "eye not measurable"
    foreshortening = min(width_2d / width_3d, 1.0)
    if foreshortening < _MIN_FORESHORTENING:
        return None, 0.0, _OBLIQUE
    _, right, top, left, bottom = iris
    horizontal = float(np.linalg.norm(pts[right, :2] - pts[left, :2]))
    vertical = float(np.linalg.norm(pts[top, :2] - pts[bottom, :2]))
    diameter = max(horizontal, vertical)
    lid_gap = float(np.linalg.norm(pts[upper, :2] - pts[lower, :2]))
    if lid_gap < _MIN_LID_GAP_PER_IRIS * diameter:
        return None, 0.0, "eye closed"
    ratio = diameter / width_3d
    if not _IRIS_TO_EYE_WIDTH[0] <= ratio <= _IRIS_TO_EYE_WIDTH[1]:
        return None, 0.0, f"iris implausible ({ratio:.2f} of the eye's width)"
    return diameter, foreshortening**2, ""

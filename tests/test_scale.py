"""Metric scale: the iris plausibility checks on real open eyes, and the cue combination.

The iris tests use real MediaPipe landmarks of the open-eyed astronaut photo and of
variants made from it (resized, rotated, cropped, mirrored); closed eyes come from the head
scan render. The combination tests use hand-made cues, so their expected values follow from
the formulas of inverse-variance weighting.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scan_renders import needs_scan, render_scan

from face3d_mesh.errors import UsageError
from face3d_mesh.landmarks import LEFT_IRIS, RIGHT_IRIS, detect_faces
from face3d_mesh.scale import (
    GROUP_CORRELATION,
    IRIS_DIAMETER_MM,
    POPULATION_SIZE_GROUP,
    ScaleCue,
    biocular_cue,
    combine_cues,
    estimate_scale,
    iris_cue,
)


def _variant(image: np.ndarray, kind: str) -> tuple[np.ndarray, float]:
    """A modified copy of the photo and its scale factor (new pixels per old pixel)."""
    h, w = image.shape[:2]
    if kind.startswith("resize"):
        f = float(kind[6:])
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
        return cv2.resize(image, None, fx=f, fy=f, interpolation=interp), f
    if kind.startswith("rotate"):
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(kind[6:]), 1.0)
        return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT), 1.0
    if kind == "crop":
        return np.ascontiguousarray(image[0:300, 100:400]), 1.0
    if kind == "mirror":
        return np.ascontiguousarray(image[:, ::-1]), 1.0
    raise ValueError(kind)


@pytest.fixture(scope="module")
def astronaut_points(astronaut_rgb):
    return detect_faces(astronaut_rgb)[0].points


VARIANTS = ("resize0.6", "resize2.5", "rotate-25", "rotate30", "crop", "mirror")


@pytest.mark.parametrize("kind", VARIANTS)
def test_open_eyes_pass_the_iris_checks_on_photo_variants(astronaut_rgb, astronaut_points, kind):
    image, factor = _variant(astronaut_rgb, kind)
    points = detect_faces(image)[0].points
    cue, reason = iris_cue(points)
    assert cue is not None, reason
    assert "both eyes" in cue.detail
    scale = estimate_scale(points)
    assert scale.source == "iris+biocular_width_prior"
    assert scale.rejected == ()
    # The same face: the scale follows the resampling (within the landmarks' noise).
    reference = estimate_scale(astronaut_points).mm_per_px
    assert scale.mm_per_px * factor == pytest.approx(reference, rel=0.06)
    # Iris and prior tell the same story for this woman (within their uncertainties).
    prior = biocular_cue(points)
    assert abs(math.log(cue.mm_per_px / prior.mm_per_px)) < 2 * math.hypot(
        cue.rel_sigma, prior.rel_sigma
    )


@pytest.mark.parametrize("length", [1.0, 1.25, 1.5])
def test_open_eyes_pass_whatever_the_length_of_the_opening(astronaut_points, length):
    """The reported failure: open eyes whose lid gap is small against the eye's width.

    The old test called an eye closed when its lid gap was under 0.18 of its 2D
    corner-to-corner width, a width that is largest on a frontal view. Narrower lids (gap
    x0.7, still 0.56 iris diameters) in a longer opening fall under it as the opening grows;
    the lid gap is now compared with the iris, which does not depend on the opening's length.
    """
    pts = astronaut_points.copy()
    old_openness = []
    for outer, inner, upper, lower in ((33, 133, 159, 145), (263, 362, 386, 374)):
        centre = (pts[outer] + pts[inner]) / 2
        pts[outer] = centre + length * (pts[outer] - centre)
        pts[inner] = centre + length * (pts[inner] - centre)
        mid = (pts[upper] + pts[lower]) / 2
        pts[upper] = mid + 0.7 * (pts[upper] - mid)
        pts[lower] = mid + 0.7 * (pts[lower] - mid)
        gap = np.linalg.norm(pts[upper, :2] - pts[lower, :2])
        old_openness.append(gap / np.linalg.norm(pts[outer, :2] - pts[inner, :2]))
    if length == 1.5:
        assert max(old_openness) < 0.18  # what the old check rejected
    cue, reason = iris_cue(pts)
    assert cue is not None, reason
    assert cue.mm_per_px == pytest.approx(iris_cue(astronaut_points)[0].mm_per_px)


def test_closed_eyes_are_rejected_with_a_reason(head_scan_rec, astronaut_points):
    assert head_scan_rec.scale.source == "biocular_width_prior"
    assert head_scan_rec.scale.rejected == ("iris: eyes closed",)
    assert "eyes closed" in head_scan_rec.scale.describe()
    # Lids half closed over the iris (gap 0.3 iris diameters) count as closed too.
    pts = astronaut_points.copy()
    diameter = np.linalg.norm(pts[469, :2] - pts[471, :2])
    for upper, lower in ((159, 145), (386, 374)):
        mid = (pts[upper] + pts[lower]) / 2
        pts[upper, 1], pts[lower, 1] = mid[1] - 0.15 * diameter, mid[1] + 0.15 * diameter
    assert iris_cue(pts) == (None, "eyes closed")


def test_one_closed_eye_rejects_the_iris(astronaut_points):
    pts = astronaut_points.copy()
    pts[386, :2] = pts[374, :2]  # the subject's left eye closed
    assert iris_cue(pts) == (None, "eyes closed")


def test_a_far_eye_seen_obliquely_leaves_the_near_one(astronaut_points):
    pts = astronaut_points.copy()
    # The subject's left eye turned away: its 2D width halved, its 3D width kept.
    outer, inner = pts[263].copy(), pts[362].copy()
    width = np.linalg.norm(outer[:2] - inner[:2])
    pts[263, 0] = inner[0] + 0.5 * (outer[0] - inner[0])
    pts[263, 1] = inner[1] + 0.5 * (outer[1] - inner[1])
    pts[263, 2] = inner[2] + math.sqrt(0.75) * width
    cue, _ = iris_cue(pts)
    both, _ = iris_cue(astronaut_points)
    assert cue is not None and "one eye: left eye seen too obliquely" in cue.detail
    assert cue.rel_sigma > both.rel_sigma  # one eye measures less well than two
    assert cue.mm_per_px == pytest.approx(both.mm_per_px, rel=0.08)


@needs_scan
@pytest.mark.parametrize("yaw, pitch", [(0, -20), (25, -15), (-25, -15)])
def test_closed_eyes_of_a_head_pitched_down_are_not_read_as_open(yaw, pitch):
    """Seen from above, closed lids look apart to MediaPipe on one eye (up to 0.7 iris
    diameters on a far eye): the iris must still be rejected."""
    image, _, _ = render_scan(yaw=yaw, pitch=pitch, lens_mm=35)
    cue, reason = iris_cue(detect_faces(image)[0].points)
    assert cue is None and "closed" in reason


@needs_scan
@pytest.mark.parametrize("yaw, pitch", [(45, 25), (-30, -25), (30, 25)])
def test_closed_eyes_read_apart_at_a_doubtful_pose_are_told_by_the_photo(yaw, pitch):
    """Turned and pitched far (a 26 mm close-up), MediaPipe reads the scan's closed lids
    apart on every eye it measures, and the "iris" gave the scale 30-55 % large; with the
    photo, the eyes must there also show a dark iris, and they do not."""
    from face3d_mesh.model_fit import fit_face_model
    from face3d_mesh.scale import _iris_darkness

    image, _, fx = render_scan(yaw=yaw, pitch=pitch, roll=30 if yaw == 30 else 0, lens_mm=26)
    points = detect_faces(image)[0].points
    fit = fit_face_model(points, focal_px=fx, principal_point=(383.5, 383.5))
    alone, _ = iris_cue(points, model_fit=fit, focal_px=fx)
    assert alone is not None  # the lids alone say open (the reason for the photo's check)
    cue, reason = iris_cue(points, model_fit=fit, focal_px=fx, image=image)
    assert cue is None and "no dark iris" in reason, reason
    darkness = [_iris_darkness(image, points, iris) for iris in (RIGHT_IRIS, LEFT_IRIS)]
    assert max(d for d in darkness if d == d) > 0.6


@pytest.mark.parametrize("kind", VARIANTS)
def test_open_eyes_show_a_dark_iris_in_the_photo(astronaut_rgb, kind):
    """The photo's check on real open eyes (the astronaut, and her photo resized, turned,
    cropped, mirrored): each iris disc at most 0.45 of the skin round it (the limit 0.6)."""
    from face3d_mesh.scale import _iris_darkness

    image, _ = _variant(astronaut_rgb, kind)
    points = detect_faces(image)[0].points
    for iris in (RIGHT_IRIS, LEFT_IRIS):
        assert _iris_darkness(image, points, iris) < 0.45


def test_disagreeing_irises_are_rejected(astronaut_points):
    pts = astronaut_points.copy()
    centre = pts[473]
    pts[474:478] = centre + 1.4 * (pts[474:478] - centre)  # left iris 40 % larger
    cue, reason = iris_cue(pts)
    assert cue is None and "disagree" in reason


def _cue(name, mm_per_px, sigma, group=None):
    return ScaleCue(name, mm_per_px, sigma, detail=f"{name} cue", group=group)


def test_inverse_variance_weighting():
    a, b = _cue("a", 0.30, 0.05), _cue("b", 0.32, 0.10)
    est = combine_cues([a, b])
    wa, wb = 1 / 0.05**2, 1 / 0.10**2
    expected = math.exp((wa * math.log(0.30) + wb * math.log(0.32)) / (wa + wb))
    assert est.mm_per_px == pytest.approx(expected)
    assert est.weights == pytest.approx((wa / (wa + wb), wb / (wa + wb)))
    assert est.uncertainty == pytest.approx(1 / math.sqrt(wa + wb))  # consistent: no inflation
    assert est.consistency < 1
    assert est.source == "a+b"
    assert est.detail == "a cue [80%] + b cue [20%]"


def test_inconsistent_cues_widen_the_uncertainty():
    a, b = _cue("a", 0.30, 0.05), _cue("b", 0.36, 0.05)  # 18 % apart, 2.6 sigma
    est = combine_cues([a, b])
    chi2 = (math.log(0.36 / 0.30) / 2) ** 2 * 2 / 0.05**2
    assert est.consistency == pytest.approx(chi2)
    assert est.uncertainty == pytest.approx(0.05 / math.sqrt(2) * math.sqrt(chi2))
    assert est.mm_per_px == pytest.approx(math.sqrt(0.30 * 0.36))
    assert "cues disagree" in est.detail


def test_an_outlier_among_three_cues_is_left_out():
    cues = [_cue("a", 0.30, 0.04), _cue("b", 0.31, 0.04), _cue("c", 0.45, 0.04)]
    est = combine_cues(cues)
    assert est.source == "a+b"
    assert len(est.rejected) == 1 and est.rejected[0].startswith("c: disagrees")
    assert est.mm_per_px == pytest.approx(math.sqrt(0.30 * 0.31))


def test_correlated_priors_count_less_than_independent_ones():
    independent = combine_cues([_cue("a", 0.3, 0.05), _cue("b", 0.3, 0.05)])
    grouped = combine_cues([_cue("a", 0.3, 0.05, "g"), _cue("b", 0.3, 0.05, "g")])
    assert independent.uncertainty == pytest.approx(0.05 / math.sqrt(2))
    assert grouped.uncertainty == pytest.approx(0.05 * math.sqrt((1 + GROUP_CORRELATION) / 2))


def test_extra_cue_joins_the_landmark_cues(astronaut_points):
    base = estimate_scale(astronaut_points)
    model = ScaleCue("model", base.mm_per_px * 1.02, 0.04, group=POPULATION_SIZE_GROUP)
    est = estimate_scale(astronaut_points, extra_cues=[model])
    assert est.source == "iris+biocular_width_prior+model"
    assert [c.name for c in est.cues] == ["iris", "biocular_width_prior", "model"]
    assert sum(est.weights) == pytest.approx(1.0)
    assert est.uncertainty < base.uncertainty
    assert est.mm_per_px == pytest.approx(base.mm_per_px, rel=0.03)


def test_bad_cues_are_refused():
    with pytest.raises(UsageError):
        ScaleCue("bad", -1.0, 0.05)
    with pytest.raises(UsageError):
        ScaleCue("bad", 0.3, 0.0)
    with pytest.raises(UsageError):
        combine_cues([])
    with pytest.raises(UsageError):
        combine_cues([_cue("a", 0.3, 0.05), _cue("a", 0.3, 0.05)])


def _outer_corner_mm_per_px(points: np.ndarray, depth: np.ndarray, fx: float) -> float:
    """The true size of a pixel at the outer eye corners of a render (mm)."""
    values = []
    for i in (33, 263):
        u, v = (int(round(c)) for c in points[i, :2])
        patch = depth[v - 2 : v + 3, u - 2 : u + 3]
        values += patch[np.isfinite(patch)].tolist()
    return float(np.median(values)) / fx


@needs_scan
@pytest.mark.parametrize("yaw", [30, -30])
def test_the_biocular_width_of_a_turned_head_is_measured_through_the_fitted_pose(yaw):
    """The scan (outer eye corners ~82 mm apart, so the 90 mm prior reads it ~10 % large)
    frontal and turned, 35 mm lens: measured with MediaPipe's own depths the turned face
    came out 4-6 % smaller than the frontal one (its depths shorten the corner-to-corner
    depth difference), through the fitted model's pose under 3 %; the pipeline's scale
    (``reconstruct``, ``face_scale``, the CLI's ``info``) is the latter."""
    from face3d_mesh.pipeline import face_scale

    ratios = {}
    for angle in (0, yaw):
        image, depth, fx = render_scan(lens_mm=35, yaw=angle)
        face = detect_faces(image)[0]
        truth = _outer_corner_mm_per_px(face.points, depth, fx)
        ratios[angle] = (
            estimate_scale(face.points).mm_per_px / truth,
            face_scale(image, face, exif_focal_px=fx).mm_per_px / truth,
        )
    (own_frontal, fit_frontal), (own_turned, fit_turned) = ratios[0], ratios[yaw]
    print(
        f"yaw {yaw}: frontal {own_frontal:.3f} / {fit_frontal:.3f}, "
        f"turned {own_turned:.3f} / {fit_turned:.3f}"
    )
    assert abs(math.log(fit_frontal / 1.098)) < 0.03  # 90 mm over the scan's ~82
    assert abs(math.log(own_turned / own_frontal)) > 0.03
    assert abs(math.log(fit_turned / fit_frontal)) < 0.03
    assert abs(math.log(fit_turned / fit_frontal)) < 0.6 * abs(math.log(own_turned / own_frontal))


def test_the_pipeline_and_info_measure_the_same_scale(astronaut_rgb):
    import face3d_mesh
    from face3d_mesh.pipeline import face_scale

    rec = face3d_mesh.reconstruct(astronaut_rgb, depth="landmarks")
    face = detect_faces(astronaut_rgb)[0]
    scale = face_scale(astronaut_rgb, face)
    assert scale.mm_per_px == pytest.approx(rec.scale.mm_per_px, rel=1e-9)
    assert scale.source == rec.scale.source == "iris+biocular_width_prior"
    # the landmarks' own 3D distance of a frontal face gives nearly the same
    assert scale.mm_per_px == pytest.approx(estimate_scale(face.points).mm_per_px, rel=0.02)


def test_a_fit_behind_the_camera_leaves_the_landmarks_own_width(astronaut_points):
    from types import SimpleNamespace

    corners = np.zeros((478, 3))
    corners[33], corners[263] = (-45.0, 0.0, 0.0), (45.0, 0.0, 0.0)
    fit = SimpleNamespace(landmarks_model=corners, eye_px_per_mm=2.0)  # 90 mm = 180 px
    assert biocular_cue(astronaut_points, model_fit=fit).mm_per_px == pytest.approx(0.5)
    fit.eye_px_per_mm = math.nan  # what ModelFit says for eyes behind the camera
    own = biocular_cue(astronaut_points).mm_per_px
    assert biocular_cue(astronaut_points, model_fit=fit).mm_per_px == pytest.approx(own)


CANONICAL = Path(__file__).resolve().parents[2] / "shared" / "face_models"
CANONICAL = CANONICAL / "canonical_face_model.obj"


def _canonical_face_with_irises(yaw: float, corners_mm: float, focal: float) -> tuple:
    """Landmarks of MediaPipe's canonical face (mm; not an ICT face) turned by ``yaw``
    with its outer eye corners ``corners_mm`` from a pinhole camera: each iris a disc of
    11.7 mm facing forward, 1.5 mm behind its lid midpoint. Returns (478×3 landmarks in
    pixels, MediaPipe's relative depth in pixels; the true mm per pixel at the corners)."""
    rows = [ln.split()[1:4] for ln in CANONICAL.read_text().splitlines() if ln.startswith("v ")]
    face = np.array(rows, float) * 10.0
    radius = IRIS_DIAMETER_MM[0] / 2
    ring = [(0, 0), (radius, 0), (0, radius), (-radius, 0), (0, -radius)]  # (x, y) offsets
    irises = [
        face[[upper, lower]].mean(axis=0) + (dx, dy, -1.5)
        for upper, lower in ((159, 145), (386, 374))
        for dx, dy in ring
    ]
    model = np.vstack([face, irises])
    c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    turned = model @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # about the vertical axis
    cam = np.column_stack([turned[:, 0], -turned[:, 1], -turned[:, 2]])
    cam[:, 2] += corners_mm - cam[[33, 263], 2].mean()
    centre = 400.0
    pts = np.column_stack(
        [
            focal * cam[:, 0] / cam[:, 2] + centre,
            focal * cam[:, 1] / cam[:, 2] + centre,
            (cam[:, 2] - corners_mm) * focal / corners_mm,
        ]
    )
    return pts, corners_mm / focal, (centre, centre)


@pytest.mark.skipif(not CANONICAL.is_file(), reason="../shared/face_models absent")
@pytest.mark.parametrize("yaw", [0, 25, -25, 45])
def test_each_iris_is_measured_at_the_outer_corners_depth(yaw):
    """An iris's pixels give the pixel size at its own depth, nearer than the outer eye
    corners where ``mm_per_px`` holds: 2.5-5 % too small on a close-up (a 26 mm lens, the
    corners 200 mm away), 13 % at yaw 45° where only the near eye counts. Through the
    fitted pose, each eye is taken to the corners' depth: within 1.5 %."""
    from face3d_mesh.model_fit import fit_face_model

    focal = 555.0  # 26 mm-equivalent on a 768-px photo
    pts, truth, axis = _canonical_face_with_irises(yaw, 200.0, focal)
    fit = fit_face_model(pts, focal_px=focal, principal_point=axis)
    plain, reason = iris_cue(pts)
    assert plain is not None, reason
    through_fit, _ = iris_cue(pts, model_fit=fit, focal_px=focal)
    ratios = plain.mm_per_px / truth, through_fit.mm_per_px / truth
    print(f"yaw {yaw}: at the iris {ratios[0]:.4f}, at the corners {ratios[1]:.4f}")
    assert plain.mm_per_px / truth < 0.98
    assert abs(math.log(through_fit.mm_per_px / truth)) < 0.015
    # 1 m from the camera the correction is smaller (under 1 % for a frontal face)
    far_pts, far_truth, _ = _canonical_face_with_irises(yaw, 1000.0, 2 * focal)
    far_fit = fit_face_model(far_pts, focal_px=2 * focal, principal_point=axis)
    far, _ = iris_cue(far_pts, model_fit=far_fit, focal_px=2 * focal)
    far_plain = iris_cue(far_pts)[0].mm_per_px
    assert 1.0 < far.mm_per_px / far_plain < through_fit.mm_per_px / plain.mm_per_px
    assert far.mm_per_px / far_plain < 1.01 or yaw != 0
    assert abs(math.log(far.mm_per_px / far_truth)) < 0.015

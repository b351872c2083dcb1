"""The morphable face model: registration, fit, the model/hybrid depth, fusion, the API.

Synthetic faces here are ICT faces (the model can represent them exactly): they check that
the fit recovers what it should, not how well it does on real faces (that is
``scripts/bench_fidelity.py``'s job, on renders of a real head scan).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scan_renders import needs_scan, now_like_error_mm, render_scan

import face3d_mesh
from face3d_mesh.landmarks import LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER
from face3d_mesh.model_fit import IDENTITY_MODES, fit_face_model
from face3d_mesh.morphable import DATA_FILE, face_model


def _rotation(yaw, pitch, roll):
    """Model frame to camera frame (x right, y down, z forward), as the renders use."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry @ np.diag([1.0, -1.0, -1.0])


def _angle_deg(a, b):
    c = (np.trace(a @ b.T) - 1) / 2
    return math.degrees(math.acos(float(np.clip(c, -1, 1))))


def _project(landmarks, rot, t, focal, centre):
    """MediaPipe-like points: pixels, and depth in pixel units (larger = farther)."""
    cam = landmarks @ rot.T + t
    uv = focal * cam[:, :2] / cam[:, 2:3] + centre
    z = (cam[:, 2] - cam[NOSE_TIP, 2]) * focal / t[2]
    return np.column_stack([uv, z])


def _similarity_error(a, b):
    """Per-vertex distances after the best similarity of a onto b (mm)."""
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    u, sig, vt = np.linalg.svd((b - mb).T @ (a - ma))
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ fix @ vt
    s = np.trace(np.diag(sig) @ fix) / ((a - ma) ** 2).sum()
    return np.linalg.norm(s * (a - ma) @ rot.T + mb - b, axis=1)


def _known_face(seed):
    rng = np.random.default_rng(seed)
    identity = 0.8 * rng.standard_normal(100)
    expression = np.zeros(53)
    expression[rng.choice(53, 3, replace=False)] = rng.uniform(0.1, 0.5, 3)
    angles = rng.uniform(-20, 20), rng.uniform(-10, 10), rng.uniform(-10, 10)
    return identity, expression, angles


# --------------------------------------------------------------------------- model data


def test_package_data_is_compact_and_complete():
    assert DATA_FILE.stat().st_size < 4_000_000
    for name in ("ICT-FaceKit-LICENSE.txt", "MediaPipe-LICENSE.txt"):
        assert (DATA_FILE.parent / name).exists()
    m = face_model()
    assert m.n_identity == 100 and m.n_expression == 53
    assert m.triangles.max() == m.n_vertices - 1
    assert m.landmark_triangle.shape == (478,) and m.landmark_bary.shape == (478, 3)
    np.testing.assert_allclose(m.landmark_bary.sum(axis=1), 1.0, atol=1e-5)
    assert (m.landmark_bary >= -1e-6).all()


def test_registration_puts_anatomical_landmarks_where_they_belong():
    m = face_model()
    lm = m.landmark_mean
    ict = m.neutral[m.ict_lm68].astype(np.float64)  # ICT's own 68-point landmarks
    # MediaPipe index -> 68-point index: nose tip, eye corners, mouth corners
    pairs = {4: 30, 33: 36, 133: 39, 362: 42, 263: 45, 61: 48, 291: 54}
    for mp, i68 in pairs.items():
        assert np.linalg.norm(lm[mp] - ict[i68]) < 2.5, (mp, i68)
    mesh = lm[:468]
    # the nose tip is the face's most forward point, on the midline
    assert lm[NOSE_TIP, 2] > np.percentile(mesh[:, 2], 99.5) and abs(lm[NOSE_TIP, 0]) < 1
    # the chin (152) is the lowest point of the face, on the midline, below the mouth
    assert lm[152, 1] <= mesh[:, 1].min() + 1e-6 and abs(lm[152, 0]) < 1
    assert lm[152, 1] < lm[17, 1] < lm[0, 1] < lm[NOSE_TIP, 1]
    # left/right: x toward the subject's left; eye and mouth corners mirror each other
    assert lm[RIGHT_EYE_OUTER, 0] < -40 and lm[LEFT_EYE_OUTER, 0] > 40
    for right, left in ((33, 263), (133, 362), (61, 291)):
        np.testing.assert_allclose(lm[right] * [-1, 1, 1], lm[left], atol=1.0)
    assert 85 < np.linalg.norm(lm[LEFT_EYE_OUTER] - lm[RIGHT_EYE_OUTER]) < 95


def test_fitted_mesh_has_ict_topology_and_uvs():
    m = face_model()
    fit = fit_face_model(_project(m.landmark_mean, _rotation(0, 0, 0), np.r_[0, 0, 600.0],
                                  1000.0, np.r_[500.0, 500.0]))  # fmt: skip
    mesh = fit.mesh
    assert mesh.n_points == m.n_vertices and mesh.n_cells == len(m.triangles)
    uv = np.asarray(mesh.active_texture_coordinates)
    assert uv.shape == (m.n_vertices, 2) and 0 <= uv.min() and uv.max() <= 1
    assert fit.mesh is mesh  # built once


# --------------------------------------------------------------------------- the fit


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_recovers_a_known_face_and_its_pose(seed):
    # exact landmarks of a face using all 100 identity modes: all of them fitted
    m = face_model()
    identity, expression, angles = _known_face(seed)
    rot = _rotation(*angles)
    t, focal, centre = np.r_[8.0, -5.0, 550.0], 1100.0, np.r_[480.0, 520.0]
    points = _project(m.landmarks(identity, expression), rot, t, focal, centre)
    fit = fit_face_model(points, focal_px=focal, principal_point=tuple(centre), identity_modes=100)
    assert fit.camera == "perspective"
    assert _angle_deg(fit.rotation, rot) < 3.0
    err = _similarity_error(fit.vertices_model().astype(float), m.vertices(identity, expression))
    assert np.median(err) < 1.5 and np.percentile(err, 90) < 3.0
    assert np.median(fit.residuals_px[:468]) < 1.5  # px, face ~230 px wide
    np.testing.assert_allclose(fit.landmarks_px, fit.project(fit.landmarks_model)[0])
    # the distance comes out right within 3 of the fit's own standard uncertainties of the
    # face's size (3.4 % here; measured 0.5, 1.0 and 8.0 % for the three faces)
    assert abs(fit.translation[2] / t[2] - 1) < 3 * fit.mm_per_px_uncertainty
    assert 0.02 < fit.mm_per_px_uncertainty < 0.06


@pytest.mark.parametrize("seed", [1, 2])
def test_default_fit_solves_the_first_identity_modes(seed):
    # by default only the first IDENTITY_MODES identity coefficients are fitted (the later
    # ones stay 0); a face within those modes is recovered better than by the full fit
    m = face_model()
    identity, expression, angles = _known_face(seed)
    identity[IDENTITY_MODES:] = 0.0
    rot, t, focal = _rotation(*angles), np.r_[8.0, -5.0, 550.0], 1100.0
    points = _project(m.landmarks(identity, expression), rot, t, focal, np.r_[480.0, 520.0])
    fit = fit_face_model(points, focal_px=focal, principal_point=(480.0, 520.0))
    full = fit_face_model(
        points, focal_px=focal, principal_point=(480.0, 520.0), identity_modes=100
    )
    assert 0 < IDENTITY_MODES < 100 and fit.identity.shape == (100,)
    assert not fit.identity[IDENTITY_MODES:].any() and fit.identity[:IDENTITY_MODES].any()
    assert fit.to_dict()["identity_modes"] == IDENTITY_MODES
    assert full.to_dict()["identity_modes"] == 100
    assert _angle_deg(fit.rotation, rot) < 3.0
    truth = m.vertices(identity, expression)
    err = _similarity_error(fit.vertices_model().astype(float), truth)
    assert np.median(err) < 1.5 and np.percentile(err, 90) < 3.0
    assert np.median(err) < np.median(_similarity_error(full.vertices_model().astype(float), truth))
    # a full random face is not within the first modes: the default fit misses part of it
    identity, expression, _ = _known_face(seed)
    points = _project(m.landmarks(identity, expression), rot, t, focal, np.r_[480.0, 520.0])
    fit = fit_face_model(points, focal_px=focal, principal_point=(480.0, 520.0))
    full = fit_face_model(
        points, focal_px=focal, principal_point=(480.0, 520.0), identity_modes=100
    )
    truth = m.vertices(identity, expression)
    assert np.median(_similarity_error(fit.vertices_model().astype(float), truth)) > np.median(
        _similarity_error(full.vertices_model().astype(float), truth)
    )


def test_the_fit_knows_the_pixel_size_at_the_eyes_and_the_model_depth_keeps_its_proportions():
    """A known face 400 mm from a 1000-px camera: ``eye_px_per_mm`` is the focal length
    over the outer eye corners' depth; the ``model`` backend's relief, with ``mm_per_px``
    true at the eyes, is the face's own (nose tip to outer eye corner), while the nose
    tip's pixel size (what ``hybrid`` blends) makes it deeper by Z_eyes / Z_nose."""
    from face3d_mesh.depth._model_depth import relief_gain

    model = face_model()
    identity, expression, _ = _known_face(4)
    rot, t = _rotation(0, 0, 0), np.array([0.0, 0.0, 400.0])
    truth = model.landmarks(identity, expression)
    cam = truth @ rot.T + t
    points = _project(truth, rot, t, 1000.0, np.array([500.0, 500.0]))
    fit = fit_face_model(points, focal_px=1000.0, principal_point=(500.0, 500.0))
    z_eyes = cam[[LEFT_EYE_OUTER, RIGHT_EYE_OUTER], 2].mean()
    fit_cam = fit.landmarks_model @ fit.rotation.T + fit.translation
    fit_eyes = fit_cam[[LEFT_EYE_OUTER, RIGHT_EYE_OUTER], 2].mean()
    assert fit.eye_px_per_mm == pytest.approx(1000.0 / fit_eyes, rel=1e-9)
    mm_per_px = z_eyes / 1000.0  # the true size of a pixel at the eyes
    true_relief = z_eyes - cam[NOSE_TIP, 2]
    fitted_relief = fit_eyes - fit_cam[NOSE_TIP, 2]
    at_eyes = fitted_relief * relief_gain(fit, mm_per_px, at="eyes")
    at_nose = fitted_relief * relief_gain(fit, mm_per_px, at="nose")
    assert at_eyes == pytest.approx(true_relief, rel=0.04)
    assert at_nose / at_eyes == pytest.approx(fit_eyes / fit_cam[NOSE_TIP, 2], rel=1e-6)
    assert at_nose > 1.04 * true_relief


def test_perspective_and_weak_perspective_agree_on_a_distant_face():
    m = face_model()
    identity, expression, angles = _known_face(4)
    rot, t, focal, centre = _rotation(*angles), np.r_[0.0, 0.0, 4000.0], 8000.0, np.r_[0.0, 0.0]
    points = _project(m.landmarks(identity, expression), rot, t, focal, centre)
    persp = fit_face_model(points, focal_px=focal, principal_point=(0.0, 0.0))
    weak = fit_face_model(points)
    assert weak.camera == "weak_perspective"
    assert _angle_deg(persp.rotation, weak.rotation) < 0.5
    diff = np.linalg.norm(persp.vertices_model() - weak.vertices_model(), axis=1)
    assert np.median(diff) < 0.3
    assert abs(persp.scale_px_per_mm / weak.scale_px_per_mm - 1) < 0.01
    assert abs(persp.face_width_mm - weak.face_width_mm) < 0.5


def test_fit_is_deterministic_and_rejects_bad_input():
    m = face_model()
    identity, expression, angles = _known_face(5)
    points = _project(m.landmarks(identity, expression), _rotation(*angles),
                      np.r_[0, 0, 500.0], 900.0, np.r_[400.0, 400.0])  # fmt: skip
    a, b = fit_face_model(points), fit_face_model(points.copy())
    np.testing.assert_array_equal(a.identity, b.identity)
    np.testing.assert_array_equal(a.expression, b.expression)
    np.testing.assert_array_equal(a.rotation, b.rotation)
    assert ((a.expression >= 0) & (a.expression <= 1)).all()
    with pytest.raises(ValueError, match="478"):
        fit_face_model(points[:468])
    bad = points.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_face_model(bad)
    for modes in (-1, 101):
        with pytest.raises(ValueError, match="identity_modes must be 0-100"):
            fit_face_model(points, identity_modes=modes)


def test_face_width_and_its_uncertainty_are_plausible():
    m = face_model()
    identity, expression, angles = _known_face(6)
    truth = m.landmarks(identity, expression)
    rot, t = _rotation(*angles), np.r_[0, 0, 600.0]
    points = _project(truth, rot, t, 1000.0, np.r_[0.0, 0.0])
    fit = fit_face_model(points)
    true_width = np.linalg.norm(truth[LEFT_EYE_OUTER] - truth[RIGHT_EYE_OUTER])
    assert 1.0 < fit.face_width_sd_mm < 6.0
    assert abs(fit.face_width_mm - true_width) < 3 * fit.face_width_sd_mm
    # the metric scale it implies: at the nose tip, depth / focal length mm per pixel
    nose_depth = (truth[NOSE_TIP] @ rot.T + t)[2]
    assert abs(fit.mm_per_px / (nose_depth / 1000.0) - 1) < 3 * fit.mm_per_px_uncertainty
    assert fit.mm_per_px_uncertainty == pytest.approx(fit.face_width_sd_mm / fit.face_width_mm)


# --------------------------------------------------------------------------- in the pipeline


@pytest.fixture(scope="module")
def model_rec(head_scan_path):
    return face3d_mesh.reconstruct(head_scan_path, depth="model", fill_holes=False)


def test_model_depth_follows_the_depth_conventions(model_rec):
    rec = model_rec
    assert rec.depth_info["backend"] == "model"
    inside = rec.depth_mm[rec.mask]
    assert np.isfinite(inside).all()  # no holes inside the mask, even unfilled
    assert np.isnan(rec.depth_mm[~rec.mask]).all()
    assert rec.landmarks[NOSE_TIP, 2] == 0
    u, v = np.rint(rec.nose_px).astype(int)
    assert abs(rec.depth_mm[v, u]) < 3
    assert 40 < np.percentile(inside, 99) < 130  # a face is 40-130 mm deep
    assert rec.landmarks[10, 2] > 4 and rec.landmarks[152, 2] > 10


def test_reconstruction_exposes_the_model_fit(model_rec):
    fit = model_rec.model_fit
    assert fit.identity.shape == (100,) and fit.expression.shape == (53,)
    assert fit.residuals_px.shape == (478,)
    assert np.median(fit.residuals_px[:468]) < 0.02 * model_rec.image.shape[1]
    assert 80 < fit.face_width_mm < 105 and fit.face_width_sd_mm > 0
    summary = fit.to_dict()
    assert summary["camera"] in ("perspective", "weak_perspective")
    assert set(model_rec.timings) >= {"landmarks", "model_fit", "depth"}


def test_hybrid_is_the_offline_default_and_has_no_holes(head_scan_path, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    rec = face3d_mesh.reconstruct(head_scan_path, fill_holes=False)
    assert rec.depth_info["backend"] == "hybrid"
    assert np.isfinite(rec.depth_mm[rec.mask]).all()
    assert rec.landmarks[NOSE_TIP, 2] == 0


def test_model_depth_is_deterministic(head_scan_path, model_rec):
    again = face3d_mesh.reconstruct(head_scan_path, depth="model", fill_holes=False)
    np.testing.assert_array_equal(again.depth_mm, model_rec.depth_mm)


# --------------------------------------------------------------------------- fusion


def _bumps(shape, mask, amplitude_mm, seed):
    """A smooth random relief: Gaussian bumps of +-amplitude inside the mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(mask)
    size = math.sqrt(mask.sum())
    v, u = np.mgrid[: shape[0], : shape[1]].astype(float)
    out = np.zeros(shape)
    for _ in range(40):
        k = rng.integers(len(rows))
        sigma = rng.uniform(0.02, 0.04) * size  # finer than the fusion's correction
        out += (
            rng.choice([-1, 1])
            * amplitude_mm
            * np.exp(-((u - cols[k]) ** 2 + (v - rows[k]) ** 2) / (2 * sigma**2))
        )
    return out


def test_fusion_with_a_network_improves_on_the_model_prior(head_scan_path):
    """A synthetic network that sees the true face (the prior plus detail the prior lacks,
    as relative inverse depth with unknown scale and shift, plus noise): the fused depth
    is much closer to the truth than the prior alone."""
    from face3d_mesh.align import align_face
    from face3d_mesh.depth._backends import OFFLINE_DEFAULT, estimate_depth
    from face3d_mesh.image import load_image
    from face3d_mesh.landmarks import detect_faces
    from face3d_mesh.mask import face_mask
    from face3d_mesh.scale import estimate_scale

    image = load_image(head_scan_path)
    face = detect_faces(image)[0]
    fit = fit_face_model(face.points)
    aligned = align_face(image, face, size_px=384)
    mask = face_mask(aligned.landmarks.points, aligned.image.shape[:2])
    mm = estimate_scale(face.points).mm_per_px / aligned.scale
    centre = ((aligned.image.shape[1] - 1) / 2, (aligned.image.shape[0] - 1) / 2)
    common = dict(mm_per_px=mm, focal_px=2000.0, principal_point=centre, model_fit=fit)
    config = face3d_mesh.ReconstructionConfig()
    prior, prior_info, _ = estimate_depth(
        aligned, mask, config=config.replace(depth=OFFLINE_DEFAULT), **common
    )
    truth = prior + _bumps(prior.shape, mask, 3.0, seed=1)
    rng = np.random.default_rng(2)
    network = 7.0 * 1000.0 / (truth + 450.0) + 0.3 + rng.normal(0, 0.0005, truth.shape)
    network[~mask] = rng.uniform(0, 20, (~mask).sum())  # background: anything
    fused, info, _ = estimate_depth(
        aligned, mask, config=config.replace(depth="fused"), relative=network, **common
    )
    assert info["backend"] == "fused" and info["prior"] == OFFLINE_DEFAULT
    inside = mask & np.isfinite(fused)
    assert inside.sum() > 0.99 * mask.sum()

    def error(depth):  # RMS about the mean offset, mm
        d = (depth - truth)[inside]
        return float(np.sqrt(np.mean((d - d.mean()) ** 2)))

    assert error(prior) > 0.5
    assert error(fused) < 0.4 * error(prior)
    # ... and a network that adds nothing (its output is the prior) leaves the prior as it is
    flat, _, _ = estimate_depth(
        aligned, mask, config=config.replace(depth="fused"),
        relative=7.0 * 1000.0 / (prior + 450.0), **common,
    )  # fmt: skip
    assert np.nanmedian(np.abs(flat - prior)[inside]) < 0.1


def test_hybrid_blend_takes_the_tilt_it_is_told_to():
    from face3d_mesh.depth._model_depth import blend_depths

    rows, cols = np.mgrid[:120, :100].astype(np.float32)
    mask = (rows - 60) ** 2 / 50**2 + (cols - 50) ** 2 / 40**2 < 1
    bump = 20 * np.exp(-((rows - 60) ** 2 + (cols - 50) ** 2) / 600)  # a nose, mm
    landmark = -bump + 0.05 * rows  # tilted one way
    model = -1.1 * bump - 0.10 * rows + 3.0  # the other way, deeper, offset
    mean_tilt, *_ = blend_depths(model, landmark, mask)
    own_tilt, *_ = blend_depths(model, landmark, mask, tilt_from_landmarks=True)

    def tilt(depth):  # d depth / d row over the mask, after removing the bump's fit
        design = np.column_stack([bump[mask], rows[mask], np.ones(mask.sum())])
        return np.linalg.lstsq(design, depth[mask], rcond=None)[0][1]

    assert abs(tilt(mean_tilt) - 0.5 * (0.05 * 1.0 + (-0.10))) < 0.02  # the mean of the two
    assert abs(tilt(own_tilt) - tilt(blend_depths(landmark, landmark, mask)[0])) < 0.01
    assert np.isnan(own_tilt[~mask]).all() and np.isfinite(own_tilt[mask]).all()


@needs_scan
@pytest.mark.parametrize("yaw, pitch", [(0, 0), (20, -8)])
def test_a_close_up_is_fitted_as_if_seen_from_three_face_sizes(monkeypatch, yaw, pitch):
    """A 26 mm-equivalent close-up (the nose ~15 cm from the lens), focal length known: the
    fit assumes a camera no nearer than 3 face sizes (MediaPipe's landmarks of a close-up
    look seen from farther: the model explains them better so), and the 3D face is no
    worse for it (over many close-ups it is better: the NoW-like error of 29 26 mm renders
    of the scan in bench_fidelity, 1.21 mm with the photo's focal length, 1.09 so; on a
    frontal one, as here, about even since the fit uses 15 identity modes); the mesh keeps
    the photo's camera."""
    from face3d_mesh import pipeline

    image, depth, fx = render_scan(lens_mm=26, yaw=yaw, pitch=pitch)
    rec = face3d_mesh.reconstruct(image, depth="hybrid", focal_length_px=fx)
    size = face3d_mesh.detect_faces(image)[0].size_px
    assert rec.model_fit.focal_px == pytest.approx(3 * size, rel=0.02)
    assert rec.model_fit.focal_px > 2 * fx
    assert rec.camera["focal_px"] == pytest.approx(fx)
    clamped = now_like_error_mm(rec, depth, fx)

    monkeypatch.setattr(pipeline, "_fit_focal_px", lambda focal_px, face: focal_px)
    photo_focal = face3d_mesh.reconstruct(image, depth="hybrid", focal_length_px=fx)
    assert photo_focal.model_fit.focal_px == pytest.approx(fx)
    unclamped = now_like_error_mm(photo_focal, depth, fx)

    def rms(fit):
        return float(np.sqrt(np.mean(fit.residuals_px[:468] ** 2)))

    print(
        f"NoW-like: photo's focal {unclamped:.3f} mm, 3 face sizes {clamped:.3f} mm; "
        f"rms residual {rms(photo_focal.model_fit):.2f}, {rms(rec.model_fit):.2f} px"
    )
    assert rms(rec.model_fit) < rms(photo_focal.model_fit) - 0.3  # measured 0.6 px less
    assert clamped < unclamped + 0.03


@needs_scan
@pytest.mark.parametrize("lens_mm, yaw, pitch", [(35, 30, 0), (50, -30, 8)])
def test_without_camera_metadata_a_turned_head_is_fitted_in_perspective(
    monkeypatch, lens_mm, yaw, pitch
):
    """No focal length given (a photo without EXIF): the fit uses the guessed camera, not
    weak perspective, which reads a turned head's perspective as more yaw (30° fitted as
    33-43° on renders of the scan) and leaves a worse 3D face."""
    from face3d_mesh import pipeline

    image, depth, fx = render_scan(lens_mm=lens_mm, yaw=yaw, pitch=pitch)
    rec = face3d_mesh.reconstruct(image, depth="hybrid")
    assert rec.camera["focal_source"] == "default"
    assert rec.model_fit.camera == "perspective"
    assert rec.model_fit.focal_px == pytest.approx(rec.camera["focal_px"])
    perspective_yaw = rec.model_fit.yaw_pitch_roll_deg[0]
    perspective_now = now_like_error_mm(rec, depth, fx)

    monkeypatch.setattr(pipeline, "_fit_focal_px", lambda focal_px, face: None)
    weak = face3d_mesh.reconstruct(image, depth="hybrid")
    assert weak.model_fit.camera == "weak_perspective"
    weak_yaw = weak.model_fit.yaw_pitch_roll_deg[0]
    weak_now = now_like_error_mm(weak, depth, fx)
    print(f"yaw {yaw}: fitted {perspective_yaw:.1f} (weak perspective {weak_yaw:.1f}); "
          f"NoW-like {perspective_now:.3f} mm (weak perspective {weak_now:.3f})")  # fmt: skip
    assert abs(perspective_yaw - yaw) < 4.5
    assert abs(weak_yaw - yaw) > abs(perspective_yaw - yaw) + 3
    assert perspective_now < weak_now - 0.1


@needs_scan
def test_without_camera_metadata_a_crop_keeps_the_head_pose():
    """No focal length: the optical axis is assumed through the face, not the photo's
    centre (a crop's centre is not the axis), so an off-centre crop of a photo is fitted
    with the pose of the whole photo; through the crop's centre it would turn by ~4.5°."""
    image, _, _ = render_scan(lens_mm=50, yaw=20, pitch=-5)
    full = face3d_mesh.reconstruct(image)
    crop = face3d_mesh.reconstruct(np.ascontiguousarray(image[:600, :600]))  # same pixels
    for rec in (full, crop):
        assert rec.camera["focal_source"] == "default"
    # the two photos' centres are 84 px (4.5° at this focal length) apart; the axes are not
    axis_full, axis_crop = (np.asarray(r.camera["principal_point_px"]) for r in (full, crop))
    assert np.linalg.norm(axis_full - axis_crop) < 0.25 * 84
    angles = np.subtract(full.model_fit.yaw_pitch_roll_deg, crop.model_fit.yaw_pitch_roll_deg)
    print(f"yaw, pitch, roll differences: {np.round(angles, 2)} degrees")
    assert np.abs(angles).max() < 1.5
    assert abs(full.model_fit.yaw_pitch_roll_deg[0] - 20) < 4

"""The landmark-mesh depth rasteriser (offline ``landmarks`` depth backend).

Real MediaPipe landmarks on the sample photos: coverage of the face mask, no overshoot,
the nose nearest, no spikes, speed; the mirror pairing of the landmarks; and, when the
fidelity set (``../shared/fidelity``) is present, shape error against exact depth.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from face3d_mesh.depth._landmark_depth import (
    MIRROR_PAIRS,
    mirror_permutation,
    rasterize_landmark_depth,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"
SAMPLE_NAMES = ("astronaut.png", "lps_head_scan_studio.png")


def _fidelity_dir() -> Path | None:
    candidates = [os.environ.get("FACE3D_FIDELITY_DIR", "")]
    candidates += [ROOT.parent / "shared" / "fidelity", ROOT.parent.parent / "shared" / "fidelity"]
    for c in candidates:
        if c and (Path(c) / "README.md").is_file():
            return Path(c)
    return None


@pytest.fixture(scope="module", params=SAMPLE_NAMES)
def sample(request):
    from face3d_mesh.image import load_image
    from face3d_mesh.landmarks import detect_faces

    image = load_image(SAMPLES / request.param)
    face = detect_faces(image)[0]
    return request.param, image.shape[:2], face


def test_output_type_and_shape(sample):
    _, shape, face = sample
    depth = rasterize_landmark_depth(face.points, shape)
    assert depth.shape == shape and depth.dtype == np.float32
    assert np.isfinite(depth).any() and np.isnan(depth).any()


def test_covers_the_face_mask(sample):
    from face3d_mesh.mask import face_mask

    _, shape, face = sample
    mask = face_mask(face.points, shape)
    for kwargs in ({}, {"perspective": False, "symmetric": False, "smooth": False}):
        depth = rasterize_landmark_depth(face.points, shape, **kwargs)
        assert np.isfinite(depth[mask]).mean() >= 0.99, kwargs


def test_no_overshoot_beyond_the_landmarks(sample):
    _, shape, face = sample
    z = face.points[:468, 2]
    span = z.max() - z.min()
    # The ray-curvature, perspective and symmetry corrections move landmark depths by a few %
    # of the span; the curved patches themselves never leave their corners' depth range.
    depth = rasterize_landmark_depth(face.points, shape)
    assert np.nanmax(depth) <= z.max() + 0.05 * span
    assert np.nanmin(depth) >= z.min() - 0.05 * span
    raw = rasterize_landmark_depth(
        face.points, shape, perspective=False, symmetric=False, ray_curvature=False
    )
    assert np.nanmax(raw) <= z.max() + 1e-3 * span
    assert np.nanmin(raw) >= z.min() - 1e-3 * span


def test_nose_tip_is_nearest(sample):
    from face3d_mesh.landmarks import NOSE_TIP

    _, shape, face = sample
    # The camera of a sample is unknown and astronaut.png is a crop of a larger portrait (its
    # centre is not the principal point): take the face as centred on the optical axis, so
    # that a wrong guess of the viewing direction does not tilt the face.
    centre = face.points[:468, :2].mean(axis=0)
    depth = rasterize_landmark_depth(face.points, shape, principal_point=tuple(centre))
    row, col = np.unravel_index(np.nanargmin(depth), depth.shape)
    nose = face.points[NOSE_TIP]
    assert np.hypot(col - nose[0], row - nose[1]) <= 0.1 * face.size_px
    # and the nose tip's neighbourhood is in the nearest few percent of the face
    r, c = int(round(nose[1])), int(round(nose[0]))
    assert depth[r, c] <= np.nanpercentile(depth, 3)


def test_smooth_no_spikes_no_seams(sample):
    """No isolated spikes (a 3×3 median would remove them; depth steps at occluding
    edges survive it), and second differences bounded like the piecewise-linear
    surface's."""
    import cv2

    from face3d_mesh.mask import face_mask

    _, shape, face = sample
    inner = face_mask(face.points, shape, erode_px=0.05 * face.size_px)
    depth = rasterize_landmark_depth(face.points, shape)
    flat = rasterize_landmark_depth(face.points, shape, smooth=False)

    def spikes(d):
        med = cv2.medianBlur(np.nan_to_num(d).astype(np.float32), 3)
        return np.abs(d - med)[inner]

    def second_diff(d):
        dx = np.abs(d[:, 2:] - 2 * d[:, 1:-1] + d[:, :-2])[inner[:, 1:-1]]
        dy = np.abs(d[2:] - 2 * d[1:-1] + d[:-2])[inner[1:-1]]
        return np.concatenate([dx, dy])

    assert spikes(depth).max() <= max(1.5 * spikes(flat).max(), 0.01 * face.size_px)
    assert spikes(depth).max() <= 0.02 * face.size_px
    assert np.percentile(second_diff(depth), 99.9) <= 1.2 * np.percentile(second_diff(flat), 99.9)


def test_fast_enough_on_a_512_crop(sample):
    _, _, face = sample
    pts = face.points.copy()
    lo, hi = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
    scale = 512 / (1.1 * (hi - lo).max())  # face filling the crop: the slowest case
    pts[:, :2] = (pts[:, :2] - (lo + hi) / 2) * scale + 255.5
    pts[:, 2] *= scale
    rasterize_landmark_depth(pts, (512, 512))
    best = min(_timed(lambda: rasterize_landmark_depth(pts, (512, 512))) for _ in range(10))
    assert best <= 0.040


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_mirror_pairs():
    from mediapipe.python.solutions import face_mesh_connections as fmc

    perm = mirror_permutation()
    assert len(MIRROR_PAIRS) == 220
    assert np.array_equal(perm[perm], np.arange(468))
    assert (perm == np.arange(468)).sum() == 28  # the midline

    def indices(connections):
        return sorted({i for edge in connections for i in edge})

    assert sorted(perm[indices(fmc.FACEMESH_LEFT_EYE)]) == indices(fmc.FACEMESH_RIGHT_EYE)
    assert sorted(perm[indices(fmc.FACEMESH_LEFT_EYEBROW)]) == indices(fmc.FACEMESH_RIGHT_EYEBROW)
    assert sorted(perm[indices(fmc.FACEMESH_LIPS)]) == indices(fmc.FACEMESH_LIPS)
    assert sorted(perm[indices(fmc.FACEMESH_FACE_OVAL)]) == indices(fmc.FACEMESH_FACE_OVAL)
    edges = {frozenset(e) for e in fmc.FACEMESH_TESSELATION}
    kept = sum(frozenset((perm[a], perm[b])) in edges for a, b in edges)
    assert kept >= 0.99 * len(edges)  # a few quads are split the other way on one side


def test_symmetric_input_is_a_fixed_point():
    """Symmetrising a left/right-symmetric face (any pose) changes nothing."""
    rng = np.random.default_rng(0)
    perm = mirror_permutation()
    base = rng.normal(size=(468, 3)) * [60, 80, 20]
    base = 0.5 * (base + base[perm] * [-1, 1, 1])  # symmetric about x = 0
    yaw = np.radians(20)
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    pts = np.zeros((478, 3))
    pts[:468] = base @ rot.T + [256, 256, 0]
    pts[468:] = pts[:10]
    from face3d_mesh.depth._landmark_depth import _symmetrized

    assert np.allclose(_symmetrized(pts)[:468], pts[:468], atol=1e-6)


# (case, achieved shape error in mm with the camera's focal length) — see the report of the
# `fidelity` and `fidelity2` branches; the margin absorbs MediaPipe version noise. The
# forward-tilt correction (MEDIAPIPE_PITCH_BIAS_DEG) took the frontal case from 3.59 to
# 1.58 mm and the head turned by 30° from 1.72 to 2.03 (the tilt is smaller there).
FIDELITY_CASES = (
    ("lps_f50_y+00_p+00_r+00_studio", 1.58),
    ("lps_f26_y-15_p+00_r+00_window", 2.09),
    ("lps_f50_y+30_p+00_r+00_studio", 2.03),
)
FIDELITY_MARGIN_MM = 0.3


@pytest.mark.skipif(_fidelity_dir() is None, reason="fidelity set (../shared/fidelity) absent")
@pytest.mark.parametrize("case, achieved", FIDELITY_CASES)
def test_fidelity_shape_error(case, achieved):
    from face3d_mesh.image import load_image
    from face3d_mesh.landmarks import detect_faces
    from face3d_mesh.mask import face_mask
    from face3d_mesh.scale import estimate_scale

    folder = _fidelity_dir()
    image = load_image(folder / f"{case}.png")
    gt = np.load(folder / f"{case}_depth.npz")["depth"]
    meta = json.loads((folder / f"{case}.json").read_text())
    face = detect_faces(image)[0]
    region = face_mask(face.points, gt.shape) & np.isfinite(gt)
    mm_per_px = estimate_scale(face.points).mm_per_px

    def shape_error(pred):
        ok = region & np.isfinite(pred)
        assert ok.sum() >= 0.95 * region.sum()
        p, g = pred[ok].astype(np.float64), gt[ok].astype(np.float64)
        design = np.column_stack([p, np.ones_like(p)])
        s, t = np.linalg.lstsq(design, g, rcond=None)[0]
        return float(np.median(np.abs(g - (s * p + t))))

    focal = meta["intrinsics"]["fx"]
    new = shape_error(rasterize_landmark_depth(face.points, gt.shape, focal_px=focal) * mm_per_px)
    old = shape_error(
        rasterize_landmark_depth(
            face.points,
            gt.shape,
            perspective=False,
            symmetric=False,
            smooth=False,
            ray_curvature=False,
        )
        * mm_per_px
    )
    assert new <= achieved + FIDELITY_MARGIN_MM
    assert new < old


def test_forward_tilt_is_turned_back_chin_forward(monkeypatch, astronaut_rgb):
    import face3d_mesh.depth._landmark_depth as ld
    from face3d_mesh.landmarks import detect_faces

    pts = detect_faces(astronaut_rgb)[0].points
    kwargs = dict(perspective=False, symmetric=False, ray_curvature=True)
    corrected = ld.corrected_landmarks(pts, (512, 512), **kwargs)
    monkeypatch.setattr(ld, "MEDIAPIPE_PITCH_BIAS_DEG", 0.0)
    untilted = ld.corrected_landmarks(pts, (512, 512), **kwargs)
    change = corrected[:, 2] - untilted[:, 2]
    down = pts[152, :2] - pts[10, :2]  # forehead top -> chin, in the image
    along = (pts[:, :2] - pts[:468, :2].mean(axis=0)) @ (down / np.linalg.norm(down))
    # Depth (larger = farther) shrinks toward the chin, grows toward the forehead: 4°.
    slope = np.polyfit(along, change, 1)[0]
    assert np.isclose(slope, -np.tan(np.radians(4.0)), rtol=1e-6)
    assert change[152] < 0 < change[10]


def _tilt_error(points: np.ndarray, depth: np.ndarray, focal: float) -> np.ndarray:
    """The (horizontal, vertical) slope of the truth's depth (in pixel units) left after the
    landmarks' depths, per pixel across the face: the tilt the landmarks get wrong."""
    import cv2

    p = points[:468]
    truth = cv2.remap(depth, *p[:, :2].astype(np.float32).T[:, :, None], cv2.INTER_LINEAR)[:, 0]
    ok = np.isfinite(truth)
    centre = np.median(truth[ok])
    truth_px = (truth[ok] - centre) * focal / centre
    xy = p[ok, :2] - p[ok, :2].mean(axis=0)
    design = np.column_stack([p[ok, 2], xy, np.ones(ok.sum())])
    return np.linalg.lstsq(design, truth_px, rcond=None)[0][1:3]


@pytest.mark.skipif(
    not (ROOT.parent / "shared" / "fidelity" / "scan").is_dir(), reason="head scan absent"
)
@pytest.mark.parametrize("offset", [(0.15, 0.0), (-0.15, 0.0), (0.0, 0.2)])
def test_a_face_seen_off_axis_is_turned_from_the_viewing_ray_to_the_optical_axis(offset):
    """A frontal head moved across a 26 mm frame (not turned): MediaPipe's depths come
    tilted by most of the viewing angle (they are relative to the ray to the face: 0.74-1.0
    of the angle here); correction 1 takes them to the optical axis's frame, leaving 0.25-0.45
    of that tilt here (MediaPipe's depths follow the ray's frame at ~0.8-0.85 of the angle,
    15 renders at ±0.2-0.4 rad both ways: the correction's full angle is a little too much).
    """
    from scan_renders import _renderer, render_scan_at

    from face3d_mesh.depth._landmark_depth import corrected_landmarks
    from face3d_mesh.landmarks import detect_faces

    render = _renderer()[0]
    rot, pivot = render.rotation(0.0, 0.0, 0.0), render.PIVOT_MODEL_MM
    focal = 26 / 36 * 768
    distance = 0.6 * focal
    t = np.array([offset[0] * distance, offset[1] * distance, distance]) - rot @ pivot
    image, depth, fx = render_scan_at(rot, t, lens_mm=26)
    points = detect_faces(image)[0].points
    centre = tuple(points[:468, :2].mean(axis=0))
    axis = ((768 - 1) / 2, (768 - 1) / 2)
    on_ray = corrected_landmarks(points, image.shape[:2], focal_px=fx, principal_point=centre)
    on_axis = corrected_landmarks(points, image.shape[:2], focal_px=fx, principal_point=axis)
    angle = (np.array(centre) - axis) / fx
    before, after = _tilt_error(on_ray, depth, fx), _tilt_error(on_axis, depth, fx)
    i = 0 if offset[0] else 1  # the direction of the offset
    print(f"angle {angle[i]:+.3f}: tilt error {before[i]:+.3f} -> {after[i]:+.3f}")
    assert abs(before[i]) > 0.5 * abs(angle[i])
    assert abs(after[i]) < 0.6 * abs(before[i])

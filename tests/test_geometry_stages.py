"""Alignment, mask and metric scale on real landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from face3d_mesh.align import align_face, extend_nearest, warp_to_image, warp_window
from face3d_mesh.landmarks import FACE_OVAL, detect_faces
from face3d_mesh.mask import face_alpha, face_mask
from face3d_mesh.scale import BIOCULAR_WIDTH_MM, IRIS_DIAMETER_MM, estimate_scale


@pytest.fixture(scope="module")
def astronaut_face(astronaut_rgb):
    return detect_faces(astronaut_rgb)[0]


def test_aligned_crop_is_upright_and_sized(astronaut_rgb, astronaut_face):
    rotation = cv2.getRotationMatrix2D((256, 256), 25, 1.0)
    rotated = cv2.warpAffine(astronaut_rgb, rotation, (512, 512), borderMode=cv2.BORDER_REFLECT)
    face = detect_faces(rotated)[0]
    aligned = align_face(rotated, face, size_px=400)
    assert max(aligned.image.shape[:2]) == 400
    assert abs(aligned.landmarks.roll_deg) < 0.5
    assert aligned.roll_deg == pytest.approx(face.roll_deg)
    # Landmarks in the crop are the photo's landmarks mapped by the matrix.
    mapped = face.points[:, :2] @ aligned.matrix[:, :2].T + aligned.matrix[:, 2]
    np.testing.assert_allclose(aligned.landmarks.points[:, :2], mapped)
    oval = aligned.landmarks.points[list(FACE_OVAL), :2]
    h, w = aligned.image.shape[:2]
    assert oval[:, 0].min() > 0 and oval[:, 0].max() < w
    assert oval[:, 1].min() > 0 and oval[:, 1].max() < h


def test_warp_back_reproduces_a_known_field(astronaut_rgb, astronaut_face):
    aligned = align_face(astronaut_rgb, astronaut_face, size_px=512)
    h, w = aligned.image.shape[:2]
    inverse = cv2.invertAffineTransform(aligned.matrix)
    vc, uc = np.mgrid[0:h, 0:w].astype(np.float64)
    # A field defined on the photo (u + 2v), sampled on the crop grid, must come back.
    u = inverse[0, 0] * uc + inverse[0, 1] * vc + inverse[0, 2]
    v = inverse[1, 0] * uc + inverse[1, 1] * vc + inverse[1, 2]
    back = warp_to_image((u + 2 * v).astype(np.float32), aligned, astronaut_rgb.shape[:2])
    mask = face_mask(astronaut_face.points, astronaut_rgb.shape[:2])
    vv, uu = np.nonzero(mask)
    np.testing.assert_allclose(back[vv, uu], uu + 2 * vv, atol=0.05)


def test_warp_window_is_the_warp_on_the_crops_footprint(astronaut_rgb, astronaut_face):
    """The window holds all that warp_to_image puts on the photo (NaN elsewhere); a crop
    whose footprint misses the photo gives None."""
    import dataclasses

    aligned = align_face(astronaut_rgb, astronaut_face, size_px=256)
    values = np.random.default_rng(5).normal(size=aligned.image.shape[:2]).astype(np.float32)
    values[:40] = np.nan
    shape = astronaut_rgb.shape[:2]
    full = warp_to_image(values, aligned, shape)
    rows, cols, block = warp_window(values, aligned, shape)
    assert block.dtype == np.float32 and block.shape == full[rows, cols].shape
    np.testing.assert_array_equal(block, full[rows, cols])
    outside = np.ones(shape, bool)
    outside[rows, cols] = False
    assert outside.any() and np.isnan(full[outside]).all()
    away = aligned.matrix.copy()
    away[:, 2] -= 10 * np.asarray(shape[::-1], float)  # the crop far beyond the photo
    moved = dataclasses.replace(aligned, matrix=away)
    assert warp_window(values, moved, shape) is None
    assert np.isnan(warp_to_image(values, moved, shape)).all()


def test_a_crop_finer_than_the_photo_does_not_alias_into_it(astronaut_rgb, astronaut_face):
    """The astronaut's 512-px crop holds ~3.6 crop pixels per photo pixel. A crop-pixel
    checkerboard (±0.5 mm, the kind of detail a z-buffer's facets leave) on a smooth field:
    sampled bilinearly it came back as ripples of up to its full size; smoothed first, it
    averages away, and the smooth field comes back as before."""
    aligned = align_face(astronaut_rgb, astronaut_face, size_px=512)
    assert aligned.scale > 3
    h, w = aligned.image.shape[:2]
    inverse = cv2.invertAffineTransform(aligned.matrix)
    vc, uc = np.mgrid[0:h, 0:w].astype(np.float64)
    u = inverse[0, 0] * uc + inverse[0, 1] * vc + inverse[0, 2]
    v = inverse[1, 0] * uc + inverse[1, 1] * vc + inverse[1, 2]
    smooth = 0.3 * u + 0.02 * (v - v.mean()) ** 2 / 10  # mm: a slope and a gentle bend
    checker = 0.5 * np.where((uc + vc) % 2 == 0, 1.0, -1.0)
    shape = astronaut_rgb.shape[:2]
    mask = face_mask(astronaut_face.points, shape)
    plain = warp_to_image(smooth.astype(np.float32), aligned, shape)[mask]
    rippled = warp_to_image((smooth + checker).astype(np.float32), aligned, shape)[mask]
    vv, uu = np.nonzero(mask)
    truth = 0.3 * uu + 0.02 * (vv - v.mean()) ** 2 / 10
    assert np.percentile(np.abs(rippled - plain), 99) < 0.02
    assert np.percentile(np.abs(plain - truth), 99) < 0.05


def test_extend_nearest_copies_a_nearby_finite_value():
    rng = np.random.default_rng(3)
    values = np.full((120, 90), np.nan)
    rows, cols = rng.integers(0, 120, 40), rng.integers(0, 90, 40)
    values[rows, cols] = rng.normal(size=40)
    values[60:70, 20:30] = 5.0  # a block, and holes beside it
    out = extend_nearest(values)
    finite = np.isfinite(values)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out[finite], values[finite].astype(np.float32))
    # Every filled pixel holds the value of a finite pixel at most ~1 px farther than the
    # nearest one (OpenCV's 5×5-mask distance is within 2 % of the Euclidean one).
    src_r, src_c = np.nonzero(finite)
    yy, xx = np.nonzero(~finite)
    dist = np.hypot(yy[:, None] - src_r[None], xx[:, None] - src_c[None])
    same = np.isclose(values[src_r, src_c][None].astype(np.float32), out[yy, xx][:, None])
    chosen = np.where(same, dist, np.inf).min(axis=1)
    assert np.all(chosen <= dist.min(axis=1) * 1.03 + 1.0)
    with pytest.raises(ValueError):
        extend_nearest(np.full((4, 4), np.nan))


def test_mask_is_the_oval_polygon(astronaut_rgb, astronaut_face):
    mask = face_mask(astronaut_face.points, astronaut_rgb.shape[:2])
    oval = astronaut_face.points[list(FACE_OVAL), :2].astype(np.float32)
    area = cv2.contourArea(oval)
    assert mask.dtype == bool
    assert mask.sum() == pytest.approx(area, rel=0.03)
    cx, cy = oval.mean(axis=0)
    assert mask[int(cy), int(cx)] and not mask[0, 0]
    eroded = face_mask(astronaut_face.points, astronaut_rgb.shape[:2], erode_px=5)
    assert eroded.sum() < mask.sum() and not (eroded & ~mask).any()
    alpha = face_alpha(mask, feather_px=4)
    assert alpha.max() == 1.0 and alpha[~mask].max() == 0 and 0 < alpha[mask].min() < 1


def _mask_reference(points, shape, grow, erode):
    """face_mask's rule on the whole photo: the oval filled at 1/16 px, then the distance
    transforms."""
    mask = np.zeros(shape, np.uint8)
    pts = np.rint(points[list(FACE_OVAL)] * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    if grow:
        mask = (cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5) <= grow).astype(np.uint8)
    if erode:
        mask = (cv2.distanceTransform(mask, cv2.DIST_L2, 5) > erode).astype(np.uint8)
    return mask.astype(bool)


def test_mask_is_the_same_wherever_the_face_lies_in_the_photo(astronaut_rgb, astronaut_face):
    # face_mask works in a window round the oval; the mask must be the one the whole photo
    # gives, with the face in a big photo, cut by the photo's edges, or outside it.
    points = astronaut_face.points[:, :2]
    h, w = astronaut_rgb.shape[:2]
    low, high = points[list(FACE_OVAL)].min(axis=0), points[list(FACE_OVAL)].max(axis=0)
    placements = [
        ((0, 0), (h, w)),
        ((900, 700), (2200, 2500)),  # a small face in a big photo
        (tuple(-(low + 30)), (h, w)),  # cut by the top-left corner
        ((0, 0), (int(high[1]) - 25, int(high[0]) - 20)),  # cut on the right and bottom
        ((-5000, 0), (h, w)),  # outside the photo
    ]
    for shift, shape in placements:
        moved = points + shift
        for grow, erode in ((0.0, 0.0), (12.5, 0.0), (7.0, 3.0), (0.0, 4.5)):
            got = face_mask(moved, shape, grow_px=grow, erode_px=erode)
            want = _mask_reference(moved, shape, grow, erode)
            assert got.shape == shape
            np.testing.assert_array_equal(got, want, err_msg=f"{shift} {shape} {grow} {erode}")


def test_iris_scale_on_open_eyes(astronaut_face):
    scale = estimate_scale(astronaut_face.points)
    assert scale.source == "iris+biocular_width_prior"
    # A human face: outer eye corners 70-110 mm apart at this scale.
    corners = np.linalg.norm(astronaut_face.points[263] - astronaut_face.points[33])
    assert 70 < corners * scale.mm_per_px < 110
    assert 0.03 < scale.uncertainty < 0.15
    assert "iris" in scale.describe()


def test_scale_follows_image_resolution(astronaut_rgb, astronaut_face):
    big = cv2.resize(astronaut_rgb, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    face = detect_faces(big)[0]
    ratio = estimate_scale(astronaut_face.points).mm_per_px / estimate_scale(face.points).mm_per_px
    assert ratio == pytest.approx(2.0, rel=0.08)


def test_closed_eyes_fall_back_to_the_prior(head_scan_rec, astronaut_face):
    assert head_scan_rec.scale.source == "biocular_width_prior"
    # Closing the astronaut's eyes (lids together) must also switch to the prior.
    pts = astronaut_face.points.copy()
    for upper, lower in ((159, 145), (386, 374)):
        pts[upper, :2] = pts[lower, :2]
    scale = estimate_scale(pts)
    assert scale.source == "biocular_width_prior"
    assert scale.rejected == ("iris: eyes closed",)
    width = np.linalg.norm(pts[263] - pts[33])
    assert scale.mm_per_px * width == pytest.approx(BIOCULAR_WIDTH_MM[0])
    assert IRIS_DIAMETER_MM[0] == 11.7

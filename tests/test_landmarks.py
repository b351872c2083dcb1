"""Real MediaPipe on real photos: detection, several faces, small faces, roll, no face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scan_renders import needs_scan, render_scan

from face3d_mesh.errors import NoFaceError
from face3d_mesh.landmarks import (
    FACE_OVAL,
    LEFT_EYE_OUTER,
    NOSE_TIP,
    NUM_LANDMARKS,
    RIGHT_EYE_OUTER,
    detect_faces,
    face_mesh_holes,
    face_mesh_triangles,
)


def test_astronaut_landmarks_are_a_plausible_face(astronaut_rgb):
    faces = detect_faces(astronaut_rgb)
    assert len(faces) == 1
    pts = faces[0].points
    assert pts.shape == (NUM_LANDMARKS, 3) and np.isfinite(pts).all()
    h, w = astronaut_rgb.shape[:2]
    assert (pts[:, 0] > 0).all() and (pts[:, 0] < w).all()
    assert (pts[:, 1] > 0).all() and (pts[:, 1] < h).all()
    # The subject's right eye is on the image's left; eyes above the nose, nose above chin.
    assert pts[RIGHT_EYE_OUTER, 0] < pts[NOSE_TIP, 0] < pts[LEFT_EYE_OUTER, 0]
    assert pts[RIGHT_EYE_OUTER, 1] < pts[NOSE_TIP, 1] < pts[152, 1]
    # z: larger = farther, so the nose tip is nearer than the face oval.
    assert pts[NOSE_TIP, 2] < np.median(pts[list(FACE_OVAL), 2])


def test_small_face_in_large_photo_is_found(astronaut_rgb):
    reference = detect_faces(astronaut_rgb)[0].points
    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    x0, y0 = 2900, 1900
    canvas[y0 : y0 + 512, x0 : x0 + 512] = astronaut_rgb
    faces = detect_faces(canvas)
    assert len(faces) == 1
    found = faces[0].points[:, :2] - [x0, y0]
    error = np.median(np.linalg.norm(found - reference[:, :2], axis=1))
    assert error < 0.03 * faces[0].size_px


def test_several_faces_largest_first(astronaut_rgb):
    small = cv2.resize(astronaut_rgb, (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 800, 3), 120, np.uint8)
    canvas[:, :512] = astronaut_rgb
    canvas[100:356, 530:786] = small
    assert len(detect_faces(canvas)) == 1  # the fast default stops at the largest faces
    faces = detect_faces(canvas, thorough=True)
    assert len(faces) == 2
    assert faces[0].size_px > 1.5 * faces[1].size_px
    assert faces[0].points[NOSE_TIP, 0] < 512 < faces[1].points[NOSE_TIP, 0]


def test_roll_follows_the_image_rotation(astronaut_rgb):
    base = detect_faces(astronaut_rgb)[0]
    cx, cy = base.points[NOSE_TIP, :2]
    rotation = cv2.getRotationMatrix2D((cx, cy), -20, 1.0)  # OpenCV: negative = clockwise
    rotated = cv2.warpAffine(astronaut_rgb, rotation, (512, 512), borderMode=cv2.BORDER_REFLECT)
    face = detect_faces(rotated)[0]
    assert face.roll_deg - base.roll_deg == pytest.approx(20, abs=3)


def test_no_face_raises_with_the_file_name():
    blank = np.full((300, 300, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="wall.jpg: no face"):
        detect_faces(blank, source="wall.jpg")


def test_face_mesh_topology():
    triangles = face_mesh_triangles()
    assert triangles.shape == (852, 3)
    edges = np.sort(
        np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1
    )
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 2  # a manifold: no edge in three triangles
    holes = face_mesh_holes()
    assert sorted(len(h) for h in holes) == [16, 16, 20]  # two eyes, the mouth


def test_a_mirrored_face_mesh_pass_lands_on_the_same_landmarks(astronaut_rgb):
    """The refinement's mirrored pass (the crop flipped, the landmarks flipped back and
    their left/right indices swapped) agrees with a plain pass on the same crop: a wrong
    index map would put each eye's landmarks on the other eye, tens of pixels away."""
    from face3d_mesh.landmarks import LandmarkDetector, mirrored_landmark_order

    order = mirrored_landmark_order()
    assert (order[order] == np.arange(NUM_LANDMARKS)).all()
    assert order[RIGHT_EYE_OUTER] == LEFT_EYE_OUTER and order[NOSE_TIP] == NOSE_TIP
    assert order[468] == 473  # the irises' centres swap
    with LandmarkDetector() as detector:
        (face,) = detector.detect(astronaut_rgb)
        plain = detector._mesh_upright(astronaut_rgb, face, 1.4)
        mirrored = detector._mesh_upright(astronaut_rgb, face, 1.4, mirrored=True)
    gap = np.linalg.norm(plain.points[:, :2] - mirrored.points[:, :2], axis=1)
    eye_px = np.linalg.norm(face.points[LEFT_EYE_OUTER, :2] - face.points[RIGHT_EYE_OUTER, :2])
    assert np.median(gap) < 0.02 * eye_px and gap.max() < 0.1 * eye_px
    assert gap[468:].max() < 0.05 * eye_px


def test_refining_passes_side_by_side_equal_one_after_the_other(astronaut_rgb):
    """The refining passes run at the same time on their own graphs; the landmarks are
    exactly those of the same passes run one after the other on one graph, and a closed
    detector starts again (new graphs, a new pool) on its next call."""
    from face3d_mesh.landmarks import _REFINE_PASSES, LandmarkDetector

    with LandmarkDetector() as detector:
        (face,) = detector.detect(astronaut_rgb)
        assert detector._pass_pool is not None
        assert len(detector._pass_meshes) == len(_REFINE_PASSES) - 1
        together = detector._refining_passes(astronaut_rgb, face)
        serial = [
            detector._mesh_upright(astronaut_rgb, face, f, mirrored=m) for f, m in _REFINE_PASSES
        ]
        assert len(together) == len(serial) == 2
        for a, b in zip(together, serial, strict=True):
            np.testing.assert_array_equal(a.points, b.points)
        detector.close()
        assert detector._pass_pool is None and detector._pass_meshes == ()
        (again,) = detector.detect(astronaut_rgb)
        np.testing.assert_array_equal(again.points, face.points)


@pytest.mark.parametrize("turns", [1, 2, 3])
@pytest.mark.parametrize("photo", ["astronaut", "head_scan"])
def test_a_photo_turned_sideways_or_upside_down_gives_the_upright_faces_landmarks(
    photo, turns, astronaut_path, head_scan_path
):
    # Without the EXIF tag that turns it, an upside-down photo gave a garbage face (the
    # astronaut: roll -23° instead of 180°, the box 74 px instead of 100; the head scan:
    # roll -1°, its mesh drawn upright on the upside-down face), and the head scan turned
    # a quarter a face at roll 73°, yaw -46°. Their refining passes strayed 0.25-1 of the
    # face's size from them (at most 0.07 on upright renders): now the turned photo is
    # tried too.
    from PIL import Image

    path = astronaut_path if photo == "astronaut" else head_scan_path
    upright = np.asarray(Image.open(path).convert("RGB"))
    reference = detect_faces(upright)[0]
    turned = np.ascontiguousarray(np.rot90(upright, turns))
    face = detect_faces(turned)[0]
    # Back in the upright photo's pixels (np.rot90 turns counter-clockwise).
    height, width = upright.shape[:2]
    x, y = face.points[:, 0], face.points[:, 1]
    back = {1: (width - 1 - y, x), 2: (width - 1 - x, height - 1 - y), 3: (y, height - 1 - x)}
    xy = np.column_stack(back[turns])
    error = np.median(np.linalg.norm(xy[:468] - reference.points[:468, :2], axis=1))
    assert error < 0.02 * reference.size_px, error / reference.size_px
    expected_roll = {1: -90.0, 2: 180.0, 3: 90.0}[turns]
    assert abs((face.roll_deg - reference.roll_deg - expected_roll + 180) % 360 - 180) < 5


@pytest.mark.parametrize("photo, box", [
    ("head_scan", (260, 200, 510, 520)),  # eyebrows to mouth, the face's left side cut
    ("astronaut", (185, 110, 275, 215)),  # nose to chin
])  # fmt: skip
def test_a_face_cropped_so_tightly_that_it_is_cut_is_found(
    photo, box, astronaut_path, head_scan_path
):
    # BlazeFace and the face mesh's own search found no face in such crops ("no face
    # found"); in a grey frame round the photo they find it.
    from PIL import Image

    full = Image.open(astronaut_path if photo == "astronaut" else head_scan_path).convert("RGB")
    reference = detect_faces(np.asarray(full))[0]
    crop = np.asarray(full.crop(box))
    face = detect_faces(crop)[0]
    xy = face.points[:468, :2] + np.array(box[:2])
    error = np.median(np.linalg.norm(xy - reference.points[:468, :2], axis=1))
    assert error < 0.06 * reference.size_px, error / reference.size_px
    inside = (face.points[:468, 0] >= 0) & (face.points[:468, 0] < crop.shape[1])
    inside &= (face.points[:468, 1] >= 0) & (face.points[:468, 1] < crop.shape[0])
    assert 0.6 <= inside.mean() < 0.95  # the face is cut, and most of it is in the photo


@needs_scan
@pytest.mark.parametrize("yaw", [80, 90])
def test_a_head_seen_from_the_side_is_no_face_in_any_turn(yaw):
    # The photo as it is holds no face MediaPipe can read; the same photo turned a quarter
    # made the face mesh's own search draw a frontal "face" (yaw -7°..19°) on the profile,
    # until the turned photos needed a face detector's box first.
    image, _, _ = render_scan(yaw=yaw, lens_mm=50)
    with pytest.raises(NoFaceError):
        detect_faces(image)

"""reconstruct(): shapes, units, the documented coordinate frame, determinism, re-runs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import face3d_mesh
from face3d_mesh.errors import NoFaceError, UsageError
from face3d_mesh.landmarks import FACE_OVAL, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER
from face3d_mesh.pipeline import MARGIN_STRETCH


def test_result_arrays_follow_the_contract(astronaut_rec, astronaut_rgb):
    rec = astronaut_rec
    h, w = astronaut_rgb.shape[:2]
    np.testing.assert_array_equal(rec.image, astronaut_rgb)
    assert rec.landmarks.shape == (478, 3) and rec.landmarks.dtype == np.float64
    assert rec.mask.shape == (h, w) and rec.mask.dtype == bool
    assert rec.depth_mm.shape == (h, w) and rec.depth_mm.dtype == np.float32
    assert np.isnan(rec.depth_mm[~rec.mask]).all()
    assert np.isfinite(rec.depth_mm[rec.mask]).mean() > 0.99
    assert rec.depth_info["backend"] == "landmarks"
    assert set(rec.timings) >= {"load", "landmarks", "depth", "filter", "surface"}


def test_depth_is_in_plausible_millimetres(astronaut_rec, head_scan_rec):
    for rec in (astronaut_rec, head_scan_rec):
        d = rec.depth_mm[rec.mask]
        d = d[np.isfinite(d)]
        # Nose tip at 0 and (nearly) the closest point; a face is 40-130 mm deep.
        u, v = np.rint(rec.nose_px).astype(int)
        assert abs(rec.depth_mm[v, u]) < 3
        assert np.percentile(d, 1) > -4
        # A human profile: the forehead and the chin are behind the nose tip.
        assert rec.landmarks[10, 2] > 4 and rec.landmarks[152, 2] > 10
        assert 40 < np.percentile(d, 99) < 130
        # Landmark depths share the depth map's offset.
        assert rec.landmarks[NOSE_TIP, 2] == 0
        inner = [i for i in range(468) if i not in FACE_OVAL]
        lu, lv = np.rint(rec.landmarks[inner, :2]).astype(int).T
        diff = rec.depth_mm[lv, lu] - rec.landmarks[inner, 2]
        assert np.nanmedian(np.abs(diff)) < 2.0


def test_mesh_frame_and_units(astronaut_rec):
    rec, mesh = astronaut_rec, astronaut_rec.mesh
    assert mesh.is_all_triangles and 50_000 < mesh.n_cells < 110_000
    pts = np.asarray(mesh.points)
    # Origin at the nose tip: the nearest vertex to it is at the origin, z ≈ 0 in front.
    nearest = pts[np.argmin(np.linalg.norm(pts[:, :2], axis=1))]
    assert np.abs(nearest).max() < 2.0
    assert pts[:, 2].max() < 4.0
    # x right, y up, z toward the camera: the subject's right eye (image left) has x < 0,
    # the forehead y > 0, the cheeks are behind the nose (z < 0).
    lm = rec.landmarks_mesh
    assert lm[RIGHT_EYE_OUTER, 0] < 0 < lm[LEFT_EYE_OUTER, 0]
    assert lm[10, 1] > 0 > lm[152, 1]
    assert lm[234, 2] < -20 and lm[454, 2] < -20
    # Size in mm: the mask's extent in pixels times the scale, widened by the perspective
    # (the face's sides are farther than the eye corners, where the scale holds).
    cols = np.nonzero(rec.mask.any(axis=0))[0]
    width_mm = (cols[-1] - cols[0]) * rec.mm_per_px
    assert 0.98 * width_mm < mesh.bounds[1] - mesh.bounds[0] < 1.15 * width_mm
    # Colours and texture coordinates come from the photo.
    assert mesh.point_data["RGB"].dtype == np.uint8
    uv = np.asarray(mesh.active_texture_coordinates)
    assert uv.shape == (mesh.n_points, 2) and uv.min() >= 0 and uv.max() <= 1


def test_array_input_gives_the_same_result_bit_for_bit(astronaut_rec, astronaut_rgb):
    rec = face3d_mesh.reconstruct(astronaut_rgb, depth="landmarks")
    assert rec.source is None
    np.testing.assert_array_equal(rec.depth_mm, astronaut_rec.depth_mm)
    np.testing.assert_array_equal(rec.mesh.points, astronaut_rec.mesh.points)
    np.testing.assert_array_equal(rec.mesh.faces, astronaut_rec.mesh.faces)


def test_with_config_reruns_only_later_stages(astronaut_rec):
    smooth = astronaut_rec.with_config(smooth_sigma_mm=4.0)
    assert smooth is not astronaut_rec and astronaut_rec.config.smooth_sigma_mm == 0
    np.testing.assert_array_equal(smooth.landmarks, astronaut_rec.landmarks)
    both = astronaut_rec.mask & np.isfinite(smooth.depth_mm) & np.isfinite(astronaut_rec.depth_mm)
    change = np.abs(smooth.depth_mm[both] - astronaut_rec.depth_mm[both])
    assert 0.05 < np.median(change) < 5
    coarse = astronaut_rec.with_config(target_triangles=10_000)
    assert 7_000 < coarse.mesh.n_cells < 13_000
    with pytest.raises(UsageError, match="reconstruct"):
        astronaut_rec.with_config(depth="midas")


def test_large_photo_is_processed_at_working_resolution(astronaut_rgb, astronaut_rec):
    big = cv2.resize(astronaut_rgb, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    rec = face3d_mesh.reconstruct(big, depth="landmarks")
    assert rec.depth_mm.shape == (3000, 3000)
    assert rec.mesh.n_cells < 110_000
    # Same face, same millimetres (the scale follows the pixels).
    ratio = rec.mm_per_px / astronaut_rec.mm_per_px
    assert ratio == pytest.approx(512 / 3000, rel=0.08)
    depth_range = np.nanpercentile(rec.depth_mm, 95) - np.nanpercentile(astronaut_rec.depth_mm, 95)
    assert abs(depth_range) < 8


def test_face_index_and_no_face(astronaut_rgb):
    with pytest.raises(NoFaceError, match="face 3 requested, but only 1"):
        face3d_mesh.reconstruct(astronaut_rgb, depth="landmarks", face=3)
    with pytest.raises(NoFaceError):
        face3d_mesh.reconstruct(np.full((200, 200, 3), 100, np.uint8), depth="landmarks")
    with pytest.raises(UsageError, match="unknown depth backend"):
        face3d_mesh.reconstruct(astronaut_rgb, depth="sonar")


@pytest.mark.parametrize(
    "option, value, message",
    [
        # A string or None from a config file or a form gave a TypeError ("'<=' not
        # supported between instances of 'int' and 'str'") from deep inside the checks.
        ("mask_margin_mm", "4", "mask_margin_mm must be a number, got '4'"),
        ("working_size_px", "448", "working_size_px must be a number"),
        ("smooth_sigma_mm", None, "smooth_sigma_mm must be a number, got None"),
        ("face", 1.5, "face must be a whole number"),
        ("face", True, "face must be a whole number"),
    ],
)
def test_options_of_the_wrong_type_are_usage_errors(astronaut_rgb, option, value, message):
    with pytest.raises(UsageError, match=message):
        face3d_mesh.reconstruct(astronaut_rgb, depth="landmarks", **{option: value})


def test_numpy_numbers_are_numbers(astronaut_rgb):
    options = dict(working_size_px=np.int64(448), mask_margin_mm=np.float32(3))
    rec = face3d_mesh.reconstruct(astronaut_rgb, depth="landmarks", **options)
    assert np.isfinite(rec.depth_mm).any()


def test_camera_and_pixel_to_mesh_agree_with_the_mesh(astronaut_rec):
    rec = astronaut_rec
    cam = rec.camera  # no EXIF: a guessed focal length, the optical axis through the face
    assert cam["model"] == "perspective" and cam["focal_source"] == "default"
    assert cam["mm_per_px"] == rec.mm_per_px
    assert cam["focal_px"] >= 50 / 36 * max(rec.image.shape[:2])
    box = rec.landmarks[:468, :2]
    centre = 0.5 * (box.min(axis=0) + box.max(axis=0))
    assert np.linalg.norm(np.array(cam["principal_point_px"]) - centre) < 0.1 * np.ptp(box[:, 0])
    # Mesh vertices on pixel centres are exactly pixel_to_mesh of their pixel and depth.
    v, u = np.nonzero(np.isfinite(rec.depth_mm))
    expected = rec.pixel_to_mesh(u, v, rec.depth_mm[v, u])
    pts = np.asarray(rec.mesh.points, dtype=np.float64)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(pts).query(expected[:: max(1, len(expected) // 2000)])
    assert np.median(dist) < 0.5 * rec.mm_per_px


def test_a_known_focal_length_gives_a_perspective_mesh(astronaut_rgb, astronaut_rec):
    from face3d_mesh.landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

    focal = 600.0  # a short lens for this 512-pixel photo: strong perspective
    rec = face3d_mesh.reconstruct(astronaut_rgb, focal_length_px=focal)
    cam = rec.camera
    assert cam["model"] == "perspective" and cam["focal_px"] == focal
    assert cam["principal_point_px"] == [255.5, 255.5] and cam["distance_mm"] > 150
    # Mesh vertices are pixel_to_mesh of their pixel and depth, as with the orthographic one.
    v, u = np.nonzero(np.isfinite(rec.depth_mm))
    expected = rec.pixel_to_mesh(u, v, rec.depth_mm[v, u])[:: max(1, len(u) // 2000)]
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(np.asarray(rec.mesh.points, np.float64)).query(expected)
    assert np.median(dist) < 0.5 * rec.mm_per_px
    # The scale holds at the outer eye corners; parts farther back are wider than an
    # orthographic mapping of the same pixels makes them, by (Z0 + d) / (Z0 + d_eye).
    lm = rec.landmarks_mesh
    eyes = lm[LEFT_EYE_OUTER] - lm[RIGHT_EYE_OUTER]
    pixels = rec.landmarks[LEFT_EYE_OUTER, :2] - rec.landmarks[RIGHT_EYE_OUTER, :2]
    assert abs(np.hypot(*eyes[:2]) / (np.hypot(*pixels) * rec.mm_per_px) - 1) < 0.02
    far = face3d_mesh.reconstruct(astronaut_rgb, focal_length_px=1e6)  # all but orthographic
    far_width = np.ptp(far.mesh_arrays.points[:, 0])
    assert np.ptp(rec.mesh_arrays.points[:, 0]) > 1.03 * far_width
    assert np.ptp(astronaut_rec.mesh_arrays.points[:, 0]) > 1.01 * far_width  # guessed lens
    rec.solid_arrays()  # still a height field that closes into a solid


def test_pinhole_maps_projected_points_back_to_their_places():
    from face3d_mesh.camera import Pinhole

    rng = np.random.default_rng(1)
    f, cx, cy = 900.0, 320.0, 240.0
    pts = rng.uniform([-80, -100, 380], [80, 100, 480], size=(50, 3))  # camera frame, mm
    nose = np.array([10.0, -5.0, 360.0])
    u, v = f * pts[:, 0] / pts[:, 2] + cx, f * pts[:, 1] / pts[:, 2] + cy
    u0, v0 = f * nose[0] / nose[2] + cx, f * nose[1] / nose[2] + cy
    cam = Pinhole(f, (cx, cy), (u0, v0), nose[2])
    mesh = cam.to_mesh(u, v, pts[:, 2] - nose[2])
    expected = (pts - nose) * [1, -1, -1]  # the mesh frame: y up, z toward the camera
    np.testing.assert_allclose(mesh, expected, atol=1e-9)
    back = cam.to_pixels(mesh)
    np.testing.assert_allclose(np.stack(back), np.stack([u, v, pts[:, 2] - nose[2]]), atol=1e-9)


def _with_exif(src, dst, *, focal_35mm, size=None):
    from PIL import Image

    img = Image.open(src).convert("RGB")
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0xA405] = focal_35mm
    if size is not None:
        sub[0xA002], sub[0xA003] = size
    img.save(dst, exif=exif, quality=95)


def test_exif_focal_length_is_used_unless_the_photo_was_cropped(tmp_path, astronaut_path):
    _with_exif(astronaut_path, tmp_path / "whole.jpg", focal_35mm=50, size=(512, 512))
    _with_exif(astronaut_path, tmp_path / "resized.jpg", focal_35mm=50, size=(2048, 2048))
    _with_exif(astronaut_path, tmp_path / "cropped.jpg", focal_35mm=50, size=(4000, 3000))
    diagonal = np.hypot(512, 512)
    whole = face3d_mesh.reconstruct(tmp_path / "whole.jpg", depth="landmarks")
    assert whole.camera["focal_source"] == "exif"
    assert whole.camera["focal_px"] == pytest.approx(50 * diagonal / 43.267, rel=1e-3)
    resized = face3d_mesh.reconstruct(tmp_path / "resized.jpg", depth="landmarks")
    assert resized.camera["focal_source"] == "exif"
    cropped = face3d_mesh.reconstruct(tmp_path / "cropped.jpg", depth="landmarks")
    assert cropped.camera["focal_source"] == "default"
    given = face3d_mesh.reconstruct(
        tmp_path / "cropped.jpg", depth="landmarks", focal_length_px=900.0
    )
    assert given.camera["focal_source"] == "user" and given.camera["focal_px"] == 900.0
    # Known camera with the face far above the optical axis: the depths are tilted
    # (forehead nearer); unknown camera: not.
    tilt_known = whole.landmarks[152, 2] - whole.landmarks[10, 2]
    tilt_unknown = cropped.landmarks[152, 2] - cropped.landmarks[10, 2]
    assert tilt_known > tilt_unknown + 3


def test_found_faces_reconstruct_like_the_path(astronaut_path, astronaut_rec):
    found = face3d_mesh.find_faces(astronaut_path)
    assert len(found) == 1 and found.name == str(astronaut_path)
    assert set(found.timings) == {"load", "landmarks"}
    rec = face3d_mesh.reconstruct(found, depth="landmarks")
    # Neither loaded nor searched again, and the same result as from the file.
    assert "load" not in rec.timings and "landmarks" not in rec.timings
    assert rec.source == str(astronaut_path) and rec.faces_found == 1
    np.testing.assert_array_equal(rec.depth_mm, astronaut_rec.depth_mm)
    np.testing.assert_array_equal(rec.mesh.points, astronaut_rec.mesh.points)
    with pytest.raises(NoFaceError, match="face 1 requested, but only 1 found"):
        face3d_mesh.reconstruct(found, depth="landmarks", face=1)


def test_with_config_times_its_own_stages_and_erodes_the_mask(astronaut_rec):
    again = astronaut_rec.with_config(smooth_sigma_mm=1.0)
    # Fresh timings for the re-run stages (not added to the earlier ones).
    assert again.timings["filter"] < astronaut_rec.timings["filter"] + 1.0
    assert again.timings["landmarks"] == astronaut_rec.timings["landmarks"]
    eroded = astronaut_rec.with_config(mask_erode_px=8)
    assert eroded.mask.sum() < 0.9 * astronaut_rec.mask.sum()
    assert not (eroded.mask & ~astronaut_rec.mask).any()
    assert np.isnan(eroded.depth_mm[~eroded.mask]).all()
    width = eroded.mesh.bounds[1] - eroded.mesh.bounds[0]
    assert width < astronaut_rec.mesh.bounds[1] - astronaut_rec.mesh.bounds[0] - 5


def test_preview_mesh_is_a_coarser_copy_of_the_same_surface(astronaut_rec):
    mesh = astronaut_rec.mesh
    preview = astronaut_rec.preview_mesh(max_triangles=20_000)
    assert 10_000 < preview.n_cells <= 20_000
    assert {"RGB", "UV"} <= set(preview.point_data.keys())
    np.testing.assert_allclose(preview.bounds, mesh.bounds, atol=2.0)
    # Every preview vertex lies on the full surface (within a fraction of a mm).
    import pyvista as pv

    dist = pv.PolyData(np.asarray(preview.points)).compute_implicit_distance(mesh)
    assert np.percentile(np.abs(dist["implicit_distance"]), 95) < 0.5
    assert astronaut_rec.preview_mesh(max_triangles=200_000) is mesh
    with pytest.raises(UsageError):
        astronaut_rec.preview_mesh(max_triangles=10)


def test_cached_depth_weights_lists_every_model(monkeypatch, tmp_path):
    from face3d_mesh.depth import MODEL_NAMES

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = face3d_mesh.pipeline.cached_depth_weights()
    assert list(cached) == list(MODEL_NAMES) and set(cached.values()) == {None}


def test_mask_margin_continues_the_face_slope_not_a_flat_brim(astronaut_rec, head_scan_rec):
    from face3d_mesh.align import extend_nearest
    from face3d_mesh.mask import face_mask

    for rec in (astronaut_rec, head_scan_rec):
        # (the face mesh where it stands out of the oval, a turned head's nose, is face)
        face = face_mask(rec.landmarks, rec.mask.shape, silhouette=True)
        margin = rec.mask & ~face
        inside = np.where(face, rec.depth_mm, np.nan)
        step = rec.depth_mm[margin] - extend_nearest(inside)[margin]
        # The face turns away from the camera at its outline: past it the depth keeps
        # growing (a flat continuation would leave step ~0 everywhere), not steeply.
        assert np.median(step) > 0.5
        # the farthest margin pixel from the oval: at the forehead's top and the chin
        dist_mm = rec.config.mask_margin_mm * (1 + MARGIN_STRETCH)
        assert np.percentile(np.abs(step), 99) <= 2 * dist_mm + 1.0  # no spikes


def test_the_stages_run_with_one_blas_thread_and_restore_the_callers(astronaut_rgb):
    # Idle OpenBLAS threads spin after each multi-threaded call and take a core from the
    # next stage; the pipeline's stages run with one BLAS thread, the caller's setting is
    # given back afterwards.
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas"}  # fmt: skip

    assert blas_threads(), "numpy's BLAS is not seen by threadpoolctl"
    seen = {}
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        face3d_mesh.reconstruct(
            astronaut_rgb, progress=lambda label: seen.setdefault(label, blas_threads())
        )
        assert blas_threads() == before
    assert {"landmarks", "model_fit", "depth", "filter", "surface"} <= seen.keys()
    for label, threads in seen.items():
        assert set(threads.values()) == {1}, (label, threads)


def test_the_crop_is_the_working_size_offline_and_at_least_a_networks_input(astronaut_rgb):
    from face3d_mesh.config import ReconstructionConfig
    from face3d_mesh.depth._backends import crop_size_px

    config = ReconstructionConfig()
    assert crop_size_px(config.replace(depth="hybrid")) == config.working_size_px == 448
    assert crop_size_px(config.replace(depth="model", working_size_px=600)) == 600
    beit = config.replace(depth="midas", depth_model="dpt_beit_large_512")
    assert crop_size_px(beit) == 512  # never an enlarged crop for the network
    hybrid_net = config.replace(depth="fused", depth_model="dpt_hybrid_384")
    assert crop_size_px(hybrid_net) == 448
    assert crop_size_px(hybrid_net.replace(working_size_px=300)) == 384
    rec = face3d_mesh.reconstruct(astronaut_rgb, working_size_px=400)
    assert max(rec._depth_stage.aligned.image.shape[:2]) == 400


def test_saving_over_the_reconstructions_own_photo_is_refused(tmp_path, astronaut_path):
    from face3d_mesh.errors import OutputError

    photo = tmp_path / "me_texture.png"  # what me.obj's texture would be named
    photo.write_bytes(astronaut_path.read_bytes())
    rec = face3d_mesh.reconstruct(photo, depth="landmarks")
    with pytest.raises(OutputError, match="is the input photo"):
        rec.save(tmp_path / "me.obj")
    assert photo.read_bytes() == astronaut_path.read_bytes()
    assert [p.name for p in rec.save(tmp_path / "me.obj", solid=True)] == ["me.obj"]

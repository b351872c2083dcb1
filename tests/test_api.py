"""The public API surface: a name that disappears fails this test."""

from __future__ import annotations

import inspect

import numpy as np

import face3d_mesh

PUBLIC = {
    "reconstruct",
    "find_faces",
    "face_scale",
    "FoundFaces",
    "Reconstruction",
    "ReconstructionConfig",
    "load_image",
    "LandmarkDetector",
    "FaceLandmarks",
    "detect_faces",
    "ScaleEstimate",
    "ScaleCue",
    "estimate_scale",
    "combine_cues",
    "face_mask",
    "filter_depth",
    "depth_to_mesh",
    "make_solid",
    "export_mesh",
    "export",
    "load_mesh",
    "mesh_texture",
    "MeshArrays",
    "save_depth",
    "depth_to_gray",
    "show",
    "Face3DError",
    "ImageError",
    "NoFaceError",
    "ModelError",
    "OutputError",
    "UsageError",
}
RESULT_ATTRIBUTES = {
    "image",
    "landmarks",
    "mask",
    "depth_mm",
    "mesh",
    "scale",
    "depth_info",
    "notes",
    "config",
    "source",
    "timings",
    "faces_found",
    "mm_per_px",
    "nose_px",
    "landmarks_mesh",
    "with_config",
    "preview_mesh",
    "save",
    "solid",
    "to_trimesh",
}


def test_public_names_exist_and_resolve():
    assert PUBLIC <= set(face3d_mesh.__all__)
    for name in PUBLIC:
        assert getattr(face3d_mesh, name) is not None, name


def test_reconstruction_attributes():
    cls = face3d_mesh.Reconstruction
    names = {n for n in dir(cls)} | set(cls.__dataclass_fields__)
    assert RESULT_ATTRIBUTES <= names


def test_options_are_keyword_only():
    for func in (
        face3d_mesh.reconstruct,
        face3d_mesh.filter_depth,
        face3d_mesh.depth_to_mesh,
        face3d_mesh.make_solid,
        face3d_mesh.export_mesh,
    ):
        params = list(inspect.signature(func).parameters.values())
        positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert len(positional) <= 3, (func.__name__, positional)


def test_to_trimesh_keeps_geometry(astronaut_rec):
    tm = astronaut_rec.to_trimesh()
    assert len(tm.vertices) == astronaut_rec.mesh.n_points
    assert len(tm.faces) == astronaut_rec.mesh.n_cells


def test_arrays_and_polydata_are_the_same_meshes(astronaut_rec):
    rec = astronaut_rec
    np.testing.assert_array_equal(rec.mesh_arrays.points, rec.mesh.points)
    np.testing.assert_array_equal(rec.mesh_arrays.faces, rec.mesh.regular_faces)
    np.testing.assert_array_equal(rec.mesh_arrays.rgb, rec.mesh.point_data["RGB"])
    arrays = rec.solid_arrays(base_mm=2.0, width_mm=70.0)
    solid = rec.solid(base_mm=2.0, width_mm=70.0)
    np.testing.assert_array_equal(arrays.points, solid.points)
    np.testing.assert_array_equal(arrays.faces, solid.regular_faces)
    assert float(arrays.field_data["scale"][0]) == float(solid.field_data["scale"][0])
    assert abs(arrays.bounds[1] - arrays.bounds[0] - 70.0) < 1e-6
    # the module functions: the same solid from a surface as arrays or as PolyData
    far = face3d_mesh.reconstruct(rec.image, depth="landmarks", focal_length_px=1e6)
    by_arrays = face3d_mesh.solid_arrays(far.mesh_arrays, base_mm=2.0)
    by_polydata = face3d_mesh.make_solid(far.mesh, base_mm=2.0)
    np.testing.assert_array_equal(by_arrays.points, by_polydata.points)
    np.testing.assert_array_equal(by_arrays.faces, by_polydata.regular_faces)


def test_notes_say_when_the_face_is_small_in_the_photo(astronaut_rec, astronaut_rgb):
    import cv2

    assert astronaut_rec.notes == ()  # 60 px between the outer eye corners
    tiny = cv2.resize(astronaut_rgb, (80, 80), interpolation=cv2.INTER_AREA)
    (note,) = face3d_mesh.reconstruct(tiny).notes
    assert "face is small" in note and "10 px between the outer eye corners" in note

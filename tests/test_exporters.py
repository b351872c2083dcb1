import os
import struct

import cv2
import numpy as np
import pytest
import pyvista as pv
import trimesh
from synth import CENTRE, MM_PER_PX, gradient_image, sphere_cap

from face3d_mesh._atomic import write_atomically as _write_atomically
from face3d_mesh.errors import OutputError, UsageError
from face3d_mesh.exporters import EXPORTERS, export_mesh
from face3d_mesh.solid import make_solid
from face3d_mesh.surface import depth_to_mesh


@pytest.fixture(scope="module")
def photo():
    img = gradient_image()
    img[..., 2] = (np.arange(256)[None, :] * 7 + np.arange(256)[:, None] * 3) % 256
    return img


@pytest.fixture(scope="module")
def mesh(photo):
    depth, mask, r = sphere_cap()
    return depth_to_mesh(
        depth, mm_per_px=MM_PER_PX, origin_px=CENTRE, image=photo, target_triangles=10_000
    )


def _listing(folder):
    return sorted(os.listdir(folder))


def test_table_keys():
    assert set(EXPORTERS) == {".stl", ".obj", ".ply"}


def test_stl_binary_roundtrip(mesh, tmp_path):
    out = export_mesh(mesh, tmp_path / "face.STL")
    assert out == [tmp_path / "face.STL"]
    data = out[0].read_bytes()
    n = struct.unpack("<I", data[80:84])[0]
    assert n == mesh.n_cells and len(data) == 84 + 50 * n
    tm = trimesh.load(out[0], file_type="stl")
    assert len(tm.faces) == mesh.n_cells
    assert len(tm.vertices) == mesh.n_points  # trimesh merges the STL's duplicated corners
    back = pv.read(out[0])
    assert back.n_cells == mesh.n_cells
    np.testing.assert_allclose(np.sort(back.points, axis=0), np.sort(mesh.points, axis=0))
    assert _listing(tmp_path) == ["face.STL"]


def test_solid_stl_stays_watertight(mesh, tmp_path):
    solid = make_solid(mesh)
    export_mesh(solid, tmp_path / "solid.stl")
    tm = trimesh.load(tmp_path / "solid.stl")
    assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0


def test_ply_roundtrip_with_colours(mesh, tmp_path):
    (path,) = export_mesh(mesh, tmp_path / "face.ply")
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    tm = trimesh.load(path, process=False)
    assert len(tm.vertices) == mesh.n_points and len(tm.faces) == mesh.n_cells
    np.testing.assert_array_equal(tm.visual.vertex_colors[:, :3], mesh.point_data["RGB"])
    np.testing.assert_array_equal(tm.faces, mesh.regular_faces)
    np.testing.assert_allclose(tm.vertices, mesh.points, atol=1e-6)
    back = pv.read(path)
    np.testing.assert_array_equal(back.point_data["RGB"], mesh.point_data["RGB"])


def test_ply_without_colours(tmp_path):
    (path,) = export_mesh(pv.Plane().triangulate(), tmp_path / "plane.ply")
    assert b"red" not in path.read_bytes()[:300]
    assert len(trimesh.load(path).faces) == pv.Plane().triangulate().n_cells


def test_obj_with_texture(photo, tmp_path):
    depth, mask, r = sphere_cap()
    mesh = depth_to_mesh(
        depth, mm_per_px=MM_PER_PX, origin_px=CENTRE, image=photo, grid_step_px=2.0
    )
    files = export_mesh(mesh, tmp_path / "face.obj", texture=photo)
    names = [f.name for f in files]
    assert names[-1] == "face.obj" and set(names) == {"face.obj", "face.mtl", "face_texture.png"}
    assert _listing(tmp_path) == sorted(names)
    obj_text = (tmp_path / "face.obj").read_text()
    assert "mtllib face.mtl\n" in obj_text
    assert "map_Kd face_texture.png" in (tmp_path / "face.mtl").read_text()
    tex = cv2.imread(str(tmp_path / "face_texture.png"))[:, :, ::-1]
    assert tex.shape[0] < 256 and tex.shape[1] < 256  # cropped, not the whole photo
    tm = trimesh.load(tmp_path / "face.obj", process=False)
    assert len(tm.vertices) == mesh.n_points and len(tm.faces) == mesh.n_cells
    uv = tm.visual.uv
    assert uv.min() > 0 and uv.max() < 1
    # the texture colour under each vertex's UV is the photo colour at that vertex
    h, w = tex.shape[:2]
    col = np.rint(uv[:, 0] * w - 0.5).astype(int)
    row = np.rint((1 - uv[:, 1]) * h - 0.5).astype(int)
    sampled = tex[row, col].astype(int)
    u = np.asarray(mesh.points)[:, 0] / MM_PER_PX + CENTRE[0]
    v = -np.asarray(mesh.points)[:, 1] / MM_PER_PX + CENTRE[1]
    expected = photo[np.rint(v).astype(int), np.rint(u).astype(int)].astype(int)
    on_pixel = (np.abs(u - np.rint(u)) < 1e-3) & (np.abs(v - np.rint(v)) < 1e-3)
    assert on_pixel.sum() > 100
    np.testing.assert_array_equal(sampled[on_pixel], expected[on_pixel])
    back = pv.read(tmp_path / "face.obj")
    assert back.n_points >= mesh.n_points and back.n_cells == mesh.n_cells


def test_obj_without_texture_has_vertex_colours(mesh, tmp_path):
    files = export_mesh(mesh, tmp_path / "face.obj")
    assert files == [tmp_path / "face.obj"]
    first_v = next(line for line in files[0].read_text().splitlines() if line.startswith("v "))
    assert len(first_v.split()) == 7
    tm = trimesh.load(files[0], process=False)
    assert len(tm.faces) == mesh.n_cells


def test_unknown_extension(mesh, tmp_path):
    with pytest.raises(OutputError, match=r"\.obj, \.ply, \.stl"):
        export_mesh(mesh, tmp_path / "face.glb")
    with pytest.raises(OutputError):
        export_mesh(mesh, tmp_path / "face")
    assert _listing(tmp_path) == []


def test_missing_folder(mesh, tmp_path):
    with pytest.raises(OutputError, match="does not exist") as info:
        export_mesh(mesh, tmp_path / "nope" / "face.stl")
    assert "\n" not in str(info.value)


def test_unwritable_folder(mesh, tmp_path):
    if os.geteuid() == 0:  # root ignores permissions: use a folder no one can create files in
        with pytest.raises(OutputError) as info:
            export_mesh(mesh, "/proc/face.stl")
        assert "\n" not in str(info.value)
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError):
            export_mesh(mesh, ro / "face.stl")
        assert _listing(ro) == []
    finally:
        ro.chmod(0o700)


def test_failure_keeps_existing_file(mesh, tmp_path):
    target = tmp_path / "face.stl"
    target.write_bytes(b"precious")
    with pytest.raises(UsageError):
        export_mesh(pv.PolyData(), target)  # invalid (empty) mesh
    with pytest.raises(UsageError):
        export_mesh(mesh, tmp_path / "face.obj", texture=np.zeros((4, 4), np.uint8))
    with pytest.raises(UsageError, match="photo"):
        export_mesh(mesh, tmp_path / "face.obj", texture=np.zeros((4, 4, 3), np.uint8))
    assert target.read_bytes() == b"precious"
    assert _listing(tmp_path) == ["face.stl"]
    (tmp_path / "face.ply").mkdir()  # a folder in the way
    with pytest.raises(OutputError):
        export_mesh(mesh, tmp_path / "face.ply")
    assert _listing(tmp_path) == ["face.ply", "face.stl"]


def test_multi_file_failure_midway_restores_everything(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.mtl", tmp_path / "c.obj"
    a.write_bytes(b"old a")
    c.write_bytes(b"old c")
    b.mkdir()  # os.replace onto a non-empty folder fails after a.png was replaced
    (b / "x").write_bytes(b"")
    with pytest.raises(OutputError, match="b.mtl"):
        _write_atomically({a: b"new a", b: b"new b", c: b"new c"})
    assert a.read_bytes() == b"old a" and c.read_bytes() == b"old c"
    assert _listing(tmp_path) == ["a.png", "b.mtl", "c.obj"]
    # a temp file that cannot even be created (missing folder) leaves nothing behind
    with pytest.raises(OutputError):
        _write_atomically({a: b"new a", tmp_path / "missing" / "d": b"d"})
    assert a.read_bytes() == b"old a"
    assert _listing(tmp_path) == ["a.png", "b.mtl", "c.obj"]


def test_overwrite_succeeds(mesh, tmp_path):
    target = tmp_path / "face.stl"
    target.write_bytes(b"old")
    export_mesh(mesh, target)
    assert len(target.read_bytes()) == 84 + 50 * mesh.n_cells
    assert _listing(tmp_path) == ["face.stl"]

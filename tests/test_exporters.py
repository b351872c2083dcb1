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
    from face3d_mesh.frontends.cli import MESH_FORMATS

    assert set(EXPORTERS) == {".stl", ".obj", ".ply", ".glb", ".3mf"}
    assert sorted(MESH_FORMATS) == sorted(e[1:] for e in EXPORTERS)  # the CLI's --format list


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


def test_obj_named_with_spaces_and_accents_keeps_its_texture(photo, tmp_path):
    # "my face ü.obj" stopped with an internal error (the OBJ was encoded as ASCII), and
    # "mtllib my face.mtl" is read as three library names, so the texture was lost.
    from face3d_mesh import load_mesh, mesh_texture

    depth, mask, r = sphere_cap()
    mesh = depth_to_mesh(
        depth, mm_per_px=MM_PER_PX, origin_px=CENTRE, image=photo, grid_step_px=2.0
    )
    path = tmp_path / "my face ü.obj"
    files = export_mesh(mesh, path, texture=photo)
    assert sorted(f.name for f in files) == [
        "my face ü.obj", "my_face_ü.mtl", "my_face_ü_texture.png"
    ]  # fmt: skip
    assert "mtllib my_face_ü.mtl\n" in path.read_text(encoding="utf-8")
    assert mesh_texture(load_mesh(path)) is not None
    tm = trimesh.load(path, process=False)
    assert getattr(tm.visual.material, "image", None) is not None


def test_obj_without_texture_has_vertex_colours(mesh, tmp_path):
    files = export_mesh(mesh, tmp_path / "face.obj")
    assert files == [tmp_path / "face.obj"]
    first_v = next(line for line in files[0].read_text().splitlines() if line.startswith("v "))
    assert len(first_v.split()) == 7
    tm = trimesh.load(files[0], process=False)
    assert len(tm.faces) == mesh.n_cells


def test_unknown_extension(mesh, tmp_path):
    with pytest.raises(OutputError, match=r"\.3mf, \.glb, \.obj, \.ply, \.stl"):
        export_mesh(mesh, tmp_path / "face.fbx")
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


def _glb(path):
    """The glTF document, its binary buffer and the accessor reader of a GLB file."""
    import pygltflib

    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()

    def accessor(index):
        acc = gltf.accessors[index]
        view = gltf.bufferViews[acc.bufferView]
        width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[acc.type]
        dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}[
            acc.componentType
        ]
        start = view.byteOffset + (acc.byteOffset or 0)
        count = acc.count * width
        return np.frombuffer(blob, dtype=dtype, count=count, offset=start).reshape(-1, width)

    return gltf, blob, accessor


def test_glb_textured_in_metres(photo, tmp_path):
    depth, mask, r = sphere_cap()
    mesh = depth_to_mesh(
        depth, mm_per_px=MM_PER_PX, origin_px=CENTRE, image=photo, grid_step_px=2.0
    )
    files = export_mesh(mesh, tmp_path / "face.GLB", texture=photo)
    assert files == [tmp_path / "face.GLB"] and _listing(tmp_path) == ["face.GLB"]
    gltf, blob, accessor = _glb(files[0])
    assert gltf.asset.version == "2.0"
    (prim,) = gltf.meshes[0].primitives
    pos = accessor(prim.attributes.POSITION)
    normals = accessor(prim.attributes.NORMAL)
    uv = accessor(prim.attributes.TEXCOORD_0)
    tri = accessor(prim.indices).reshape(-1, 3)
    assert len(pos) == len(uv) == len(normals) == mesh.n_points
    np.testing.assert_array_equal(tri, mesh.regular_faces)
    # metres: the same vertices as the mesh's millimetres / 1000; y up as in our frame
    np.testing.assert_allclose(pos * 1000.0, mesh.points, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert np.mean(normals[:, 2]) > 0.5  # a cap facing the viewer (+z)
    # the base-colour texture is the photo's crop; glTF UVs start at the top-left
    material = gltf.materials[prim.material]
    assert material.pbrMetallicRoughness.metallicFactor == 0.0
    tex = gltf.textures[material.pbrMetallicRoughness.baseColorTexture.index]
    image = gltf.images[tex.source]
    assert image.mimeType == "image/png"
    view = gltf.bufferViews[image.bufferView]
    png = blob[view.byteOffset : view.byteOffset + view.byteLength]
    crop = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert crop.shape[0] < 256 and crop.shape[1] < 256
    h, w = crop.shape[:2]
    sampled = crop[np.rint(uv[:, 1] * h - 0.5).astype(int), np.rint(uv[:, 0] * w - 0.5).astype(int)]
    u = np.asarray(mesh.points)[:, 0] / MM_PER_PX + CENTRE[0]
    v = -np.asarray(mesh.points)[:, 1] / MM_PER_PX + CENTRE[1]
    on_pixel = (np.abs(u - np.rint(u)) < 1e-3) & (np.abs(v - np.rint(v)) < 1e-3)
    assert on_pixel.sum() > 100
    expected = photo[np.rint(v).astype(int), np.rint(u).astype(int)]
    np.testing.assert_array_equal(sampled[on_pixel], expected[on_pixel])
    # trimesh reads it back as a textured mesh of the same size
    scene = trimesh.load(files[0])
    (tm,) = scene.geometry.values()
    assert isinstance(tm.visual, trimesh.visual.TextureVisuals)
    np.testing.assert_allclose(tm.extents * 1000, np.ptp(mesh.points, axis=0), rtol=1e-5)


def test_glb_and_3mf_of_a_solid(mesh, tmp_path):
    solid = make_solid(mesh, base_mm=2.0)
    export_mesh(solid, tmp_path / "solid.stl")
    export_mesh(solid, tmp_path / "solid.glb")
    (three,) = export_mesh(solid, tmp_path / "solid.3mf")
    stl = trimesh.load(tmp_path / "solid.stl")
    glb = trimesh.load(tmp_path / "solid.glb", force="mesh")
    np.testing.assert_allclose(glb.extents * 1000, stl.extents, rtol=1e-5)
    import zipfile

    with zipfile.ZipFile(three) as z:
        model = z.read("3D/3dmodel.model").decode()
    assert 'unit="millimeter"' in model
    tm = trimesh.load(three, force="mesh")
    assert tm.is_watertight and tm.volume > 0
    assert len(tm.vertices) == solid.n_points and len(tm.faces) == solid.n_cells
    np.testing.assert_allclose(tm.extents, stl.extents, rtol=1e-6)
    assert _listing(tmp_path) == ["solid.3mf", "solid.glb", "solid.stl"]


def test_3mf_bytes_are_reproducible(mesh, tmp_path):
    """trimesh writes random UUIDs; ours derive them from the content: same mesh, same bytes,
    another mesh, other UUIDs."""
    import re
    import zipfile

    (a,) = export_mesh(mesh, tmp_path / "a.3mf")
    (b,) = export_mesh(mesh, tmp_path / "b.3mf")
    assert a.read_bytes() == b.read_bytes()
    (c,) = export_mesh(make_solid(mesh, base_mm=2.0), tmp_path / "c.3mf")
    uuids = []
    for path in (a, c):
        with zipfile.ZipFile(path) as z:
            model = z.read("3D/3dmodel.model").decode()
        uuids.append(set(re.findall(r'UUID="([0-9a-f-]{36})"', model)))
    assert uuids[0] and uuids[1] and not uuids[0] & uuids[1]


def test_glb_with_vertex_colours_and_from_arrays(mesh, tmp_path):
    from face3d_mesh.mesharrays import MeshArrays

    arrays = MeshArrays.from_polydata(mesh)
    assert arrays.n_points == mesh.n_points and arrays.n_cells == mesh.n_cells
    (path,) = export_mesh(arrays, tmp_path / "face.glb")  # no texture: vertex colours
    gltf, _, accessor = _glb(path)
    (prim,) = gltf.meshes[0].primitives
    assert prim.attributes.TEXCOORD_0 is None
    colours = accessor(prim.attributes.COLOR_0)
    np.testing.assert_array_equal(colours[:, :3], mesh.point_data["RGB"])
    # the arrays and the PolyData write the same bytes
    export_mesh(mesh, tmp_path / "poly.stl")
    export_mesh(arrays, tmp_path / "arrays.stl")
    assert (tmp_path / "poly.stl").read_bytes() == (tmp_path / "arrays.stl").read_bytes()
    # and the API's export closes arrays into a solid too
    import face3d_mesh

    (solid,) = face3d_mesh.export(arrays, tmp_path / "solid.3mf", solid=True, width_mm=50)
    tm = trimesh.load(solid, force="mesh")
    assert tm.is_watertight and tm.extents[0] == pytest.approx(50, abs=1e-3)


def test_glb_texture_must_match(mesh, tmp_path):
    with pytest.raises(UsageError, match="photo"):
        export_mesh(mesh, tmp_path / "face.glb", texture=np.zeros((4, 4, 3), np.uint8))
    from face3d_mesh.mesharrays import MeshArrays

    bare = MeshArrays(points=np.asarray(mesh.points), faces=np.asarray(mesh.regular_faces))
    with pytest.raises(UsageError, match="no UV"):
        export_mesh(bare, tmp_path / "p.glb", texture=np.zeros((4, 4, 3), np.uint8))
    assert _listing(tmp_path) == []

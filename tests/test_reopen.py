"""Files written by the exporters reopen as they were: texture, UVs, vertex colours.

Checked on what the viewer draws (off-screen renders compared pixel by pixel), not only on
the arrays :func:`face3d_mesh.load_mesh` returns.
"""

from __future__ import annotations

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")

import face3d_mesh  # noqa: E402
from face3d_mesh.frontends import viewer  # noqa: E402

SIZE = (480, 480)


@pytest.fixture(scope="module")
def written(astronaut_rec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reopen")
    for ext in (".obj", ".ply", ".glb", ".stl"):
        astronaut_rec.save(folder / f"face{ext}")
    return folder


def _render(source, mode="textured"):
    """The middle of an off-screen render (no caption or status line), float RGB."""
    pl = viewer.show(source, off_screen=True, size=SIZE, mode=mode, panels=False)
    img = pl.screenshot(return_img=True)
    pl.close()
    return np.asarray(img[60:-60, :, :3], np.float64)


@pytest.fixture(scope="module")
def photo_render(astronaut_rec):
    return _render(astronaut_rec)  # the reconstruction itself, textured with its photo


def _face(img):
    return img.mean(axis=2) > 80  # the face, brighter than the dark background


def _difference(a, b):
    both = _face(a) & _face(b)
    assert both.mean() > 0.15
    return float(np.abs(a - b)[both].mean())


@pytest.mark.parametrize("ext", [".obj", ".glb"])
def test_textured_files_show_their_texture(written, photo_render, ext):
    img = _render(written / f"face{ext}")
    shaded = _render(written / f"face{ext}", mode="shaded")
    # the reopened file looks like the reconstruction with its photo, not like clay
    # (the same pixels to a grey level; vertex colours alone would be ~3 levels off)
    assert _difference(img, photo_render) < 1.0
    assert _difference(shaded, photo_render) > 12.0


def test_ply_shows_its_vertex_colours(written, astronaut_rec):
    img = _render(written / "face.ply")
    bare = _render(astronaut_rec.mesh)  # the mesh without the photo: its vertex colours
    assert _difference(img, bare) < 1.0
    assert _difference(_render(written / "face.ply", mode="shaded"), bare) > 12.0
    stl = _render(written / "face.stl")  # no colours: textured falls back to shaded
    assert _difference(stl, _render(written / "face.stl", mode="shaded")) < 1.0


@pytest.mark.parametrize("ext", [".obj", ".glb"])
def test_load_mesh_returns_the_texture(written, astronaut_rec, ext):
    mesh = face3d_mesh.load_mesh(written / f"face{ext}")
    texture = face3d_mesh.mesh_texture(mesh)
    assert texture is not None and texture.dtype == np.uint8 and texture.ndim == 3
    uv = np.asarray(mesh.point_data.active_texture_coordinates)
    assert len(uv) == mesh.n_points
    # the texture under each vertex is the photo's colour there
    h, w = texture.shape[:2]
    sampled = texture[
        np.clip(np.rint((1 - uv[:, 1]) * h - 0.5).astype(int), 0, h - 1),
        np.clip(np.rint(uv[:, 0] * w - 0.5).astype(int), 0, w - 1),
    ].astype(float)
    rec = astronaut_rec
    u0, v0 = rec.nose_px
    pts = np.asarray(mesh.points)
    u = np.rint(pts[:, 0] / rec.mm_per_px + u0).astype(int)
    v = np.rint(-pts[:, 1] / rec.mm_per_px + v0).astype(int)
    expected = rec.image[v, u].astype(float)
    assert np.median(np.abs(sampled - expected)) <= 2.0
    np.testing.assert_allclose(np.ptp(pts, axis=0), np.ptp(rec.mesh.points, axis=0), rtol=1e-4)


def test_obj_without_its_texture_file_still_loads(written, tmp_path):
    import shutil

    for name in ("face.obj", "face.mtl"):
        shutil.copy(written / name, tmp_path / name)
    mesh = face3d_mesh.load_mesh(tmp_path / "face.obj")  # face_texture.png is missing
    assert face3d_mesh.mesh_texture(mesh) is None and mesh.n_cells > 1000


def test_glb_and_3mf_reopen_in_mm(astronaut_rec, tmp_path):
    solid = astronaut_rec.solid(width_mm=80)
    for ext in (".glb", ".3mf", ".stl"):
        astronaut_rec.save(tmp_path / f"bust{ext}", solid=True, width_mm=80)
        back = face3d_mesh.load_mesh(tmp_path / f"bust{ext}")
        assert back.n_cells == solid.n_cells
        np.testing.assert_allclose(back.bounds, solid.bounds, atol=1e-3)


def test_viewer_export_of_a_reopened_file_keeps_its_texture(written, tmp_path):
    pl = viewer.show(
        written / "face.obj", off_screen=True, size=SIZE, output_dir=tmp_path, output_stem="again"
    )
    files = pl.face3d_viewer.press("e")
    pl.close()
    names = sorted(p.name for p in files)
    assert names == [
        "again_mesh_01.3mf",
        "again_mesh_01.glb",
        "again_mesh_01.mtl",
        "again_mesh_01.obj",
        "again_mesh_01.stl",
        "again_mesh_01_texture.png",
    ]
    for ext in (".obj", ".glb"):
        back = face3d_mesh.load_mesh(tmp_path / f"again_mesh_01{ext}")
        assert face3d_mesh.mesh_texture(back) is not None


def test_3mf_in_another_unit_is_read_in_mm(astronaut_rec, tmp_path):
    import zipfile

    (path,) = astronaut_rec.save(tmp_path / "bust.3mf", solid=True, width_mm=80)
    inch = tmp_path / "inch.3mf"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(inch, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "3D/3dmodel.model":
                data = data.replace(b'unit="millimeter"', b'unit="inch"', 1)
            dst.writestr(item, data)
    mm = face3d_mesh.load_mesh(path)
    inches = face3d_mesh.load_mesh(inch)  # same numbers, read as inches: 25.4 times larger
    np.testing.assert_allclose(np.ptp(inches.points, axis=0), 25.4 * np.ptp(mm.points, axis=0))
    assert np.ptp(mm.points[:, 0]) == pytest.approx(80, abs=1e-3)

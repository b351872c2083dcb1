"""Off-screen tests of the viewer: they render and check properties of the images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")

from viewer_helpers import (  # noqa: E402
    headless_env,
    luminance,
    make_fake_reconstruction,
    world_to_pixel,
)

import face3d_mesh  # noqa: E402
from face3d_mesh.errors import Face3DError, ImageError, OutputError, UsageError  # noqa: E402
from face3d_mesh.frontends import viewer  # noqa: E402

SIZE = (960, 540)


@pytest.fixture(scope="module")
def rec():
    return make_fake_reconstruction()


def render(rec, **kw):
    """Render off-screen; return (image, viewer)."""
    kw.setdefault("size", SIZE)
    pl = viewer.show(rec, off_screen=True, **kw)
    img = pl.screenshot(return_img=True)
    v = pl.face3d_viewer
    return img, v


def main_view(img, v):
    """The 3D view's part of a screenshot, without the caption and status lines."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = v.main_renderer.GetViewport()
    rows = slice(int(h * (1 - y1)) + 40, int(h * (1 - y0)) - 40)
    cols = slice(int(w * x0), int(w * x1))
    return img[rows, cols]


def face_mask(view):
    """Pixels of the face in the 3D view: brighter than the dark gradient background."""
    return luminance(view) > 80


def test_module_is_light():
    code = (
        "import sys, face3d_mesh, face3d_mesh.frontends.viewer;"
        "print('pyvista' in sys.modules, 'vtk' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_screenshot_file_has_requested_size(rec, tmp_path):
    from PIL import Image

    out = tmp_path / "shot.png"
    viewer.show(rec, screenshot=out, size=(800, 450))
    with Image.open(out) as im:
        assert im.size == (800, 450)
        assert im.format == "PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_face_fills_a_sensible_part_of_the_view(rec):
    img, v = render(rec, mode="shaded", panels=False)
    assert img.shape[:2] == (SIZE[1], SIZE[0])
    view = main_view(img, v)
    m = face_mask(view)
    frac = m.mean()
    assert 0.15 < frac < 0.8, frac
    rows, cols = np.nonzero(m)
    cy, cx = rows.mean() / m.shape[0], cols.mean() / m.shape[1]
    assert 0.35 < cy < 0.65 and 0.35 < cx < 0.65, (cy, cx)
    # not clipped by the frame
    assert not m[:, 0].any() and not m[:, -1].any()


def test_shading_varies_across_the_surface(rec):
    img, v = render(rec, mode="shaded", panels=False)
    view = main_view(img, v)
    lum = luminance(view)[face_mask(view)]
    assert lum.std() > 10, lum.std()
    assert np.percentile(lum, 95) - np.percentile(lum, 5) > 40


def test_textured_differs_from_shaded(rec):
    a, v = render(rec, mode="shaded", panels=False)
    b, _ = render(rec, mode="textured", panels=False)
    va, vb = main_view(a, v), main_view(b, v)
    m = face_mask(va) & face_mask(vb)
    diff = np.abs(va.astype(int) - vb.astype(int)).sum(axis=2)[m]
    assert diff.mean() > 20, diff.mean()

    # the textured face shows the photo's red lips; the clay-shaded one has no such red
    def red(v):
        v = v.astype(int)
        return ((v[..., 0] - v[..., 1] > 50) & m).sum()

    assert red(vb) > 500 and red(va) < 50, (red(vb), red(va))


def test_depth_panel_is_lighter_at_the_nose_and_black_outside(rec):
    img, v = render(rec)
    ren = v.panel_renderers[1]
    h_img = rec.depth_mm.shape[0]
    u, vv = rec.landmarks[1, :2]
    dx = 35.0 / rec.scale.mm_per_px
    lum = luminance(img)

    def at(u_px, v_px):
        r, c = world_to_pixel(ren, (u_px, h_img - v_px, 0), img.shape[0])
        return lum[r - 2 : r + 3, c - 2 : c + 3].mean()

    nose, left, right = at(u, vv), at(u - dx, vv), at(u + dx, vv)
    assert nose > left + 30 and nose > right + 30, (nose, left, right)
    u0, v0, u1, v1 = v.panel_box  # the panels show the face with a margin around it
    assert not rec.mask[v0 + 2, u0 + 2]
    assert at(u0 + 2, v0 + 2) < 5  # outside the face: black


def test_photo_panel_shows_the_photo_and_landmarks(rec):
    img, v = render(rec)
    ren = v.panel_renderers[0]
    x0, y0, x1, y1 = ren.GetViewport()
    h, w = img.shape[:2]
    panel = img[int(h * (1 - y1)) + 30 : int(h * (1 - y0)), int(w * x0) : int(w * x1)]
    green = (panel[..., 1] > 200) & (panel[..., 0] < 100) & (panel[..., 2] > 100)
    yellow = (panel[..., 0] > 200) & (panel[..., 1] > 180) & (panel[..., 2] < 80)
    assert green.sum() > 100  # landmark dots
    assert yellow.sum() > 200  # mask outline


def test_azimuth_changes_the_image(rec):
    a, v = render(rec, mode="shaded", panels=False)
    b, _ = render(rec, mode="shaded", panels=False, azimuth=30, elevation=10)
    diff = np.abs(main_view(a, v).astype(int) - main_view(b, v).astype(int)).mean()
    assert diff > 5, diff


def test_point_cloud_is_lighter_where_closer(rec):
    img, v = render(rec, mode="points", panels=False)
    ren = v.main_renderer
    lum = luminance(img)
    mmpp = rec.scale.mm_per_px

    def at(x_mm, y_mm):
        # the surface point nearest to (x, y) in the mesh
        pts = np.asarray(v.surf.points)
        i = np.argmin((pts[:, 0] - x_mm) ** 2 + (pts[:, 1] - y_mm) ** 2)
        r, c = world_to_pixel(ren, pts[i], img.shape[0])
        return lum[r - 3 : r + 4, c - 3 : c + 4].mean()

    nose = at(0.0, 0.0)
    cheek = at(45.0, 0.0)
    edge = at(66.0, 0.0)
    assert nose > cheek > edge, (nose, cheek, edge)
    assert mmpp > 0


def test_all_modes_render_differently(rec):
    views = {}
    for mode in viewer.MODES:
        img, v = render(rec, mode=mode, panels=False, azimuth=25)
        views[mode] = main_view(img, v).astype(int)
    modes = list(views)
    for i, a in enumerate(modes):
        for b in modes[i + 1 :]:
            assert np.abs(views[a] - views[b]).mean() > 2, (a, b)


def test_keys_drive_the_viewer(rec, tmp_path):
    pl = viewer.show(rec, off_screen=True, size=SIZE, output_dir=tmp_path, output_stem="face")
    v = pl.face3d_viewer
    iren = pl.iren.interactor

    def key(sym):
        iren.SetKeySym(sym)
        iren.InvokeEvent("KeyPressEvent")

    assert v.mode == "textured"
    key("t")
    assert v.mode == "shaded"
    key("t")
    assert v.mode == "textured"
    for sym, mode in (("w", "wireframe"), ("p", "points"), ("d", "depth")):
        key(sym)
        assert v.mode == mode
        assert v.actors[mode].visibility
        key(sym)
        assert v.mode == "textured"
    key("h")
    assert v.help_actor.GetVisibility()
    assert "smoothing" in v.help_actor.GetInput()
    key("l")
    assert v.actors["landmarks"].visibility
    # depth exaggeration scales the displayed z only
    z0 = np.ptp(v.surf.points[:, 2])
    key("plus")
    assert np.ptp(v.surf.points[:, 2]) == pytest.approx(1.25 * z0, rel=1e-4)
    key("minus")
    key("0")
    assert v.exaggeration == 1.0
    # smoothing re-runs the surface stage through rec.with_config
    before = np.asarray(v.base.points).copy()
    key("bracketright")
    assert v.rec.config.smooth_sigma_mm == pytest.approx(0.5)
    assert v.rec is not rec
    after = np.asarray(v.base.points)
    assert after.shape != before.shape or np.abs(after - before).max() > 0.01
    key("bracketleft")
    assert v.rec.config.smooth_sigma_mm == 0.0
    # screenshot and export
    key("s")
    shots = sorted(tmp_path.glob("face_view_*.png"))
    assert [p.name for p in shots] == ["face_view_01.png"]
    key("e")
    stl, obj = tmp_path / "face_mesh_01.stl", tmp_path / "face_mesh_01.obj"
    assert stl.is_file() and obj.is_file()
    back = viewer.load_mesh(stl)
    assert back.n_cells == v.base.n_cells
    key("e")
    assert (tmp_path / "face_mesh_02.stl").is_file()
    # VTK's default 'e'/'q' would have ended the event loop; 'w' and 's' its representation
    assert v.actors["shaded"].prop.style == "Surface"
    pl.close()


@pytest.mark.parametrize("mode", ["shaded", "points", "wireframe"])
def test_measurement_in_mm(rec, mode):
    pl = viewer.show(rec, off_screen=True, size=SIZE, mode=mode, panels=False)
    v = pl.face3d_viewer
    pl.render()
    pts = np.asarray(v.surf.points)
    ia = np.argmin(pts[:, 0] ** 2 + pts[:, 1] ** 2)
    ib = np.argmin((pts[:, 0] - 30) ** 2 + (pts[:, 1] - 10) ** 2)
    h = pl.window_size[1]
    (ra, ca), (rb, cb) = (world_to_pixel(v.main_renderer, pts[i], h) for i in (ia, ib))
    assert v.pick(ca, h - 1 - ra) is None
    d = v.pick(cb, h - 1 - rb)
    assert d == pytest.approx(np.linalg.norm(pts[ia] - pts[ib]), abs=1.5)
    v.press("c")
    assert v.picks == []
    pl.close()


def test_bare_mesh_and_mesh_files(rec, tmp_path):
    for ext in (".stl", ".obj", ".ply"):
        path = tmp_path / f"face{ext}"
        rec.mesh.save(str(path))
        mesh = viewer.load_mesh(path)
        assert mesh.n_cells == rec.mesh.n_cells
        out = tmp_path / f"face{ext}.png"
        viewer.show(path, screenshot=out, size=(400, 300))
        assert out.stat().st_size > 1000
    img, v = render(rec.mesh, mode="textured")
    assert v.rec is None and not v.has_panels
    assert face_mask(main_view(img, v)).mean() > 0.1
    assert v.press("bracketright") is None  # smoothing needs a reconstruction
    assert "bare mesh" in v.last_message


def test_run_view_on_mesh_file_writes_screenshot(rec, tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "face.stl"
    rec.mesh.save(str(path))
    out = tmp_path / "view.png"
    assert viewer.run_view(path, screenshot=out, size="640x360", azimuth=30) == 0
    assert Image.open(out).size == (640, 360)
    assert str(out) in capsys.readouterr().out


def test_load_mesh_errors(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        viewer.load_mesh(tmp_path / "missing.stl")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ImageError, match="not a mesh"):
        viewer.load_mesh(tmp_path / "photo.jpg")
    bad = tmp_path / "bad.stl"
    bad.write_bytes(b"not an stl")
    with pytest.raises(ImageError):
        viewer.load_mesh(bad)


def test_bad_arguments(rec, tmp_path):
    with pytest.raises(UsageError, match="mode"):
        viewer.show(rec, off_screen=True, mode="sketch")
    with pytest.raises(UsageError, match="size"):
        viewer.parse_size("big")
    assert viewer.parse_size("1600x900") == (1600, 900)
    with pytest.raises(OutputError):
        viewer.show(rec, screenshot=tmp_path / "nope" / "x.png")
    with pytest.raises(OutputError):
        viewer.show(rec, screenshot=tmp_path / "x.gif")


def test_no_display_is_a_clear_error(rec, monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("display detection is Linux-only")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(viewer.NoDisplayError, match="xvfb-run") as info:
        viewer.show(rec)
    assert isinstance(info.value, Face3DError)
    assert "\n" not in str(info.value)
    # run_view checks before reconstructing (so a missing photo is not even opened)
    with pytest.raises(viewer.NoDisplayError):
        viewer.run_view("does-not-exist.jpg")
    monkeypatch.setenv("DISPLAY", ":987")  # no such X server
    ok, reason = viewer.display_available()
    assert not ok and ":987" in reason


def test_no_display_from_a_clean_process(tmp_path):
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from fake_reconstruction import make_fake_reconstruction as f;"
        "from face3d_mesh.frontends.viewer import show; show(f())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=headless_env(),
        cwd=str(Path(__file__).parents[1]),
    )
    assert out.returncode != 0
    assert "no display available" in out.stderr
    assert "Segmentation" not in out.stderr


def test_public_exports():
    assert face3d_mesh.show is viewer.show


# ---------------------------------------------------------------- interaction speed-ups
def _frames(pl, n=3):
    for _ in range(n):
        pl.render_window.Render()


def test_panels_stay_when_not_redrawn_and_follow_changes(rec):
    pl = viewer.show(rec, off_screen=True, size=SIZE)
    v = pl.face3d_viewer
    v.tune_for_interaction()
    _frames(pl)
    assert not any(r.GetDraw() for r in v.panel_renderers)  # cached, not drawn each frame
    cached = pl.screenshot(return_img=True)
    for r in v.panel_renderers:
        r.SetDraw(True)
    _frames(pl, 1)
    drawn = pl.screenshot(return_img=True)
    x0 = int(SIZE[0] * v.panel_renderers[0].GetViewport()[0]) + 1
    assert luminance(drawn[:, x0:]).mean() > 20
    assert np.array_equal(cached[:, x0:], drawn[:, x0:])
    # a new smoothing changes the depth panel: it is drawn again
    v.press("bracketright")
    _frames(pl)
    after = pl.screenshot(return_img=True)
    for r in v.panel_renderers:
        r.SetDraw(True)
    _frames(pl, 1)
    assert np.array_equal(after, pl.screenshot(return_img=True))
    # a new window size too
    pl.render_window.SetSize(800, 450)
    _frames(pl)
    resized = pl.screenshot(return_img=True)
    x0 = int(800 * v.panel_renderers[0].GetViewport()[0]) + 1
    assert luminance(resized[:, x0:]).mean() > 20


def test_vertex_lighting_looks_like_pixel_lighting(rec, tmp_path):
    pl = viewer.show(rec, off_screen=True, size=SIZE, azimuth=30, elevation=10)
    v = pl.face3d_viewer
    v.tune_for_interaction()
    assert v.set_vertex_lighting(True)  # on by itself on a software OpenGL only
    for mode in ("shaded", "textured", "depth"):
        v.set_mode(mode)
        _frames(pl, 1)
        fast = main_view(pl.screenshot(return_img=True), v).astype(int)
        v.set_vertex_lighting(False)
        _frames(pl, 1)
        exact = main_view(pl.screenshot(return_img=True), v).astype(int)
        v.set_vertex_lighting(True)
        d = np.abs(fast - exact).max(axis=2)
        assert d.max() > 0, mode  # the replacement is in effect
        assert np.percentile(d, 99.5) <= 8 and (d > 12).mean() < 0.002, (mode, d.max())
    # a screenshot file takes VTK's per-pixel lighting, and interaction keeps the fast one
    v.set_mode("shaded")
    out = v.save_screenshot(tmp_path / "shot.png")
    assert out.exists() and v._vertex_lighting


def test_toggles_only_flip_visibility_after_warm_up(rec):
    pl = viewer.show(rec, off_screen=True, size=SIZE)
    v = pl.face3d_viewer
    v.tune_for_interaction()
    _frames(pl, 1)
    v.press("p")
    v.press("p")
    before = v.status.GetInput()
    v.press("w")
    assert (
        v.mode == "wireframe"
        and "wireframe" in v.status.GetInput()
        and before != v.status.GetInput()
    )
    # the wireframe draws every edge once; the point cloud every point once
    assert v.edges.n_lines < 0.55 * 3 * v.surf.n_cells
    assert v.cloud.n_verts == v.surf.n_points and v.cloud.n_cells == v.surf.n_points


def test_a_solid_is_shaded_with_sharp_edges_at_its_walls(rec):
    from face3d_mesh.solid import make_solid

    solid = make_solid(rec.mesh, base_mm=3.0)
    img, v = render(solid, mode="shaded")
    pts = np.asarray(v.surf.points)
    nz = np.asarray(v.surf.point_data["Normals"])[:, 2]
    back = np.isclose(pts[:, 2], pts[:, 2].min())
    # Each vertex of the back plate's rim is shown twice: facing back (the plate) and
    # sideways (the wall), never with a normal smeared between the two.
    assert back.sum() > np.isclose(solid.points[:, 2], solid.points[:, 2].min()).sum()
    assert np.all((np.abs(nz[back]) < 0.05) | (nz[back] < -0.95))
    assert luminance(main_view(img, v)).std() > 10


def test_the_photo_is_sampled_smoothly_not_as_squares(astronaut_rec):
    # The astronaut's face is ~110 photo pixels wide; at 960 px each photo pixel spans ~5
    # screen pixels. Nearest-pixel sampling drew them as flat squares: 29 % of the
    # neighbouring screen pixels on the face were identical (p99 step 48 grey levels);
    # linear filtering: 7 % (p99 23).
    pl = viewer.show(astronaut_rec, off_screen=True, size=(960, 960), mode="textured", panels=False)
    try:
        img = pl.screenshot(return_img=True).astype(int)
    finally:
        pl.close()
    centre = img[200:760, 200:760]
    face = luminance(centre.astype(np.uint8)) > 80
    pairs = face[:, 1:] & face[:, :-1]
    step = np.abs(centre[:, 1:] - centre[:, :-1]).sum(axis=2)
    assert pairs.sum() > 100_000
    assert (step[pairs] == 0).mean() < 0.15, (step[pairs] == 0).mean()

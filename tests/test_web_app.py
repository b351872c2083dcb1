"""The web app, run by Streamlit's AppTest (the real script, pipeline and MediaPipe)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import urllib.request
import weakref
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

from streamlit.testing.v1 import AppTest  # noqa: E402

from face3d_mesh.frontends.web import APP_PATH  # noqa: E402
from face3d_mesh.frontends.web._downloads import (  # noqa: E402
    depth_downloads,
    mesh_downloads,
    safe_stem,
)
from face3d_mesh.frontends.web._figure import MODES, face_figure, figure_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MESH_LABELS = ["STL", "Solid STL", "OBJ (zip)", "PLY", "GLB"]


def _png(image: np.ndarray) -> bytes:
    from face3d_mesh.presentation import png_bytes

    return png_bytes(image)


@pytest.fixture(scope="module")
def astronaut_png(astronaut_path) -> bytes:
    return astronaut_path.read_bytes()


@pytest.fixture()
def app():
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _upload(at, name: str, data: bytes, mime: str = "image/png"):
    at.file_uploader(key="upload").set_value((name, data, mime))
    at.run()
    assert not at.exception, at.exception
    return at


def _session(at):
    return at.session_state["face3d"]


def _page_text(at) -> str:
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "exception"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


def _labels(at) -> list[str]:
    return [b.label for b in at.get("download_button")]


def test_upload_shows_photo_depth_map_3d_view_and_downloads(app, astronaut_png):
    at = _upload(app, "../My photo (1).png", astronaut_png)
    assert not at.error
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert any("Landmarks" in c for c in captions) and any("Depth map" in c for c in captions)
    (chart,) = at.get("plotly_chart")
    spec = chart.proto.spec
    assert len(spec.encode()) < 6e6
    figure = json.loads(spec)
    assert figure["data"][0]["type"] == "mesh3d" and figure["layout"]["meta"]["view"]
    labels = _labels(at)
    assert labels[:2] == ["Depth PNG", "Depth .npy (mm)"]
    assert labels[2:] == MESH_LABELS
    text = _page_text(at)
    # What the reconstruction knows: the name as given (escaped, not a path), size, scale.
    assert "../My photo (1).png" in text and "mm wide" in text
    assert "iris" in text and "landmarks" in text and "ms" in text
    # the depth backend said in words (the default offline one is the hybrid)
    assert "<th>Depth</th><td>hybrid (the fitted face model blended with" in text
    assert "<th>Camera</th><td>focal length guessed" in text  # a PNG without EXIF
    assert _session(at).runs == {"detect": 1, "depth": 1}


def test_the_photo_exif_focal_length_is_used_and_shown(app, astronaut_png):
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(astronaut_png)).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif, quality=95)
    at = _upload(app, "phone.jpg", buffer.getvalue(), "image/jpeg")
    rec = _session(at).rec
    assert rec.camera["focal_source"] == "exif"
    focal = 28 * np.hypot(512, 512) / 43.267
    assert rec.camera["focal_px"] == pytest.approx(focal)
    row = f"<th>Camera</th><td>28 mm-equivalent lens ({focal:.0f} px), from the photo&#x27;s EXIF"
    assert row in _page_text(at)


def test_parameter_changes_rerun_only_what_they_affect(app, astronaut_png):
    at = _upload(app, "face.png", astronaut_png)
    session = _session(at)
    first = session.rec
    at.sidebar.slider(key="smooth").set_value(2.0).run()
    smooth = session.rec
    assert session.runs == {"detect": 1, "depth": 1, "finish": 1}
    assert smooth.config.smooth_sigma_mm == 2.0 and smooth is not first
    # The depth stage was not run again: the very same depth stage result is reused.
    assert smooth._depth_stage is first._depth_stage
    both = np.isfinite(first.depth_mm) & np.isfinite(smooth.depth_mm)
    assert np.median(np.abs(first.depth_mm[both] - smooth.depth_mm[both])) > 0.05
    at.slider(key="outlier").set_value(2.5).run()
    assert session.runs["finish"] == 2 and session.rec.config.outlier_threshold == 2.5
    at.select_slider(key="triangles").set_value(20_000).run()
    assert session.runs["finish"] == 3 and session.rec.mesh.n_cells < 25_000
    at.slider(key="margin").set_value(0.0).run()
    assert session.runs["finish"] == 4 and session.rec.mask.sum() < first.mask.sum()
    # Display settings and solid options re-run nothing.
    at.segmented_control(key="mode").set_value("depth").run()
    at.slider(key="exaggeration").set_value(2.0).run()
    at.number_input(key="width_mm").set_value(80.0).run()
    assert session.runs == {"detect": 1, "depth": 1, "finish": 4}
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["intensity"]
    # Another depth backend: a new depth stage, but the faces are not searched again.
    at.selectbox(key="depth").set_value("landmarks").run()
    assert session.runs == {"detect": 1, "depth": 2, "finish": 4}
    assert session.rec.config.smooth_sigma_mm == 2.0
    assert not at.exception and not at.error


def test_neural_depth_without_weights_falls_back_and_says_so(app, astronaut_png, monkeypatch,
                                                           tmp_path):  # fmt: skip
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty weights cache
    at = _upload(app, "face.png", astronaut_png)
    at.selectbox(key="depth").set_value("midas").run()
    warning = at.warning[0].value.replace("\\", "")  # shown literally (Markdown escaped)
    assert "weights are not on this server" in warning
    assert "face3d-mesh models download dpt_hybrid_384" in warning
    assert _session(at).rec.depth_info["backend"] == "hybrid"  # the offline default
    assert "No neural depth weights" in at.sidebar.caption[0].value
    assert not list(tmp_path.rglob("*.pt"))  # nothing was downloaded


def test_a_small_face_gets_a_warning(app, astronaut_rgb):
    import cv2

    at = _upload(app, "face.png", _png(cv2.resize(astronaut_rgb, (80, 80))))
    assert not at.error and len(at.get("plotly_chart")) == 1  # reconstructed all the same
    (warning,) = [w.value.replace("\\", "") for w in at.warning]
    assert warning.startswith("The face is small in the photo")


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG file whose header says width × height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_bad_files_give_a_plain_message_and_the_next_upload_works(app, astronaut_png, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where uploads are put briefly
    gray = np.full((400, 400, 3), 128, np.uint8)
    cases = [
        ("notes.jpg", b"shopping list: eggs, milk\n" * 20, "could not be opened as a photo"),
        ("cut.png", astronaut_png[: len(astronaut_png) // 2], "could not be opened as a photo"),
        ("huge.png", _png_claiming(20_000, 20_000), "could not be opened as a photo"),
        ("wall.png", _png(gray), "No face was found"),
        ("big.jpg", b"\xff\xd8" + bytes(26 * 1024 * 1024), "the limit is 25 MB"),
    ]
    for name, data, message in cases:
        at = _upload(app, name, data)
        assert len(at.error) == 1 and message in at.error[0].value, (name, at.error)
        assert name in at.error[0].value
        assert not at.get("plotly_chart") and not _labels(at)
        text = _page_text(at)
        assert "Traceback" not in text and "face3d-web-" not in text, text
        at = _upload(app, "good.png", astronaut_png)
        assert not at.error and len(at.get("plotly_chart")) == 1, name
    assert "megapixels" in _upload(app, "huge.png", _png_claiming(20_000, 20_000)).caption[0].value
    # A file name is shown literally, never as Markdown (no link, no formula, no HTML).
    at = _upload(app, "[click](http://x.org) $x$ <b>.png", b"junk")
    assert "\\[click\\](http://x.org) \\$x\\$ \\<b\\>.png" in at.error[0].value
    # Every file was read except the one over the limit: 4 bad, 5 good, 2 more bad.
    assert _session(at).runs["detect"] == 4 + 5 + 2
    assert list(tmp_path.iterdir()) == []  # every temporary upload copy was removed


@pytest.fixture(scope="module")
def two_faces(astronaut_rgb) -> bytes:
    canvas = np.concatenate([astronaut_rgb, astronaut_rgb[:, ::-1]], axis=1)
    return _png(canvas)


def test_several_faces_give_a_numbered_picker(app, two_faces):
    at = _upload(app, "pair.png", two_faces)
    (picker,) = at.radio
    assert picker.label == "Which face?" and picker.options == ["Face 1 (largest)", "Face 2"]
    assert "2 faces" in at.info[0].value
    session = _session(at)
    first = session.rec
    assert first.faces_found == 2
    picker.set_value(1).run()
    second = session.rec
    # The other face, reconstructed without searching the photo again.
    assert session.runs == {"detect": 1, "depth": 2}
    assert (first.nose_px[0] < 512) != (second.nose_px[0] < 512)


def test_sample_button_and_old_results_are_freed(app, astronaut_png):
    app.button[0].click().run()
    assert len(app.get("plotly_chart")) == 1 and "astronaut.png (sample)" in _page_text(app)
    session = _session(app)
    refs = []
    for index in range(4):
        _upload(app, f"photo{index}.png", astronaut_png)
        refs.append(weakref.ref(session.rec))
    # Only the current photo's reconstruction is alive, and the old ones are freed at once
    # (no reference cycle keeps their arrays waiting for the garbage collector).
    assert [r() is None for r in refs] == [True, True, True, False]
    assert session.runs["detect"] == 4


def test_downloads_hold_full_meshes_and_the_cli_depth_files(astronaut_rec, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    from face3d_mesh.depth_io import save_depth

    rec = astronaut_rec
    items = {d.label: d for d in mesh_downloads(lambda: rec, "ann", width_mm=80.0, base_mm=4.0)}
    assert list(items) == MESH_LABELS
    assert items["STL"].file_name == "ann.stl" and items["Solid STL"].file_name == "ann_solid.stl"
    stl = trimesh.load(io.BytesIO(items["STL"].make()), file_type="stl")
    assert len(stl.faces) == rec.mesh.n_cells  # full resolution, not the view's copy
    solid = trimesh.load(io.BytesIO(items["Solid STL"].make()), file_type="stl")
    assert solid.is_watertight and solid.extents[0] == pytest.approx(80.0, abs=0.5)
    with zipfile.ZipFile(io.BytesIO(items["OBJ (zip)"].make())) as zf:
        assert sorted(zf.namelist()) == ["ann.mtl", "ann.obj", "ann_texture.png"]
        assert b"mtllib ann.mtl" in zf.read("ann.obj")
        assert b"map_Kd ann_texture.png" in zf.read("ann.mtl")
    ply = trimesh.load(io.BytesIO(items["PLY"].make()), file_type="ply")
    assert ply.visual.vertex_colors.shape[0] == rec.mesh.n_points
    png, npy = depth_downloads(lambda: rec, "ann")
    save_depth(rec.depth_mm, tmp_path / "d.png")
    assert png.make() == (tmp_path / "d.png").read_bytes()  # the `depth` command's picture
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.make())), rec.depth_mm)


def test_glb_download_is_textured_and_in_metres(astronaut_rec):
    trimesh = pytest.importorskip("trimesh")
    items = {d.label: d for d in mesh_downloads(lambda: astronaut_rec, "ann")}
    scene = trimesh.load(io.BytesIO(items["GLB"].make()), file_type="glb")
    (geometry,) = scene.geometry.values()
    width_mm = astronaut_rec.mesh.bounds[1] - astronaut_rec.mesh.bounds[0]
    assert geometry.extents[0] == pytest.approx(width_mm / 1000, rel=0.01)
    assert geometry.visual.material.baseColorTexture.size[0] > 100  # the photo


@pytest.mark.parametrize(
    ("given", "stem"),
    [
        ("../Ma photo (1).JPG", "Ma_photo_1"),
        ("C:\\Users\\x\\Élodie.png", "Elodie"),
        ("/etc/passwd", "passwd"),
        ("..", "face"),
        (".bashrc", "bashrc"),
        ("", "face"),
        (None, "face"),
        ("a" * 300 + ".png", "a" * 60),
    ],
)
def test_safe_stem(given, stem):
    assert safe_stem(given) == stem


def test_figure_modes_sizes_and_exaggeration(astronaut_rec):
    preview = astronaut_rec.preview_mesh(max_triangles=40_000)
    kinds = {}
    for mode in MODES:
        fig = face_figure(preview, mode=mode)
        kinds[mode] = fig.data[0].type
        assert figure_bytes(fig) < 6e6
    assert kinds == {"textured": "mesh3d", "shaded": "mesh3d", "points": "scatter3d",
                     "depth": "mesh3d"}  # fmt: skip
    depth = face_figure(preview, mode="depth").data[0]
    assert "mm" in depth.colorbar.title.text
    np.testing.assert_allclose(depth.intensity, -np.asarray(preview.points)[:, 2], atol=1e-4)
    points = face_figure(preview, mode="points").data[0]
    closer = np.asarray(points.marker.color)
    assert np.corrcoef(closer, np.asarray(preview.points)[:, 2])[0, 1] > 0.99  # lighter = closer
    flat, deep = face_figure(preview).data[0], face_figure(preview, exaggeration=2.0).data[0]
    np.testing.assert_allclose(np.asarray(deep.y), 2 * np.asarray(flat.y), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(deep.z), np.asarray(flat.z))  # height unchanged


def test_importing_the_package_and_cli_loads_no_web_framework():
    code = (
        "import sys, face3d_mesh, face3d_mesh.frontends.cli, face3d_mesh.frontends.web;"
        "print([m for m in ('streamlit', 'plotly') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "face3d_mesh", *args], capture_output=True, text=True, **kwargs
    )


def test_web_command_refuses_a_bad_or_busy_port():
    import socket

    assert _cli("web", "--port", "0").returncode == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli("web", "--port", str(port), timeout=60)
    assert result.returncode == 2 and "Pass --port N" in result.stderr


def test_web_command_serves_the_app_and_stops_on_ctrl_c():
    sys.path.insert(0, str(ROOT / "scripts"))
    from web_driver import WebServer

    with WebServer() as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(server.url + "/_stcore/health", timeout=10) as answer:
            assert answer.read() == b"ok"
        with urllib.request.urlopen(server.url, timeout=10) as answer:
            assert b"<html" in answer.read().lower()
        code = server.stop()
    assert code == 0 and "face3d-mesh web: stopped" in server.lines
    assert os.path.isfile(APP_PATH.parent / ".streamlit" / "config.toml")


def test_annotate_photo_numbers_the_faces_and_frames_the_chosen_one():
    from face3d_mesh.presentation import annotate_photo

    photo = np.full((400, 800, 3), 60, np.uint8)
    boxes = [(50.0, 100.0, 300.0, 350.0), (450.0, 100.0, 700.0, 350.0)]
    plain = annotate_photo(photo, max_side=800)
    assert np.array_equal(annotate_photo(photo, max_side=800, faces=boxes[:1]), plain)
    drawn = annotate_photo(photo, max_side=800, faces=boxes, selected=1)
    yellow = np.all(drawn == (255, 220, 0), axis=2)
    white = np.all(drawn == (255, 255, 255), axis=2)
    # The chosen face (the right one) is framed in yellow, the other in white.
    assert yellow[:, 400:].sum() > 500 and yellow[:, :400].sum() == 0
    assert white[:, :400].sum() > 500 and white[:, 400:].sum() == 0
    # Its number label is a filled patch above the frame's top-left corner.
    assert yellow[76:98, 451:468].mean() > 0.5

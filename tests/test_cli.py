"""The command line, end to end in subprocesses: outputs, messages and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from face3d_mesh.errors import ImageError, NoFaceError, OutputError


def run(args, env, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "face3d_mesh", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def assert_clean_error(result, code, pattern):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(pattern in line for line in lines), result.stderr
    assert lines[-1].startswith("face3d-mesh")


def test_export_stl_obj_ply(tmp_path, astronaut_path, clean_env):
    import trimesh

    result = run(["export", astronaut_path, "-o", tmp_path / "face.stl"], clean_env)
    assert result.returncode == 0, result.stderr
    assert "scale:" in result.stderr and "iris" in result.stderr
    data = (tmp_path / "face.stl").read_bytes()
    n = int.from_bytes(data[80:84], "little")
    assert len(data) == 84 + 50 * n and n > 50_000  # binary STL

    assert (
        run(["export", astronaut_path, "-o", tmp_path / "face.obj", "-q"], clean_env).returncode
        == 0
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "face.mtl" in names and any(n.endswith(".png") for n in names)

    assert run(["export", astronaut_path, "-o", tmp_path / "face.ply"], clean_env).returncode == 0
    ply = trimesh.load(tmp_path / "face.ply", process=False)
    assert ply.visual.vertex_colors.shape[0] == len(ply.vertices)


def test_export_printable_solid(tmp_path, astronaut_path, clean_env):
    import trimesh

    out = tmp_path / "bust.stl"
    args = ["export", astronaut_path, "-o", out, "--solid", "--width-mm", "80", "--base-mm", "3"]
    result = run([*args, "--edge-mm", "2"], clean_env)
    assert result.returncode == 0, result.stderr
    solid = trimesh.load(out, process=True)
    assert solid.is_watertight and solid.is_winding_consistent and solid.volume > 0
    assert solid.extents[0] == pytest.approx(80, abs=0.01)


def test_export_glb_and_3mf(tmp_path, astronaut_path, clean_env):
    import zipfile

    import trimesh

    result = run(["export", astronaut_path, "-o", tmp_path / "face.glb"], clean_env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.glb"]  # texture inside
    (face,) = trimesh.load(tmp_path / "face.glb").geometry.values()
    assert isinstance(face.visual, trimesh.visual.TextureVisuals)
    assert 0.08 < face.extents[0] < 0.3  # metres: a face is ~10-20 cm wide
    out = tmp_path / "bust.3mf"
    result = run(["export", astronaut_path, "-o", out, "--solid", "--width-mm", "80"], clean_env)
    assert result.returncode == 0, result.stderr
    assert "80.0 ×" in result.stderr  # the size it reports is the written one, mm
    with zipfile.ZipFile(out) as z:
        assert 'unit="millimeter"' in z.read("3D/3dmodel.model").decode()
    solid = trimesh.load(out, force="mesh")
    assert solid.is_watertight and solid.extents[0] == pytest.approx(80, abs=0.01)


def test_every_mesh_format_is_offered():
    from face3d_mesh.exporters import supported_extensions
    from face3d_mesh.frontends.cli import build_parser

    for ext in supported_extensions():
        args = build_parser().parse_args(["batch", "in", "-o", "out", "--format", ext[1:]])
        assert args.format == ext[1:]


def test_depth_png_and_npy(tmp_path, astronaut_path, clean_env):
    import cv2

    assert run(["depth", astronaut_path, "-o", tmp_path / "d.png"], clean_env).returncode == 0
    gray = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert gray.dtype == np.uint8 and gray.shape == (512, 512)
    assert gray[0, 0] == 0 and gray.max() == 255  # background black, nearest white
    assert (
        run(["depth", astronaut_path, "-o", tmp_path / "d16.png", "--16bit"], clean_env).returncode
        == 0
    )
    assert cv2.imread(str(tmp_path / "d16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert run(["depth", astronaut_path, "-o", tmp_path / "d.npy"], clean_env).returncode == 0
    depth = np.load(tmp_path / "d.npy")
    assert depth.dtype == np.float32 and np.isnan(depth[0, 0])
    # Lighter = closer: the brightest pixel is where the depth is smallest.
    v, u = np.unravel_index(np.argmax(gray), gray.shape)
    assert depth[v, u] <= np.nanpercentile(depth, 1)


def test_info_lists_faces_and_scale(astronaut_path, clean_env):
    result = run(["info", astronaut_path, "--json"], clean_env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert len(info["faces"]) == 1
    assert info["faces"][0]["scale_source"] == "iris+biocular_width_prior"
    assert info["focal_length_px"] is None
    text = run(["info", astronaut_path], clean_env).stdout
    assert "face 0" in text and "mm/px" in text and "roll" in text
    assert "depth: hybrid (no weights" in text
    assert "camera: no focal length in the photo's EXIF" in text


def test_the_camera_is_said_from_exif_or_as_guessed(tmp_path, astronaut_path, clean_env):
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    Image.open(astronaut_path).convert("RGB").save(tmp_path / "p.jpg", exif=exif, quality=95)
    focal = 28 * np.hypot(512, 512) / 43.267
    info = json.loads(run(["info", tmp_path / "p.jpg", "--json"], clean_env).stdout)
    assert info["focal_length_px"] == pytest.approx(focal, abs=0.05)
    assert info["camera"] == f"28 mm-equivalent lens ({focal:.0f} px), from the photo's EXIF"
    result = run(["export", tmp_path / "p.jpg", "-o", tmp_path / "p.stl"], clean_env)
    assert result.returncode == 0, result.stderr
    assert f"camera: 28 mm-equivalent lens ({focal:.0f} px), from the photo's EXIF" in (
        result.stderr
    )
    result = run(["export", astronaut_path, "-o", tmp_path / "a.stl"], clean_env)
    assert "camera: focal length guessed" in result.stderr


def test_info_sets_the_scale_as_export_does(tmp_path, astronaut_path, clean_env):
    """``info`` measures the scale as ``export`` sets it (through the face model's fit,
    which takes the focal length), with ``--focal-px`` as export takes it."""
    import re

    info = json.loads(
        run(["info", astronaut_path, "--json", "--focal-px", "700"], clean_env).stdout
    )
    assert info["focal_length_px"] == 700
    assert info["camera"] == "42 mm-equivalent lens (700 px), as given"
    result = run(
        ["export", astronaut_path, "-o", tmp_path / "a.stl", "--focal-px", "700"], clean_env
    )
    printed = re.search(r"scale: ([0-9.]+) mm/px", result.stderr).group(1)
    # (info's thorough face search can move the landmarks by a fraction of a pixel: ~0.2 %)
    assert info["faces"][0]["mm_per_px"] == pytest.approx(float(printed), abs=0.006)
    assert_clean_error(run(["info", astronaut_path, "--focal-px", "5"], clean_env), 2, "too short")


def test_info_into_a_closed_pipe_stops_quietly(astronaut_path, clean_env):
    """``face3d-mesh info photo | head -1``: the reader gone, no "internal error"."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "face3d_mesh", "info", astronaut_path, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env,
    )  # fmt: skip
    proc.stdout.close()  # before it writes anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert b"error" not in err and b"Traceback" not in err


@pytest.mark.parametrize(
    "content, code, message",
    [
        (None, ImageError.exit_code, "no such file"),
        (b"", ImageError.exit_code, "empty"),
        (b"GIF89a not really", ImageError.exit_code, "photo.jpg"),
        (b"plain text, not a photo", ImageError.exit_code, "not an image"),
    ],
)
def test_bad_inputs_fail_cleanly_without_output(tmp_path, clean_env, content, code, message):
    photo = tmp_path / "photo.jpg"
    if content is not None:
        photo.write_bytes(content)
    out = tmp_path / "face.stl"
    result = run(["export", photo, "-o", out], clean_env)
    assert_clean_error(result, code, message)
    assert not out.exists() and not list(tmp_path.glob(".face.stl*"))


def test_no_face_keeps_an_existing_output_intact(tmp_path, clean_env):
    import cv2

    photo = tmp_path / "wall.png"
    cv2.imwrite(str(photo), np.full((300, 400, 3), 128, np.uint8))
    out = tmp_path / "face.stl"
    out.write_bytes(b"precious")
    result = run(["export", photo, "-o", out], clean_env)
    assert_clean_error(result, NoFaceError.exit_code, "no face found")
    assert out.read_bytes() == b"precious"


def test_a_small_face_is_exported_with_a_note(tmp_path, astronaut_path, clean_env):
    small = cv2.resize(cv2.imread(str(astronaut_path)), (80, 80), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    result = run(["export", tmp_path / "small.png", "-o", tmp_path / "face.stl"], clean_env)
    assert result.returncode == 0, result.stderr
    assert "note: the face is small in the photo" in result.stderr
    assert (tmp_path / "face.stl").stat().st_size > 1000
    result = run(["export", astronaut_path, "-o", tmp_path / "face.stl"], clean_env)
    assert result.returncode == 0 and "face is small" not in result.stderr


def test_output_and_usage_errors(tmp_path, astronaut_path, clean_env):
    result = run(["export", astronaut_path, "-o", tmp_path / "face.xyz"], clean_env)
    assert_clean_error(result, OutputError.exit_code, ".xyz")
    # before any work, with --solid too (a photo without a face would say so, exit 4)
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((64, 64, 3), 128, np.uint8))
    result = run(["export", tmp_path / "grey.png", "-o", tmp_path / "f.xyz", "--solid"], clean_env)
    assert_clean_error(result, OutputError.exit_code, ".xyz")
    result = run(["export", astronaut_path, "-o", tmp_path / "missing" / "face.stl"], clean_env)
    assert_clean_error(result, OutputError.exit_code, "does not exist")
    # a missing folder is found before the work too (not after it, nor as "no face")
    for command, name in (("export", "face.obj"), ("depth", "depth.png")):
        result = run([command, tmp_path / "grey.png", "-o", tmp_path / "missing" / name], clean_env)
        assert_clean_error(result, OutputError.exit_code, "does not exist")
        assert "note:" not in result.stderr and "scale:" not in result.stderr
    (tmp_path / "a_file").write_text("")  # it said "folder .../a_file does not exist"
    result = run(["export", astronaut_path, "-o", tmp_path / "a_file" / "face.stl"], clean_env)
    assert_clean_error(result, OutputError.exit_code, "a_file is a file, not a folder")
    result = run(["export", astronaut_path, "-o", tmp_path / "f.stl", "--base-mm", "-1"], clean_env)
    assert_clean_error(result, 2, "base-mm")
    result = run(
        ["export", astronaut_path, "-o", tmp_path / "f.stl", "--width-mm", "50"], clean_env
    )
    assert_clean_error(result, 2, "--solid")
    result = run(["export", astronaut_path, "-o", tmp_path / "f.stl", "--edge-mm", "2"], clean_env)
    assert_clean_error(result, 2, "--solid")
    result = run(
        ["export", astronaut_path, "-o", tmp_path / "f.stl", "--solid", "--edge-mm", "-1"],
        clean_env,
    )
    assert_clean_error(result, 2, "edge-mm")
    result = run(["depth", astronaut_path, "-o", tmp_path / "d.jpg"], clean_env)
    assert_clean_error(result, OutputError.exit_code, ".png or .npy")
    assert run([], clean_env).returncode == 2
    assert not list(tmp_path.glob("f.stl*"))


@pytest.mark.parametrize(
    "option, value, message",
    [
        # Each ran out of memory (a margin or kernel of 1e9 mm) or wrote a mesh metres wide
        # (a focal length of 1e-6 px, most likely not meant in pixels) before it was checked.
        ("--smooth-mm", "1e9", "smoothing sigma must be 0..20 mm"),
        ("--mask-margin-mm", "1e9", "mask margin must be 0..25 mm"),
        ("--focal-px", "1e-6", "too short for a 512-pixel photo"),
        ("--focal-px", "100", "at least 102.4 px"),
    ],
)
def test_out_of_range_options_are_usage_errors(
    tmp_path, astronaut_path, clean_env, option, value, message
):
    result = run(["export", astronaut_path, "-o", tmp_path / "f.stl", option, value], clean_env)
    assert_clean_error(result, 2, message)
    assert not list(tmp_path.glob("f.stl*"))


def test_import_is_light(clean_env):
    code = (
        "import sys, face3d_mesh; face3d_mesh.ReconstructionConfig; "
        "heavy = [m for m in ('torch', 'mediapipe', 'vtk', 'pyvista', 'timm', 'cv2') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize(
    "command, photo_name, output_name",
    [
        ("depth", "me.png", "me.png"),  # replaced the photo with its depth map, exit 0
        ("export", "me_texture.png", "me.obj"),  # the OBJ's texture PNG is the photo
        ("view", "me.png", "me.png"),  # --screenshot
    ],
)
def test_an_output_that_is_the_input_photo_is_refused(
    tmp_path, astronaut_path, clean_env, command, photo_name, output_name
):
    photo = tmp_path / photo_name
    photo.write_bytes(astronaut_path.read_bytes())
    flag = "--screenshot" if command == "view" else "-o"
    result = run([command, photo, flag, tmp_path / output_name], clean_env)
    assert_clean_error(result, OutputError.exit_code, "is the input photo")
    assert photo.read_bytes() == astronaut_path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [photo_name]

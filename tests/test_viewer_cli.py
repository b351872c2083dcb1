"""``face3d_mesh view`` end to end in subprocesses (headless: --screenshot, and no display)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from viewer_helpers import make_fake_reconstruction

REPO = Path(__file__).resolve().parents[1]


def run(args, env, timeout=300):
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "face3d_mesh", "view", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def headless(tmp_path):
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


@pytest.fixture(scope="module")
def stl_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mesh") / "face.stl"
    make_fake_reconstruction().mesh.save(str(path))
    return path


def test_view_mesh_file_screenshot(stl_file, tmp_path, headless):
    from PIL import Image

    out = tmp_path / "view.png"
    r = run(
        [
            stl_file,
            "--screenshot",
            out,
            "--size",
            "640x360",
            "--azimuth",
            "30",
            "--elevation",
            "10",
            "--mode",
            "shaded",
        ],
        headless,
    )
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (640, 360)
    assert str(out) in r.stdout
    assert "Traceback" not in r.stderr and "bad X server" not in r.stderr


def test_view_without_display_fails_cleanly(stl_file, headless):
    r = run([stl_file], headless)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "no display available" in lines[0] and "--screenshot" in lines[0]


def test_view_bad_screenshot_folder(stl_file, tmp_path, headless):
    r = run([stl_file, "--screenshot", tmp_path / "missing" / "x.png"], headless)
    assert r.returncode == 6, r.stderr
    assert "does not exist" in r.stderr


def test_view_photo_screenshot(tmp_path, headless):
    """The real pipeline on the sample photo (skipped where it cannot run)."""
    import importlib

    from PIL import Image

    try:
        for name in ("pipeline", "filtering", "surface"):
            importlib.import_module(f"face3d_mesh.{name}")
    except ImportError as exc:
        pytest.skip(f"pipeline not available: {exc}")
    out = tmp_path / "photo.png"
    r = run(
        [
            REPO / "sample_data" / "astronaut.png",
            "--screenshot",
            out,
            "--size",
            "800x450",
            "--mode",
            "depth",
        ],
        headless,
    )
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (800, 450)


@pytest.mark.parametrize(
    "name, content", [("bad.stl", "solid x\n garbage\n"), ("bad.ply", "ply\nformat ascii 1.0\n")]
)
def test_a_corrupt_mesh_file_is_one_line_of_error(name, content, tmp_path, headless):
    # VTK's readers printed a dozen lines of their own before the error ("ERROR:root:
    # STLReader error reading file...", the algorithm's vtkInformation dump).
    path = tmp_path / name
    path.write_text(content)
    result = run([path, "--screenshot", tmp_path / "shot.png"], headless)
    assert result.returncode == 3, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"face3d-mesh: error: {path}: the file holds no triangles"], lines
    assert not (tmp_path / "shot.png").exists()

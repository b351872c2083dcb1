"""Every example script under scripts/examples runs and prints what it promises."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "scripts" / "examples"


def run(name, *args, env):
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_export_folder_to_stl(tmp_path, astronaut_path, clean_env):
    import trimesh

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(astronaut_path, photos / "a.png")
    result = run("export_folder_to_stl.py", photos, tmp_path / "out", env=clean_env)
    assert result.returncode == 0, result.stderr
    solid = trimesh.load(tmp_path / "out" / "a.stl")
    assert solid.is_watertight and abs(solid.extents[0] - 80) < 0.01
    assert (tmp_path / "out" / "summary.json").exists()


def test_measure_landmarks(astronaut_path, clean_env):
    result = run("measure_landmarks.py", astronaut_path, env=clean_env)
    assert result.returncode == 0, result.stderr
    width = float(re.search(r"outer eye corners.*?([\d.]+) mm", result.stdout).group(1))
    assert 70 < width < 110


def test_compare_depth_maps(astronaut_path, head_scan_path, clean_env):
    same = run("compare_depth_maps.py", astronaut_path, astronaut_path, env=clean_env)
    assert same.returncode == 0, same.stderr
    assert "median 0.00 mm" in same.stdout
    other = run("compare_depth_maps.py", astronaut_path, head_scan_path, env=clean_env)
    median = float(re.search(r"median ([\d.]+) mm", other.stdout).group(1))
    assert median > 0.5

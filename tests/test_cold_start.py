"""What a cold ``export`` imports: only what its path needs.

Its timing is measured by scripts/bench_cold_start.py, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _run(code, env):
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_export_of_a_solid_imports_no_drawing_network_or_mesh_code(
    tmp_path, astronaut_path, clean_env
):
    code = (
        "import json, sys\n"
        "from face3d_mesh.frontends.cli import main\n"
        f"rc = main(['export', {str(astronaut_path)!r}, '-o', {str(tmp_path / 'b.stl')!r}, "
        "'--solid', '-q'])\n"
        "print(json.dumps([rc, sorted(m for m in ('matplotlib', 'torch', 'trimesh', 'skimage', "
        "'scipy', 'pyvista', 'vtk', 'PIL.ImageDraw') if m in sys.modules)]))\n"
    )
    rc, heavy = _run(code, clean_env)
    assert rc == 0 and (tmp_path / "b.stl").stat().st_size > 100_000
    assert heavy == []


def test_mediapipe_drawing_helpers_load_when_used(astronaut_path, clean_env):
    code = (
        "import json, sys\n"
        "from face3d_mesh.image import load_image\n"
        "from face3d_mesh.landmarks import detect_faces\n"
        f"faces = detect_faces(load_image({str(astronaut_path)!r}))\n"
        "before = 'matplotlib' in sys.modules\n"
        "import mediapipe as mp\n"
        "from mediapipe.python.solutions.drawing_utils import DrawingSpec\n"
        "style = mp.solutions.drawing_styles.get_default_face_mesh_tesselation_style()\n"
        "ok = callable(mp.solutions.drawing_utils.draw_landmarks) and style.thickness > 0\n"
        "print(json.dumps([len(faces), before, ok, 'matplotlib' in sys.modules, "
        "mp.__version__]))\n"
    )
    n_faces, before, ok, after, version = _run(code, clean_env)
    assert n_faces == 1
    assert before is False  # the face mesh ran without matplotlib
    assert ok and after is True  # MediaPipe's drawing helpers still work, loading it then
    assert version.startswith("0.10.")

"""Rendering with VTK first, then loading the neural depth stack, must not crash.

Mesa's software OpenGL and triton (imported by torch/timm) each bundle an LLVM; loaded in
the wrong order the process dies. The viewer loads triton first; this runs the dangerous
order in a fresh process, as a user session would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scan_renders import needs_scan


def test_render_then_import_timm(clean_env, tmp_path):
    code = (
        "import pyvista as pv, face3d_mesh\n"
        f"face3d_mesh.show(pv.Sphere(), screenshot={str(tmp_path / 'a.png')!r})\n"
        "import timm, torch\n"
        "print('ok', float(torch.ones(2).sum()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok 2.0" in result.stdout


@needs_scan
def test_render_a_scan_case_then_import_timm(clean_env):
    """The scan renders the accuracy tests make (off-screen VTK) leave torch importable."""
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from scan_renders import render_scan\n"
        "rgb, depth, focal = render_scan(yaw=10.0, size=256)\n"
        "import timm, torch\n"
        "print('ok', rgb.shape, float(torch.ones(2).sum()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok (256, 256, 3) 2.0" in result.stdout

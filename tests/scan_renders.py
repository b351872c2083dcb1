"""Renders of the shared head scan made at test time (``scripts/render_scan_cases.py``).

The scan lives in ``../shared/fidelity/scan`` beside the project; tests that need it are
skipped with :data:`needs_scan` when it is absent. Its eyes are closed.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT.parent / "shared" / "fidelity" / "scan"

needs_scan = pytest.mark.skipif(
    not (SCAN / "LeePerrySmith.glb").is_file(), reason="head scan (../shared/fidelity) absent"
)


@lru_cache(maxsize=1)
def _renderer():
    spec = importlib.util.spec_from_file_location(
        "render_scan_cases", ROOT / "scripts" / "render_scan_cases.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.load_scan(SCAN)


def render_scan(*, lens_mm=50.0, yaw=0.0, pitch=0.0, roll=0.0, lights="key", size=768):
    """(RGB uint8 image, true depth in mm with NaN background, focal length in px)."""
    render, (mesh, texture) = _renderer()
    fx = lens_mm / 36 * size
    rot = render.rotation(yaw, pitch, roll)
    t = np.array([0.0, 0.0, 0.44 * fx]) - rot @ render.PIVOT_MODEL_MM
    image, depth = render.render(mesh, texture, rot, t, fx, size, lights)
    return np.ascontiguousarray(image[:, :, :3]), depth, fx

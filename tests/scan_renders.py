"""Renders of the shared head scan made at test time (``scripts/render_scan_cases.py``).

The scan lives in ``../shared/fidelity/scan`` beside the project; tests that need it are
skipped with :data:`needs_scan` when it is absent. Its eyes are closed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT.parent / "shared" / "fidelity" / "scan"

needs_scan = pytest.mark.skipif(
    not (SCAN / "LeePerrySmith.glb").is_file(), reason="head scan (../shared/fidelity) absent"
)


@lru_cache(maxsize=1)
def _renderer():
    module = load_script("render_scan_cases")
    return module, module.load_scan(SCAN)


@lru_cache(maxsize=2)
def _morphed(seed: int):
    render, (mesh, texture) = _renderer()
    return render.morph_scan(mesh, texture, seed)[0], texture


def render_scan_at(rot, t_mm, *, lens_mm: float, lights="key", size=768, morph=None):
    """A render at a given camera pose (``X_cam = rot X_model + t_mm``, as a case's
    ``.json`` records it), of the scan or, with ``morph=SEED``, of the scan given another
    face shape (``render_scan_cases.py --morph SEED``): (RGB uint8 image, true depth in
    mm with NaN background, focal length in px)."""
    render, (mesh, texture) = _renderer()
    if morph is not None:
        mesh, texture = _morphed(int(morph))
    fx = lens_mm / 36 * size
    image, depth = render.render(
        mesh, texture, np.asarray(rot, float), np.asarray(t_mm, float), fx, size, lights
    )
    return np.ascontiguousarray(image[:, :, :3]), depth, fx


def render_scan(*, lens_mm=50.0, yaw=0.0, pitch=0.0, roll=0.0, lights="key", size=768):
    """(RGB uint8 image, true depth in mm with NaN background, focal length in px)."""
    render, (mesh, texture) = _renderer()
    fx = lens_mm / 36 * size
    rot = render.rotation(yaw, pitch, roll)
    t = np.array([0.0, 0.0, 0.44 * fx]) - rot @ render.PIVOT_MODEL_MM
    image, depth = render.render(mesh, texture, rot, t, fx, size, lights)
    return np.ascontiguousarray(image[:, :, :3]), depth, fx


def now_like_error_mm(rec, true_depth: np.ndarray, focal_px: float) -> float:
    """The fidelity set's NoW-like 3D error of ``rec`` on a render (mm): the true surface
    seen through the face oval back-projected (principal point at the centre), the
    reconstruction's own points for the same pixels (``rec.pixel_to_mesh``) aligned to it by
    a similarity refitted on the 90 % best-matching points, the median distance from each
    true point to the nearest aligned one."""
    from scipy.spatial import cKDTree

    from face3d_mesh._model_solver import umeyama
    from face3d_mesh.mask import face_mask

    region = face_mask(rec.landmarks, true_depth.shape) & np.isfinite(true_depth)
    rows, cols = np.nonzero(region & np.isfinite(rec.depth_mm))
    z = true_depth[rows, cols].astype(np.float64)
    cy, cx = (np.asarray(true_depth.shape, float) - 1) / 2
    truth = np.column_stack([(cols - cx) * z / focal_px, (rows - cy) * z / focal_px, z])
    ours = rec.pixel_to_mesh(cols, rows, rec.depth_mm[rows, cols])
    s, rot, t = umeyama(ours, truth)
    dist = np.linalg.norm(s * ours @ rot.T + t - truth, axis=1)
    best = dist <= np.percentile(dist, 90)
    s, rot, t = umeyama(ours[best], truth[best])
    nearest, _ = cKDTree(s * ours @ rot.T + t).query(truth)
    return float(np.median(nearest))

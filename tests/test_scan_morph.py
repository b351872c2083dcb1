"""The morphed and warped head scan (``scripts/render_scan_cases.py --morph``, ``--warp``):
other face shapes for checking accuracy on more than one face, made from the shared scan
with the face model and without it."""

from __future__ import annotations

import numpy as np
import pytest
from scan_renders import _renderer, needs_scan

pytestmark = needs_scan


def _strain(mesh, moved):
    """Per edge: how much farther one end moves than the other, per mm of edge."""
    faces = np.asarray(mesh.faces).reshape(-1, 4)[:, 1:]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    points = np.asarray(mesh.points, np.float64)
    shift = np.asarray(moved.points, np.float64) - points
    change = np.linalg.norm(shift[edges[:, 0]] - shift[edges[:, 1]], axis=1)
    return change / np.linalg.norm(points[edges[:, 0]] - points[edges[:, 1]], axis=1)


@pytest.mark.parametrize("kind", ["morph_scan", "warp_scan"])
def test_another_face_shape_is_smooth_reproducible_and_of_other_proportions(kind):
    """``--morph`` (an ICT identity carried onto the scan) and ``--warp`` (a random smooth
    warp, without the face model): nothing at sd 0, the same face from the same seed, a
    smooth displacement that does not fold the surface, other proportions."""
    render, (mesh, texture) = _renderer()
    make = getattr(render, kind)
    unchanged, _ = make(mesh, texture, seed=3, sd=0.0)
    assert np.allclose(np.asarray(unchanged.points), np.asarray(mesh.points))

    shaped, info = make(mesh, texture, seed=3)
    again, _ = make(mesh, texture, seed=3)
    assert np.array_equal(np.asarray(shaped.points), np.asarray(again.points))
    assert np.array_equal(np.asarray(shaped.faces), np.asarray(mesh.faces))
    if kind == "morph_scan":
        assert 0.8 < info["model_scale"] < 1.2  # the model placed on the scan at about its size
    else:
        assert info["control_rms_mm"] == pytest.approx(3.0)

    moved = np.linalg.norm(np.asarray(shaped.points) - np.asarray(mesh.points), axis=1)
    assert 1.0 < np.median(moved) < 20.0, np.median(moved)
    # a smooth displacement: neighbouring vertices move alike, the surface does not fold
    strain = _strain(mesh, shaped)
    assert np.percentile(strain, 99) < 0.5 and strain.max() < 0.9, strain.max()
    # the back of the head stays where it was
    back = np.asarray(mesh.points)[:, 2] < np.percentile(np.asarray(mesh.points)[:, 2], 10)
    assert np.median(moved[back]) < 0.5

    before, after = render.scan_landmarks(mesh, texture), render.scan_landmarks(shaped, texture)
    # outer eye corners (33, 263) and forehead to chin (10, 152), mm
    width = [np.linalg.norm(p[33] - p[263]) for p in (before, after)]
    height = [np.linalg.norm(p[10] - p[152]) for p in (before, after)]
    assert abs(width[1] - width[0]) > 3.0 or abs(height[1] - height[0]) > 5.0, (width, height)

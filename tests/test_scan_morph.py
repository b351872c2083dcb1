"""The morphed head scan (``scripts/render_scan_cases.py --morph``): another face shape for
checking accuracy on more than one face, made from the shared scan and the face model."""

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


def test_a_morph_moves_the_face_smoothly_and_is_reproducible():
    render, (mesh, texture) = _renderer()
    unchanged, _ = render.morph_scan(mesh, texture, seed=3, sd=0.0)
    assert np.array_equal(np.asarray(unchanged.points), np.asarray(mesh.points))

    morphed, info = render.morph_scan(mesh, texture, seed=3)
    again, _ = render.morph_scan(mesh, texture, seed=3)
    assert np.array_equal(np.asarray(morphed.points), np.asarray(again.points))
    assert np.array_equal(np.asarray(morphed.faces), np.asarray(mesh.faces))
    assert 0.8 < info["model_scale"] < 1.2  # the model placed on the scan at about its size

    moved = np.linalg.norm(np.asarray(morphed.points) - np.asarray(mesh.points), axis=1)
    assert 2.0 < np.median(moved) < 20.0, np.median(moved)
    # a smooth displacement: neighbouring vertices move alike, the surface does not fold
    strain = _strain(mesh, morphed)
    assert np.percentile(strain, 99) < 0.5 and strain.max() < 0.9, strain.max()


def test_a_morphed_face_has_other_proportions():
    render, (mesh, texture) = _renderer()
    morphed, _ = render.morph_scan(mesh, texture, seed=3)
    before, after = render.scan_landmarks(mesh, texture), render.scan_landmarks(morphed, texture)
    # outer eye corners (33, 263) and forehead to chin (10, 152), mm
    width = [np.linalg.norm(p[33] - p[263]) for p in (before, after)]
    height = [np.linalg.norm(p[10] - p[152]) for p in (before, after)]
    assert abs(width[1] - width[0]) > 3.0 or abs(height[1] - height[0]) > 5.0, (width, height)


def test_a_warp_gives_another_face_without_the_face_model():
    """``--warp``: the scan's face changed by a random smooth warp (proportions and local
    shape), reproducible, unfolded, and nothing at sd 0."""
    render, (mesh, texture) = _renderer()
    unchanged, _ = render.warp_scan(mesh, texture, seed=3, sd=0.0)
    assert np.allclose(np.asarray(unchanged.points), np.asarray(mesh.points))

    warped, info = render.warp_scan(mesh, texture, seed=3)
    again, _ = render.warp_scan(mesh, texture, seed=3)
    assert np.array_equal(np.asarray(warped.points), np.asarray(again.points))
    assert np.array_equal(np.asarray(warped.faces), np.asarray(mesh.faces))
    assert info["control_rms_mm"] == pytest.approx(3.0)
    moved = np.linalg.norm(np.asarray(warped.points) - np.asarray(mesh.points), axis=1)
    assert 1.0 < np.median(moved) < 20.0, np.median(moved)
    strain = _strain(mesh, warped)
    assert np.percentile(strain, 99) < 0.5 and strain.max() < 0.9, strain.max()
    before, after = render.scan_landmarks(mesh, texture), render.scan_landmarks(warped, texture)
    width = [np.linalg.norm(p[33] - p[263]) for p in (before, after)]
    height = [np.linalg.norm(p[10] - p[152]) for p in (before, after)]
    assert abs(width[1] - width[0]) > 3.0 or abs(height[1] - height[0]) > 5.0, (width, height)
    # the back of the head stays where it was
    back = np.asarray(mesh.points)[:, 2] < np.percentile(np.asarray(mesh.points)[:, 2], 10)
    assert np.median(moved[back]) < 0.5

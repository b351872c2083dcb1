"""The identity benchmark's measure (``scripts/bench_identity.py``): how much of a true
change of shape a found change recovers, a change of size, place or angle not counted."""

from __future__ import annotations

import numpy as np
from script_modules import load_script


def _similarity_motion(points, rng):
    """The displacement of ``points`` (n, 2 or 3) by a random small similarity."""
    dim = points.shape[1]
    centred = points - points.mean(axis=0)
    w = rng.normal(0, 0.05, 3 if dim == 3 else 1)
    if dim == 2:
        rotated = np.column_stack([-centred[:, 1], centred[:, 0]]) * w[0]
    else:
        rotated = np.cross(w, centred)
    return rng.normal(0, 3, dim) + rng.normal(0, 0.05) * centred + rotated


def test_a_similarity_is_no_change_of_shape_and_the_gain_survives_one():
    bench = load_script("bench_identity")
    rng = np.random.default_rng(4)
    for dim in (2, 3):
        points = rng.normal(0, 40, (300, dim))
        basis = bench.similarity_basis(points)
        assert basis.shape == (300 * dim, 4 if dim == 2 else 7)
        motion = _similarity_motion(points, rng)
        assert np.abs(bench.shape_change(motion, basis)).max() < 1e-9 * np.abs(motion).max()

        true = bench.shape_change(rng.normal(0, 1, points.shape), basis)
        # half of the true change, plus a change of size, place and angle
        found = bench.shape_change(0.5 * true + _similarity_motion(points, rng), basis)
        gain, r2 = bench.agreement(found, true)
        assert abs(gain - 0.5) < 1e-9 and abs(r2 - 0.75) < 1e-9
        assert bench.agreement(true, true) == (1.0, 1.0)
        other = bench.shape_change(rng.normal(0, 1, points.shape), basis)
        other -= (other * true).sum() / (true * true).sum() * true  # orthogonal to ``true``
        gain, r2 = bench.agreement(other, true)
        assert abs(gain) < 1e-9 and r2 < 0

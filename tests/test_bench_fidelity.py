"""The fidelity benchmark's breakdowns (``scripts/bench_fidelity.py``): where the NoW-like
error sits (edge bands, near and far side) and the errors by yaw."""

from __future__ import annotations

import numpy as np
from script_modules import load_script


def _disc(radius_mm=60.0, px_per_mm=2.0):
    """Points of a disc-shaped region: rows, cols, distance from its edge (mm)."""
    n = int(2 * radius_mm * px_per_mm) + 1
    rows, cols = np.mgrid[0:n, 0:n]
    centre = (n - 1) / 2
    r_mm = np.hypot(rows - centre, cols - centre) / px_per_mm
    inside = r_mm <= radius_mm
    return rows[inside], cols[inside], (radius_mm - r_mm)[inside]


def test_bands_find_the_far_side_of_a_turned_head_from_the_true_depth():
    bench = load_script("bench_fidelity")
    rows, cols, edge_mm = _disc()
    for far_on_left in (True, False):
        # a head turned about its vertical axis: one side deeper than the other
        slope = 0.8 if far_on_left else -0.8
        depth = 400.0 + slope * (cols.max() / 2 - cols)
        signed = np.zeros(rows.size)
        left_edge = (edge_mm < bench.EDGE_MM) & (cols < cols.mean() - 80)
        right_edge = (edge_mm < bench.EDGE_MM) & (cols > cols.mean() + 80)
        top_edge = (edge_mm < bench.EDGE_MM) & (rows < rows.mean() - 80)
        signed[left_edge] = 2.0  # the reconstruction too near on the left
        signed[right_edge] = -0.5
        signed[top_edge] = -1.0
        bands = bench.band_errors(signed, rows, cols, edge_mm, depth, turned=True)
        far, near = (2.0, -0.5) if far_on_left else (-0.5, 2.0)
        assert bands["far_side"] == far and bands["near_side"] == near
        assert bands["top"] == -1.0 and bands["bottom"] == 0.0 and bands["interior"] == 0.0
        assert "sides" not in bands

    # not turned: both sides pooled into one band
    signed = np.where(left_edge | right_edge, 1.5, 0.0)
    bands = bench.band_errors(signed, rows, cols, edge_mm, depth, turned=False)
    assert "far_side" not in bands and "near_side" not in bands
    assert bands["sides"] == 1.5 and bands["top"] == 0.0


def test_a_band_with_too_few_points_is_left_out():
    bench = load_script("bench_fidelity")
    rows, cols, edge_mm = _disc(radius_mm=12.0, px_per_mm=1.0)
    bands = bench.band_errors(
        np.ones(rows.size), rows, cols, edge_mm, np.full(rows.size, 300.0), turned=False
    )
    assert "interior" not in bands  # nothing lies 15 mm inside a 12 mm disc
    assert bands["top"] == 1.0


def test_errors_by_yaw_put_each_case_in_one_bin():
    bench = load_script("bench_fidelity")
    yaws = [0.0, -9.9, 10.0, 25.0, -30.0, 41.0, None]
    rows = [{"yaw_deg": y, "shape_mm": 1.0 + i, "now_mm": 0.5 + i} for i, y in enumerate(yaws)]
    bins = bench._by_yaw(rows)
    assert [b["cases"] for b in bins] == [2, 1, 1, 2]
    assert bins[0]["shape_mm"] == 1.5 and bins[3]["now_mm"] == 5.0


def _shared_case(pattern: str):
    """The bench script and the first shared fidelity case matching ``pattern`` (the test
    is skipped when the shared set is not beside the project)."""
    import pytest

    bench = load_script("bench_fidelity")
    cases = sorted(bench.DEFAULT_DATA.glob(pattern))
    if not cases:
        pytest.skip("the shared fidelity set is not beside the project")
    return bench, cases[0]


def test_the_region_can_come_from_mediapipes_own_run_on_the_whole_photo():
    """``--region mediapipe``: the face oval scored is that of MediaPipe's face mesh run on
    the whole photo, not the reconstruction's own (which the mask's margin never reaches)."""
    bench, case = _shared_case("*_y+30_*.png")
    (own,) = bench.run_case(case, ["landmarks"], {}, True)
    (theirs,) = bench.run_case(case, ["landmarks"], {}, True, "mediapipe")
    assert own["coverage"] == 1.0 and theirs["coverage"] >= 0.97
    # another oval, so other pixels scored, but of the same face
    assert theirs["shape_mm"] != own["shape_mm"]
    assert abs(theirs["shape_mm"] - own["shape_mm"]) < 0.5
    assert abs(theirs["flat_shape_mm"] - own["flat_shape_mm"]) < 1.0
    assert bench.whole_photo_landmarks(np.full((256, 256, 3), 128, np.uint8)) is None


def test_the_silhouette_region_holds_a_turned_heads_nose():
    """``--region silhouette``: the own oval joined by the face mesh where it stands out
    of it; a head turned 30° shows more face than its oval, and all of it has depth."""
    bench, case = _shared_case("lps_f26_y-30_*.png")
    (own,) = bench.run_case(case, ["hybrid"], {}, True)
    (whole,) = bench.run_case(case, ["hybrid"], {}, True, "silhouette")
    assert whole["region_px"] > 1.05 * own["region_px"]
    assert own["coverage"] == 1.0 and whole["coverage"] >= 0.999
    assert whole["shape_mm"] < own["shape_mm"] + 1.0

import numpy as np
import pytest
from synth import MM_PER_PX, sphere_cap

from face3d_mesh.errors import UsageError
from face3d_mesh.filtering import filter_depth


def _interior(mask_r_mm, r, margin_mm=4.0):
    return r < mask_r_mm - margin_mm


def test_noise_free_sphere_bias_is_small():
    depth, mask, r = sphere_cap()
    out = filter_depth(depth, mask, mm_per_px=MM_PER_PX)
    assert out.dtype == np.float32 and out.shape == depth.shape
    assert np.all(np.isnan(out[~mask])) and np.all(np.isfinite(out[mask]))
    err = np.abs(out - depth)
    # Gaussian smoothing of a sphere of radius R biases depth by about sigma^2 / R
    # = 2^2 / 80 = 0.05 mm; the linear extension beyond the mask keeps the steep edge
    # (slope ~0.8) from being flattened, so the bound holds up to the mask edge.
    assert err[_interior(50, r)].max() < 0.06
    assert err[mask].max() < 0.06


def test_noise_is_reduced():
    depth, mask, r = sphere_cap()
    rng = np.random.default_rng(1)
    noisy = depth + rng.normal(0, 0.5, depth.shape).astype(np.float32)
    out = filter_depth(noisy, mask, mm_per_px=MM_PER_PX)
    inner = _interior(50, r)
    rms_in = np.sqrt(np.mean((noisy - depth)[inner] ** 2))
    rms_out = np.sqrt(np.mean((out - depth)[inner] ** 2))
    assert rms_out < 0.3 * rms_in


def test_outliers_are_removed():
    depth, mask, r = sphere_cap()
    rng = np.random.default_rng(2)
    spikes = mask & (rng.random(depth.shape) < 0.01)
    bad = depth.copy()
    bad[spikes] += rng.choice([-25.0, 25.0], spikes.sum()).astype(np.float32)
    out = filter_depth(bad, mask, mm_per_px=MM_PER_PX)
    assert np.abs(out - depth)[spikes].max() < 0.6
    # without outlier rejection, the bilateral filter alone keeps the spikes
    raw = filter_depth(bad, mask, mm_per_px=MM_PER_PX, outlier_threshold=0)
    assert np.abs(raw - depth)[spikes].max() > 10


def test_holes_are_filled_smoothly():
    depth, mask, r = sphere_cap()
    holed = depth.copy()
    hole = np.zeros_like(mask)
    hole[100:116, 140:156] = True  # 8 x 8 mm hole
    holed[hole] = np.nan
    out = filter_depth(holed, mask, mm_per_px=MM_PER_PX, bilateral_sigma_space_mm=0)
    assert np.all(np.isfinite(out[mask]))
    # Harmonic fill of a surface with Laplacian 2/R: error <= (2/R) * rho^2 / 4 with
    # rho ~ 5.7 mm (half diagonal) -> 0.2 mm.
    assert np.abs(out - depth)[hole].max() < 0.2
    kept = filter_depth(holed, mask, mm_per_px=MM_PER_PX, fill_holes=False)
    assert np.all(np.isnan(kept[hole]))
    assert np.all(np.isfinite(kept[mask & ~hole]))


def test_hole_touching_mask_edge_and_isolated_island():
    depth, mask, r = sphere_cap()
    holed = depth.copy()
    holed[120:136, 20:40] = np.nan  # straddles the left edge of the disc
    hole = mask & np.isnan(holed)
    out = filter_depth(holed, mask, mm_per_px=MM_PER_PX, bilateral_sigma_space_mm=0)
    assert np.all(np.isfinite(out[mask]))
    # maximum principle: the membrane fill stays within the depths around the hole
    ring = mask & ~hole & (np.abs(np.arange(256)[:, None] - 127.5) < 12)
    ring &= np.arange(256)[None, :] < 44
    assert depth[ring].min() - 1e-4 <= out[hole].min() and out[hole].max() <= depth[ring].max()
    # the fill has zero slope across the mask edge (nothing is known beyond it), while the
    # sphere is steep there (slope ~0.8): error up to ~slope * half the hole width.
    assert np.abs(out - depth)[hole].max() < 2.5
    np.testing.assert_array_equal(out[mask & ~hole], depth[mask & ~hole])


def test_background_never_bleeds():
    depth, mask, r = sphere_cap()
    with_bg = np.where(mask, depth, 1000.0).astype(np.float32)  # far wall behind the face
    clean = filter_depth(depth, mask, mm_per_px=MM_PER_PX)
    out = filter_depth(with_bg, mask, mm_per_px=MM_PER_PX, smooth_sigma_mm=1.0)
    ref = filter_depth(depth, mask, mm_per_px=MM_PER_PX, smooth_sigma_mm=1.0)
    assert np.array_equal(np.isnan(out), ~mask)
    np.testing.assert_array_equal(out[mask], ref[mask])
    assert np.abs(clean - depth)[mask].max() < 0.06
    assert np.abs(out - depth)[mask].max() < 0.08  # extra 1 mm Gaussian: (2^2+1^2)/80 mm


def test_step_edge_inside_face_is_preserved():
    # two flat plateaus 10 mm apart inside one mask: the bilateral filter keeps the step
    size = 128
    mask = np.zeros((size, size), bool)
    mask[10:-10, 10:-10] = True
    depth = np.where(mask, 0.0, np.nan).astype(np.float32)
    depth[:, 64:] = np.where(mask[:, 64:], 10.0, np.nan)
    rng = np.random.default_rng(3)
    noisy = depth + rng.normal(0, 0.3, depth.shape).astype(np.float32)
    out = filter_depth(noisy, mask, mm_per_px=0.5)
    assert np.abs(out[20:-20, 62] - 0.0).max() < 0.5
    assert np.abs(out[20:-20, 65] - 10.0).max() < 0.5


def test_all_steps_disabled_is_identity_and_input_untouched():
    depth, mask, r = sphere_cap()
    before = depth.copy()
    out = filter_depth(
        depth,
        mask,
        mm_per_px=MM_PER_PX,
        bilateral_sigma_space_mm=0,
        outlier_threshold=0,
        fill_holes=False,
        smooth_sigma_mm=0,
    )
    np.testing.assert_array_equal(out[mask], depth[mask])
    np.testing.assert_array_equal(depth, before)
    assert out is not depth


def test_empty_mask_gives_all_nan():
    depth, mask, r = sphere_cap()
    out = filter_depth(depth, np.zeros_like(mask), mm_per_px=MM_PER_PX)
    assert np.all(np.isnan(out))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mm_per_px": 0.0},
        {"mm_per_px": -1.0},
        {"mm_per_px": float("nan")},
        {"mm_per_px": 0.5, "bilateral_sigma_space_mm": -1},
        {"mm_per_px": 0.5, "outlier_threshold": float("inf")},
    ],
)
def test_bad_parameters(kwargs):
    depth, mask, r = sphere_cap(64, 10)
    with pytest.raises(UsageError):
        filter_depth(depth, mask, **kwargs)


def test_shape_mismatch():
    depth, mask, r = sphere_cap(64, 10)
    with pytest.raises(UsageError, match="shape"):
        filter_depth(depth, mask[:-1], mm_per_px=0.5)
    with pytest.raises(UsageError, match="2-D"):
        filter_depth(depth[None], mask[None], mm_per_px=0.5)


def test_hole_fill_dense_and_sparse_solves_agree(monkeypatch):
    """Small hole regions are solved densely (numpy), large ones sparsely (SciPy): the same
    harmonic fill either way, on outliers, gaps, a large hole and an island of holes."""
    from face3d_mesh import filtering

    rng = np.random.default_rng(3)
    h, w = 120, 100
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - 60) / 55.0) ** 2 + ((xx - 50) / 45.0) ** 2 < 1
    mask[:4, :4] = True  # a separate corner of the mask, all holes: no known neighbour
    d = (np.sin(xx / 7.0) * 5 + yy * 0.1).astype(np.float32)
    holes = mask & (rng.random((h, w)) < 0.08)
    holes |= mask & ((yy - 60) ** 2 + (xx - 35) ** 2 < 15**2)  # ~700 px: sparse by default
    holes[:4, :4] = True
    known = mask & ~holes
    d_in = np.where(known, d, 0).astype(np.float32)
    default = filtering._harmonic_fill(d_in, known, holes)
    monkeypatch.setattr(filtering, "_DENSE_FILL_MAX_PX", 0)  # every region sparse
    sparse = filtering._harmonic_fill(d_in, known, holes)
    monkeypatch.setattr(filtering, "_DENSE_FILL_MAX_PX", 10**6)  # every region dense
    dense = filtering._harmonic_fill(d_in, known, holes)
    np.testing.assert_allclose(default[holes], sparse[holes], atol=1e-4)
    np.testing.assert_allclose(dense[holes], sparse[holes], atol=1e-4)
    assert np.all(dense[:4, :4] == np.median(d_in[known]))  # the island: the median
    np.testing.assert_array_equal(dense[known], d_in[known])
    # harmonic: each filled pixel of the big hole is the mean of its 4 neighbours
    r, c = 60, 35
    assert dense[r, c] == pytest.approx(
        (dense[r - 1, c] + dense[r + 1, c] + dense[r, c - 1] + dense[r, c + 1]) / 4, abs=1e-4
    )


FINE_MM_PER_PX = 0.2  # a 2 mm bilateral sigma is 10 px: the filter runs on a reduced grid


def _fine_sphere():
    from synth import grid, sphere_depth

    _, _, r = grid(512, mm_per_px=FINE_MM_PER_PX)
    mask = r < 50.0
    return np.where(mask, sphere_depth(r), np.nan).astype(np.float32), mask, r


def test_fine_pixels_sphere_bias_and_noise_as_at_full_resolution():
    depth, mask, r = _fine_sphere()
    clean = filter_depth(depth, mask, mm_per_px=FINE_MM_PER_PX)
    assert np.all(np.isfinite(clean[mask])) and np.all(np.isnan(clean[~mask]))
    # the sigma^2 / R bias (0.05 mm) of the full-resolution filter inside; at the last
    # pixels of the rim, where the sphere is steep (slope 0.8), the linear extension's own
    # error (0.23 mm for the full-resolution filter at this pixel pitch)
    assert np.abs(clean - depth)[r < 46.0].max() < 0.05
    assert np.abs(clean - depth)[mask].max() < 0.4
    rng = np.random.default_rng(5)
    noisy = depth + rng.normal(0, 0.5, depth.shape).astype(np.float32)
    out = filter_depth(noisy, mask, mm_per_px=FINE_MM_PER_PX)
    inner = r < 46.0
    assert np.sqrt(np.mean((out - depth)[inner] ** 2)) < 0.3 * 0.5


def test_fine_pixels_step_edge_and_steep_slope_are_kept():
    # a 10 mm step, and beside it a ramp as steep as a turned face's side (2 mm per mm):
    # the reduced grid's filter neither blurs the step nor stair-steps the ramp
    size = 256
    mask = np.zeros((size, size), bool)
    mask[10:-10, 10:-10] = True
    cols = np.arange(size, dtype=np.float32)[None, :].repeat(size, 0)
    depth = np.where(cols < 128, 0.0, 10.0).astype(np.float32)
    depth[128:] = 2.0 * FINE_MM_PER_PX * cols[128:]
    depth[~mask] = np.nan
    out = filter_depth(depth, mask, mm_per_px=FINE_MM_PER_PX, outlier_threshold=0)
    rows = slice(20, 110)
    assert np.abs(out[rows, 126] - 0.0).max() < 0.5
    assert np.abs(out[rows, 129] - 10.0).max() < 0.5
    ramp = (slice(140, 236), slice(40, 216))
    assert np.abs(out[ramp] - depth[ramp]).max() < 0.1


def test_a_smoothing_kernel_wider_than_the_map_smooths_like_one_as_wide():
    depth, mask, r = sphere_cap()
    # 1e9 mm asked for a kernel of 6e9 pixels (a MemoryError); capped at the map's size it
    # flattens the cap about as much as the widest kernel that fits.
    huge = filter_depth(depth, mask, mm_per_px=MM_PER_PX, smooth_sigma_mm=1e9)
    wide = filter_depth(depth, mask, mm_per_px=MM_PER_PX, smooth_sigma_mm=1e3)
    assert np.isfinite(huge[mask]).all()
    assert np.ptp(huge[mask]) < 0.05 * np.ptp(depth[mask])
    np.testing.assert_allclose(huge[mask], wide[mask], atol=0.01 * np.ptp(depth[mask]))

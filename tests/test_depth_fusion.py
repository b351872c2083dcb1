"""fuse_relative_depth: robust scale/shift recovery and the low-frequency correction."""

from __future__ import annotations

import numpy as np
import pytest

from face3d_mesh.depth import fuse_relative_depth
from face3d_mesh.depth._fusion import robust_line_fit
from face3d_mesh.errors import UsageError

H, W = 200, 160


def _face(seed: int = 0):
    """A synthetic face: ellipse mask, bowl-shaped depth (mm, nose = 0) with fine ripples."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    r2 = ((yy - 100) / 90) ** 2 + ((xx - 80) / 70) ** 2
    mask = r2 < 1
    z = 60.0 * r2 + 1.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    return mask, z, np.random.default_rng(seed)


def _with_outliers(values, mask, rng, frac=0.10, spread=None):
    out = values.copy()
    idx = np.flatnonzero(mask.ravel())
    bad = rng.choice(idx, size=int(frac * idx.size), replace=False)
    spread = spread if spread is not None else 10 * float(np.nanstd(values[mask]))
    flat = out.ravel()
    flat[bad] += rng.normal(0.0, spread, size=bad.size) + spread
    return out


def test_recovers_scale_shift_depth_space_with_outliers():
    mask, z, rng = _face()
    scale, shift = -0.08, 40.0  # z = scale * d + shift  <=>  d = (z - shift) / scale
    d = (z - shift) / scale
    d_noisy = _with_outliers(d, mask, rng)
    z_ref = np.where(mask, z, np.nan)
    fused, info = fuse_relative_depth(d_noisy, z_ref, mask, space="depth")
    assert info.space == "depth"
    assert info.scale == pytest.approx(scale, rel=1e-6)
    assert info.shift == pytest.approx(shift, rel=1e-6)
    assert 0.85 <= info.inlier_fraction <= 0.92
    assert info.residual_median_mm < 1e-6
    assert fused.dtype == np.float32 and fused.shape == (H, W)
    assert np.isnan(fused[~mask]).all() and np.isfinite(fused[mask]).all()
    # the clean pixels are reproduced (the correction field is ~0 there)
    clean = mask & (np.abs(d_noisy - d) < 1e-9)
    np.testing.assert_allclose(fused[clean], z[clean], atol=1e-3)


def test_recovers_inverse_depth_fit_with_outliers():
    mask, z, rng = _face(1)
    dist, s, t = 550.0, 3e-6, 2e-4  # 1 / (z + D) = s * d + t
    d = (1.0 / (z + dist) - t) / s
    d_noisy = _with_outliers(d, mask, rng)
    z_ref = np.where(mask, z, np.nan)
    _, info = fuse_relative_depth(
        d_noisy, z_ref, mask, space="inverse_depth", camera_distance_mm=dist
    )
    assert info.space == "inverse_depth" and info.camera_distance_mm == dist
    assert info.scale == pytest.approx(s, rel=1e-6)
    assert info.shift == pytest.approx(t, rel=1e-6)
    assert info.residual_median_mm < 1e-6
    # auto: estimates D; the fit stays sub-0.1 mm
    _, auto = fuse_relative_depth(d_noisy, z_ref, mask)
    assert auto.residual_median_mm < 0.1
    assert 0.8 <= auto.inlier_fraction <= 0.92


def test_low_frequency_correction_keeps_detail():
    """Network with the right detail but a tilted low-frequency error: the correction
    removes the tilt and keeps the ripples the smooth reference lacks."""
    mask, z, _ = _face(2)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    ripples = 1.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    smooth_truth = z - ripples
    tilt = 0.15 * (xx - 80)  # mm, low frequency error of the network
    d = -(z + tilt) / 0.1  # relative inverse depth, larger = closer
    z_ref = np.where(mask, smooth_truth, np.nan)  # landmarks: right shape, no detail
    fused, info = fuse_relative_depth(d, z_ref, mask, space="depth")
    inner = mask & ((((yy - 100) / 80) ** 2 + ((xx - 80) / 60) ** 2) < 1)
    err_fit = np.abs(info.scale * d + info.shift - z)[inner]
    err_fused = np.abs(fused - z)[inner]
    assert np.median(err_fused) < 0.5 * np.median(err_fit)
    # detail: the fused map correlates with the ripples much better than the reference
    hp = fused - z_ref
    corr = np.corrcoef(hp[inner], ripples[inner])[0, 1]
    assert corr > 0.8
    assert info.final_residual_median_mm < info.residual_median_mm


def test_no_correction_when_disabled():
    mask, z, _ = _face(3)
    d = -(z + 5.0) / 0.2
    fused, info = fuse_relative_depth(d, np.where(mask, z, np.nan), mask, smooth_sigma_px=0)
    assert info.smooth_sigma_px == 0
    np.testing.assert_allclose(fused[mask], z[mask], atol=1e-3)


def test_nan_in_network_output_stays_nan():
    mask, z, _ = _face(4)
    d = -z / 0.1
    d[100, 80] = np.nan
    fused, _ = fuse_relative_depth(d, np.where(mask, z, np.nan), mask)
    assert np.isnan(fused[100, 80])


def test_bad_inputs():
    mask, z, _ = _face(5)
    with pytest.raises(UsageError):
        fuse_relative_depth(z[:10], z, mask)
    with pytest.raises(UsageError):
        fuse_relative_depth(z, z, mask, space="log")
    with pytest.raises(UsageError):
        fuse_relative_depth(z, z, np.zeros_like(mask))


def test_robust_line_fit_with_leverage_outliers():
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 10, 5000)
    y = 2.5 * x - 3.0 + rng.normal(0, 0.01, x.size)
    bad = rng.choice(x.size, 500, replace=False)
    x[bad] += rng.normal(50, 20, bad.size)  # gross errors in x: leverage points
    a, b, sigma = robust_line_fit(x, y)
    assert a == pytest.approx(2.5, abs=2e-3)
    assert b == pytest.approx(-3.0, abs=1e-2)
    assert sigma == pytest.approx(0.01, rel=0.2)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 11])
@pytest.mark.parametrize("dist", [350.0, 900.0])
def test_auto_fit_is_stable_across_seeds(seed, dist):
    mask, z, rng = _face(seed)
    s, t = 2e-6, 1e-4
    d = (1.0 / (z + dist) - t) / s
    d_noisy = _with_outliers(d, mask, rng, frac=0.15)
    for fusion_seed in (0, seed):
        _, info = fuse_relative_depth(d_noisy, np.where(mask, z, np.nan), mask, seed=fusion_seed)
        assert info.residual_median_mm < 0.1
        assert 0.8 <= info.inlier_fraction <= 0.87

"""Fuse a network's relative inverse depth with the landmarks' metric depth.

The networks give relative **inverse** depth ``d`` (larger = closer, unknown scale and
shift); the landmark backend gives a dense, smooth depth ``z_ref`` in millimetres (larger =
farther) whose zero is arbitrary (e.g. the nose tip). The fusion

1. fits ``d`` to ``z_ref`` robustly (least-median-of-squares start, then Tukey-biweight
   IRLS; inliers are the pixels within ``outlier_threshold`` robust standard deviations of
   the fit), either

   * in **depth** space: ``z = scale * d + shift`` -- exact for an affine-invariant
     prediction and a good approximation for a face whose relief (~10 cm) is small against
     the camera distance; or
   * in **inverse-depth** space: ``1 / (z + D) = scale * d + shift`` where ``D`` is the
     camera's distance to the reference's zero (mm). ``z_ref`` carries no absolute
     distance, so ``D`` is either given (``camera_distance_mm``) or estimated by a 1-D
     search that minimises the median absolute residual in mm;

   with ``space="auto"`` the space with the smaller median absolute residual (mm) wins;
2. corrects the low-frequency part of the remaining residual ``z_ref - z_fit`` with a
   smooth field (normalised Gaussian convolution of the inlier residuals inside the mask,
   ``sigma`` ~ 10 % of the face size), so the result keeps the network's fine detail and the
   landmarks' overall proportions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..errors import UsageError

__all__ = ["FusionInfo", "fuse_relative_depth", "robust_line_fit"]

_MIN_PIXELS = 16


@dataclass(frozen=True)
class FusionInfo:
    """What :func:`fuse_relative_depth` did.

    Attributes
    ----------
    space : str
        ``"depth"`` (``z = scale * d + shift``, mm) or ``"inverse_depth"``
        (``1 / (z + camera_distance_mm) = scale * d + shift``, 1/mm).
    scale, shift : float
        The fitted affine map (units as above).
    camera_distance_mm : float or None
        Distance assumed or estimated for the inverse-depth fit (None in depth space).
    residual_median_mm, residual_p90_mm : float
        Median and 90th percentile of ``|z_ref - z_fit|`` over the valid pixels, after the
        scale/shift fit and before the smooth correction.
    final_residual_median_mm, final_residual_p90_mm : float
        The same after the smooth correction.
    inlier_fraction : float
        Fraction of the valid pixels within ``outlier_threshold`` robust standard deviations.
    valid_pixels : int
        Pixels inside the mask where both maps are finite.
    smooth_sigma_px : float
        Standard deviation of the residual-correction Gaussian (0 = no correction).
    """

    space: str
    scale: float
    shift: float
    camera_distance_mm: float | None
    residual_median_mm: float
    residual_p90_mm: float
    final_residual_median_mm: float
    final_residual_p90_mm: float
    inlier_fraction: float
    valid_pixels: int
    smooth_sigma_px: float

    def to_dict(self) -> dict:
        """Plain ``dict`` (JSON-serialisable)."""
        return asdict(self)


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    sw = w.sum()
    if sw <= 0:
        return 0.0, float(np.median(y))
    mx = (w * x).sum() / sw
    my = (w * y).sum() / sw
    dx = x - mx
    sxx = (w * dx * dx).sum()
    if sxx <= 1e-300:
        return 0.0, float(my)
    a = (w * dx * (y - my)).sum() / sxx
    return float(a), float(my - a * mx)


def _lmeds_start(x: np.ndarray, y: np.ndarray, *, trials: int = 300, seed: int = 0):
    """Least-median-of-squares line from random point pairs (robust to leverage points)."""
    rng = np.random.default_rng((seed, 3))
    n = x.size
    sub = rng.choice(n, size=min(n, 4000), replace=False) if n > 4000 else np.arange(n)
    xs, ys = x[sub], y[sub]
    i = rng.integers(0, n, size=trials)
    j = rng.integers(0, n, size=trials)
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-12 * (np.abs(x).max() + 1e-300)
    if not ok.any():
        return _weighted_line(x, y, np.ones_like(x))
    a = (y[j][ok] - y[i][ok]) / dx[ok]
    b = y[i][ok] - a * x[i][ok]
    # median absolute residual of each candidate on the subset, in chunks (memory)
    best, best_med = 0, np.inf
    for k in range(0, a.size, 64):
        res = np.abs(ys[None, :] - (a[k : k + 64, None] * xs[None, :] + b[k : k + 64, None]))
        med = np.median(res, axis=1)
        m = int(np.argmin(med))
        if med[m] < best_med:
            best, best_med = k + m, float(med[m])
    return float(a[best]), float(b[best])


def robust_line_fit(
    x: np.ndarray,
    y: np.ndarray,
    *,
    tukey_c: float = 4.685,
    max_iter: int = 100,
    trials: int = 300,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Robust ``y ~ a * x + b``: least-median-of-squares start, then Tukey-biweight IRLS.

    Robust to gross outliers in ``x`` or ``y`` (up to roughly 40 %).

    Parameters
    ----------
    x, y : numpy.ndarray
        1-D float arrays of equal length.
    tukey_c : float
        Biweight tuning constant (in robust standard deviations).

    Returns
    -------
    (a, b, sigma) : tuple of float
        Slope, intercept and the robust (MAD) standard deviation of the residuals.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a, b = _lmeds_start(x, y, trials=trials, seed=seed)
    for _ in range(max_iter):
        r = y - (a * x + b)
        sigma = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        if sigma <= 1e-12 * (float(np.abs(y).max(initial=0.0)) + 1e-300):
            break
        u = np.abs(r) / (tukey_c * sigma)
        w = np.where(u < 1.0, (1.0 - u * u) ** 2, 0.0)
        a_new, b_new = _weighted_line(x, y, w)
        change = float(np.max(np.abs((a_new - a) * x + (b_new - b))))
        a, b = a_new, b_new
        if change <= 1e-6 * sigma:
            break
    r = y - (a * x + b)
    sigma = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return a, b, sigma


def _predict(space: str, a: float, b: float, d: np.ndarray, dist: float | None) -> np.ndarray:
    if space == "depth":
        return a * d + b
    inv = a * d + b
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(inv > 0, 1.0 / inv, np.nan) - dist
    return z


def _fit_inverse(
    d: np.ndarray, z: np.ndarray, dist: float, *, trials: int = 300, max_iter: int = 100
):
    a, b, _ = robust_line_fit(d, 1.0 / (z + dist), trials=trials, max_iter=max_iter)
    r = z - _predict("inverse_depth", a, b, d, dist)
    r = np.where(np.isfinite(r), np.abs(r), np.inf)
    return a, b, float(np.median(r))


def _normalized_blur(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    ks = int(2 * math.ceil(3 * sigma) + 1)
    num = cv2.GaussianBlur(values * weights, (ks, ks), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(weights, (ks, ks), sigma, borderType=cv2.BORDER_CONSTANT)
    out = np.zeros_like(values)
    ok = den > 1e-6
    out[ok] = num[ok] / den[ok]
    return out


def fuse_relative_depth(
    relative_inverse_depth: np.ndarray,
    reference_depth_mm: np.ndarray,
    mask: np.ndarray,
    *,
    space: str = "auto",
    camera_distance_mm: float | None = None,
    outlier_threshold: float = 3.0,
    smooth_sigma_px: float | None = None,
    max_samples: int = 10_000,
    seed: int = 0,
) -> tuple[np.ndarray, FusionInfo]:
    """Metric depth from a network's relative inverse depth and the landmarks' depth.

    Parameters
    ----------
    relative_inverse_depth : numpy.ndarray
        ``(H, W)`` float, network output: larger = closer, unknown scale and shift.
    reference_depth_mm : numpy.ndarray
        ``(H, W)`` float, dense depth from the face landmarks in mm, larger = farther, any
        offset; NaN where unknown.
    mask : numpy.ndarray
        ``(H, W)`` bool, the face region.
    space : {"auto", "depth", "inverse_depth"}
        Where the affine fit happens (see the module docstring); ``auto`` keeps the one with
        the smaller median absolute residual in mm.
    camera_distance_mm : float or None
        Distance from the camera to the reference's zero, for the inverse-depth fit; None
        estimates it (search over 150..5000 mm).
    outlier_threshold : float
        Inliers are within this many robust (MAD) standard deviations of the fit.
    smooth_sigma_px : float or None
        Gaussian sigma (pixels) of the low-frequency residual correction; None = 10 % of
        ``sqrt(mask area)``; 0 disables the correction.
    max_samples : int
        At most this many pixels (a seeded random subset) are used for the fit.
    seed : int
        Seed of that subset.

    Returns
    -------
    depth_mm : numpy.ndarray
        ``(H, W)`` float32, mm, larger = farther, in the reference's frame (same zero);
        NaN outside ``mask`` and where the network output is not finite.
    info : FusionInfo
        The chosen space, scale, shift, residuals (mm) and inlier fraction.

    Raises
    ------
    UsageError
        Shapes differ, an unknown ``space``, or fewer than 16 pixels where the mask is set
        and both maps are finite.
    """
    d_img, z_img, m_img = _checked_inputs(
        relative_inverse_depth, reference_depth_mm, mask, space, camera_distance_mm
    )
    valid = m_img & np.isfinite(d_img) & np.isfinite(z_img)
    n_valid = int(valid.sum())
    if n_valid < _MIN_PIXELS:
        raise UsageError(
            f"fuse_relative_depth needs at least {_MIN_PIXELS} valid pixels inside the mask, "
            f"got {n_valid}"
        )
    d_fit, z_fit = _subset(d_img[valid], z_img[valid], max_samples, (seed, 1))

    candidates = []
    if space in ("auto", "depth"):
        a, b, _ = robust_line_fit(d_fit, z_fit)
        med = float(np.median(np.abs(z_fit - (a * d_fit + b))))
        candidates.append((med, "depth", a, b, None))
    if space in ("auto", "inverse_depth"):
        candidates.append(_inverse_depth_candidate(d_fit, z_fit, camera_distance_mm, seed))
    # prefer the simpler depth-space fit unless inverse depth is clearly better
    candidates.sort(key=lambda c: c[0] * (1.0 if c[1] == "inverse_depth" else 0.98))
    _, chosen, a, b, dist = candidates[0]

    pred_img = _predict(chosen, a, b, d_img, dist)
    resid_img = z_img - pred_img
    abs_r = np.abs(resid_img[valid])
    abs_r = abs_r[np.isfinite(abs_r)]
    inl = _inliers(resid_img, valid, outlier_threshold)

    if smooth_sigma_px is None:
        smooth_sigma_px = 0.1 * math.sqrt(float(m_img.sum()))
    smooth_sigma_px = float(smooth_sigma_px)
    fused = pred_img.copy()
    if smooth_sigma_px > 0 and inl.any():
        values = np.where(inl, resid_img, 0.0).astype(np.float32)
        fused = fused + _normalized_blur(values, inl.astype(np.float32), smooth_sigma_px)
    fused = np.where(m_img & np.isfinite(fused), fused, np.nan).astype(np.float32)

    final = np.abs(z_img - fused)[valid]
    final = final[np.isfinite(final)]
    info = FusionInfo(
        space=chosen,
        scale=float(a),
        shift=float(b),
        camera_distance_mm=dist,
        residual_median_mm=_median(abs_r),
        residual_p90_mm=_percentile(abs_r, 90),
        final_residual_median_mm=_median(final),
        final_residual_p90_mm=_percentile(final, 90),
        inlier_fraction=float(inl.sum()) / n_valid,
        valid_pixels=n_valid,
        smooth_sigma_px=smooth_sigma_px,
    )
    return fused, info


def _checked_inputs(relative, reference, mask, space, camera_distance_mm):
    """The three maps as float64, float64 and bool arrays of one shape, or a UsageError."""
    d_img = np.asarray(relative, dtype=np.float64)
    z_img = np.asarray(reference, dtype=np.float64)
    m_img = np.asarray(mask, dtype=bool)
    if d_img.ndim != 2 or d_img.shape != z_img.shape or d_img.shape != m_img.shape:
        raise UsageError(
            "fuse_relative_depth needs three H x W arrays of the same shape, got "
            f"{d_img.shape}, {z_img.shape}, {m_img.shape}"
        )
    if space not in ("auto", "depth", "inverse_depth"):
        raise UsageError(f"invalid fusion space {space!r}; use auto, depth or inverse_depth")
    if camera_distance_mm is not None and not camera_distance_mm > 0:
        raise UsageError("camera_distance_mm must be positive")
    return d_img, z_img, m_img


def _subset(x: np.ndarray, y: np.ndarray, size: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """At most ``size`` paired samples, a seeded random (not raster-ordered) subset."""
    if x.size <= size:
        return x, y
    pick = np.random.default_rng(seed).choice(x.size, size=size, replace=False)
    return x[pick], y[pick]


def _inverse_depth_candidate(d_fit, z_fit, camera_distance_mm, seed):
    """``(median residual mm, "inverse_depth", a, b, D)``: the camera distance ``D`` given,
    or searched (a log grid over 150..5000 mm, then refined between the best's neighbours)
    on a subset of 3000 samples, then the fit with all samples at that ``D``."""
    lo = max(150.0, 20.0 - float(z_fit.min()))  # keep z + D > 0 with margin
    if camera_distance_mm is not None:
        dists = [max(float(camera_distance_mm), lo)]
    else:
        dists = list(np.geomspace(lo, max(5000.0, 2 * lo), 12))
    d_s, z_s = _subset(d_fit, z_fit, 3000, (seed, 2))
    best = None
    for dist in dists:
        a, b, med = _fit_inverse(d_s, z_s, dist, trials=60, max_iter=15)
        if best is None or med < best[0]:
            best = (med, float(dist))
    if camera_distance_mm is None:  # refine around the best
        i = dists.index(best[1])
        lo_r, hi_r = dists[max(i - 1, 0)], dists[min(i + 1, len(dists) - 1)]
        for dist in np.linspace(lo_r, hi_r, 7):
            a, b, med = _fit_inverse(d_s, z_s, float(dist), trials=60, max_iter=15)
            if med < best[0]:
                best = (med, float(dist))
    a, b, med = _fit_inverse(d_fit, z_fit, best[1])
    return med, "inverse_depth", a, b, best[1]


def _inliers(resid_img: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels of ``valid`` whose residual is within ``threshold`` robust (MAD) standard
    deviations of the median residual."""
    r = resid_img[valid]
    r = r[np.isfinite(r)]
    centre = float(np.median(r)) if r.size else 0.0
    mad = 1.4826 * float(np.median(np.abs(r - centre))) if r.size else 0.0
    close = np.abs(resid_img - centre) <= threshold * max(mad, 1e-9)
    return np.isfinite(resid_img) & valid & close


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")

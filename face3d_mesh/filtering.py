"""Clean-up of a face depth map: outlier rejection, hole filling, edge-preserving smoothing.

All steps look only at pixels inside the face mask: before any neighbourhood operation the
face depth is extended outward by linear extrapolation of the face itself, so background depth
never bleeds into the face and steep face edges are not flattened.  Work is done on the mask's
bounding box (plus a margin) only, and a bilateral filter 4 px wide or more runs on a halved
grid (its output brought back by a joint bilateral upsampling that keeps depth steps).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

__all__ = ["filter_depth"]

#: Floor of the robust noise level used by outlier rejection, mm.  A noise-free smooth surface
#: has a near-zero MAD; without a floor its curvature alone would be flagged as outliers.
_MIN_NOISE_MM = 0.25
#: Side of the median window of outlier rejection, px (cv2.medianBlur on float32 allows 3 or 5).
_MEDIAN_KSIZE = 5


def filter_depth(
    depth_mm: np.ndarray,
    mask: np.ndarray,
    *,
    mm_per_px: float,
    bilateral_sigma_space_mm: float = 2.0,
    bilateral_sigma_depth_mm: float = 2.0,
    outlier_threshold: float = 4.0,
    fill_holes: bool = True,
    smooth_sigma_mm: float = 0.0,
) -> np.ndarray:
    """Filter a face depth map: remove outliers, fill holes, smooth while keeping edges.

    Parameters
    ----------
    depth_mm : ndarray, shape (H, W), float
        Depth along the optical axis in millimetres (larger = farther).  NaN (or any value)
        outside ``mask``; NaN inside the mask marks a hole.  Values outside the mask are ignored.
    mask : ndarray, shape (H, W), bool
        Face mask (pixels that belong to the face).
    mm_per_px : float
        Millimetres per photo pixel at the face (> 0).
    bilateral_sigma_space_mm : float, keyword-only
        Spatial standard deviation of the bilateral filter, mm on the face.  0 disables it.
    bilateral_sigma_depth_mm : float, keyword-only
        Range standard deviation of the bilateral filter, mm of depth.  0 disables it.
    outlier_threshold : float, keyword-only
        A pixel is an outlier when it is farther than ``outlier_threshold`` robust standard
        deviations from the median of its 5x5 neighbourhood; the robust standard deviation is
        ``1.4826 * MAD`` of those residuals over the face (at least 0.25 mm).  Outliers are
        removed and refilled from their surroundings.  0 disables the step.
    fill_holes : bool, keyword-only
        Fill NaN holes inside the mask with a harmonic (membrane) interpolation of their
        surroundings.  When False the holes stay NaN in the output.
    smooth_sigma_mm : float, keyword-only
        Standard deviation of an extra Gaussian smoothing, mm on the face.  0 = none.

    Returns
    -------
    ndarray, shape (H, W), float32
        Filtered depth in millimetres, NaN outside the mask (and in unfilled holes).  All NaN
        when the mask holds no finite depth.  The input is not modified.

    Raises
    ------
    UsageError
        On shape mismatch, non-2-D input, non-positive ``mm_per_px`` or negative parameters.
    """
    depth = np.asarray(depth_mm)
    mask = np.asarray(mask)
    _check_arguments(
        depth,
        mask,
        mm_per_px=mm_per_px,
        bilateral_sigma_space_mm=bilateral_sigma_space_mm,
        bilateral_sigma_depth_mm=bilateral_sigma_depth_mm,
        outlier_threshold=outlier_threshold,
        smooth_sigma_mm=smooth_sigma_mm,
    )
    mask = mask.astype(bool, copy=False)

    out = np.full(depth.shape, np.nan, dtype=np.float32)
    valid_full = mask & np.isfinite(depth)
    if not valid_full.any():
        return out

    sig_b_px = bilateral_sigma_space_mm / mm_per_px
    sig_g_px = smooth_sigma_mm / mm_per_px
    do_bilateral = bilateral_sigma_space_mm > 0 and bilateral_sigma_depth_mm > 0
    radius_b = min(int(math.ceil(2.0 * sig_b_px)), 25) if do_bilateral else 0
    # A kernel wider than the map smooths no more than one as wide as the map.
    radius_g = min(int(math.ceil(3.0 * sig_g_px)), max(depth.shape)) if smooth_sigma_mm > 0 else 0
    pad = max(radius_b, radius_g, _MEDIAN_KSIZE // 2) + 2

    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, depth.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, depth.shape[1])
    m = mask[r0:r1, c0:c1]
    valid = valid_full[r0:r1, c0:c1]
    d = np.where(valid, depth[r0:r1, c0:c1], 0.0).astype(np.float32)

    outliers = _outliers(d, valid, outlier_threshold)
    valid = valid & ~outliers
    if not valid.any():
        return out

    # Fill holes (and removed outliers) inside the mask.
    holes = m & ~valid
    if holes.any():
        d = _harmonic_fill(np.where(valid, d, 0.0).astype(np.float32), valid, holes)
        known = valid | holes
    else:
        known = valid

    # Edge-preserving smoothing, then the optional Gaussian one, each on the face depth
    # extended beyond the mask.
    import cv2

    if do_bilateral and radius_b >= 1:
        d = _bilateral(_extend(d, known, radius_b), bilateral_sigma_depth_mm, sig_b_px)
    if smooth_sigma_mm > 0 and radius_g >= 1:
        k = 2 * radius_g + 1
        d = cv2.GaussianBlur(_extend(d, known, radius_g), (k, k), sig_g_px)

    keep = m & known
    if not fill_holes:
        # Original NaN holes stay holes; removed outliers are always refilled.
        keep = m & (valid | outliers)
    crop = out[r0:r1, c0:c1]
    crop[keep] = d[keep]
    return out


def _check_arguments(depth, mask, *, mm_per_px, **non_negative) -> None:
    """:func:`filter_depth`'s argument checks (a UsageError each)."""
    if depth.ndim != 2:
        raise UsageError(f"depth_mm must be a 2-D array, got shape {depth.shape}")
    if mask.shape != depth.shape:
        raise UsageError(f"mask shape {mask.shape} does not match depth_mm shape {depth.shape}")
    if not (np.isfinite(mm_per_px) and mm_per_px > 0):
        raise UsageError(f"mm_per_px must be a positive number, got {mm_per_px}")
    for name, value in non_negative.items():
        if not (np.isfinite(value) and value >= 0):
            raise UsageError(f"{name} must be a non-negative number, got {value}")


def _outliers(d: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels of ``valid`` farther than ``threshold`` robust standard deviations from the
    median of their 5x5 neighbourhood (of the depth extended past ``valid``); none when
    ``threshold`` is 0."""
    if not threshold > 0:
        return np.zeros_like(valid)
    import cv2

    ext = _extend(d, valid, _MEDIAN_KSIZE // 2)
    resid = np.abs(ext - cv2.medianBlur(ext, _MEDIAN_KSIZE))
    sigma = max(1.4826 * float(np.median(resid[valid])), _MIN_NOISE_MM)
    return valid & (resid > threshold * sigma)


#: Least spatial sigma (px) the bilateral filter runs with: from twice that on, it runs
#: on the depth halved (a face crop's 2 mm sigma is 4.5-5.5 px: a quarter of the pixels
#: and of the kernel), and comes back by joint bilateral upsampling.
_BILATERAL_MIN_SIGMA_PX = 2.0


def _bilateral(d: np.ndarray, sigma_depth_mm: float, sigma_px: float) -> np.ndarray:
    """Bilateral filter of ``d`` (float32, no NaN): spatial sigma ``sigma_px`` pixels,
    range sigma ``sigma_depth_mm``, kernel radius 2 sigma (at most 25 px of the grid it
    runs on).

    From ``2 * _BILATERAL_MIN_SIGMA_PX`` on, the filter runs on ``d`` halved (2×2 block
    means) with sigma ``sigma_px / 2`` (a Gaussian that wide keeps next to nothing finer
    than the halved grid; halved again while it stays that wide) and comes back by
    :func:`_joint_upsample`, which keeps depth steps sharp. (Halving, not a larger
    factor: then each pixel beside a step has a block wholly on its own side among its
    four nearest.)
    """
    import cv2

    factor = 2
    if sigma_px < factor * _BILATERAL_MIN_SIGMA_PX:
        radius = min(int(math.ceil(2.0 * sigma_px)), 25)
        return cv2.bilateralFilter(d, 2 * radius + 1, float(sigma_depth_mm), float(sigma_px))
    height, width = d.shape
    tall, wide = -(-height // factor), -(-width // factor)
    padded = cv2.copyMakeBorder(
        d, 0, tall * factor - height, 0, wide * factor - width, cv2.BORDER_REPLICATE
    )
    low = cv2.resize(padded, (wide, tall), interpolation=cv2.INTER_AREA)
    low = _bilateral(low, sigma_depth_mm, sigma_px / factor)
    return _joint_upsample(low, d, factor, sigma_depth_mm)


def _joint_upsample(low: np.ndarray, guide: np.ndarray, factor: int, sigma: float):
    """``low`` (float32, a grid ``factor`` times coarser than ``guide``, block-aligned,
    padded to whole blocks) back on ``guide``'s pixels.

    Bilinear where the pixel's own depth is near the bilinear value (smooth surfaces and
    slopes, however steep: the reduced filter keeps a ramp a ramp). Where it is far from
    it (a depth step crosses the pixel's four coarse neighbours) the four are weighted
    also by ``exp(-(value - guide)^2 / (2 sigma^2))``, so the pixel takes its own side of
    the step. "Near" is within sigma / 4 (the fine detail a 2 mm bilateral filter smooths
    away anyway); past it the two blend, the bilinear value's weight falling off as a
    Gaussian of sigma / 8 in the excess, without a seam.
    """
    import cv2

    height, width = guide.shape
    size = (low.shape[1] * factor, low.shape[0] * factor)
    bilinear = cv2.resize(low, size, interpolation=cv2.INTER_LINEAR)[:height, :width]
    out = np.array(bilinear, dtype=np.float32)
    near = 0.25 * float(sigma)
    rows, cols = np.nonzero(np.abs(bilinear - guide) > near)
    if rows.size == 0:
        return out
    g = guide[rows, cols]
    y = (rows + 0.5) / factor - 0.5
    x = (cols + 0.5) / factor - 0.5
    r0 = np.clip(np.floor(y).astype(np.intp), 0, max(low.shape[0] - 2, 0))
    c0 = np.clip(np.floor(x).astype(np.intp), 0, max(low.shape[1] - 2, 0))
    r1 = np.minimum(r0 + 1, low.shape[0] - 1)
    c1 = np.minimum(c0 + 1, low.shape[1] - 1)
    fy = np.clip(y - r0, 0.0, 1.0)
    fx = np.clip(x - c0, 0.0, 1.0)
    inv = -0.5 / float(sigma) ** 2
    total = np.zeros(rows.size)
    weight = np.zeros(rows.size)
    for rr, cc, w in (
        (r0, c0, (1 - fy) * (1 - fx)),
        (r0, c1, (1 - fy) * fx),
        (r1, c0, fy * (1 - fx)),
        (r1, c1, fy * fx),
    ):
        value = low[rr, cc]
        w = w * np.exp(inv * (value - g) ** 2)
        total += w * value
        weight += w
    b = bilinear[rows, cols]
    ranged = np.where(weight > 1e-6, total / np.maximum(weight, 1e-6), b)
    smooth = np.exp(-32.0 * ((np.abs(b - g) - near) / float(sigma)) ** 2)
    out[rows, cols] = smooth * b + (1 - smooth) * ranged
    return out


def _extend(d: np.ndarray, known: np.ndarray, n_rings: int) -> np.ndarray:
    """Copy of ``d`` extended ``n_rings`` pixels beyond ``known`` (float32, no NaN).

    The extension continues the slope, not the value (:func:`~face3d_mesh._extend.
    extend_linear`), which keeps the bilateral filter from flattening steep face edges.
    Pixels still unknown afterwards get the median known depth (they are too far to
    influence any known pixel's filter).
    """
    from ._extend import extend_linear

    if known.all():
        return d.astype(np.float32)
    out = extend_linear(np.where(known, d, np.nan), n_rings)
    rest = ~np.isfinite(out)
    if rest.any():
        out[rest] = np.median(d[known])
    return out


#: Hole regions up to this many pixels are solved as dense systems with numpy (no SciPy
#: import, ~0.1 s at start-up); larger ones with SciPy's sparse solver.
_DENSE_FILL_MAX_PX = 256


def _harmonic_fill(d: np.ndarray, known: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Fill ``holes`` with the solution of Laplace's equation, Dirichlet data from ``known``.

    Neighbours that are neither known nor holes (outside the mask) are ignored (zero normal
    derivative).  Hole regions touching no known pixel get the median of the known depth.
    Each hole region (4-connected) is its own linear system, solved directly: densely when
    small (the usual case: outliers and small gaps), sparsely when large.
    """
    import cv2

    out = d.copy()
    rows = np.flatnonzero(holes.any(axis=1))
    cols = np.flatnonzero(holes.any(axis=0))
    r0, r1 = max(rows[0] - 1, 0), rows[-1] + 2
    c0, c1 = max(cols[0] - 1, 0), cols[-1] + 2
    crop = (slice(r0, r1), slice(c0, c1))
    hr, hc, diag, rhs, a, b = _laplace_system(d[crop].astype(np.float64), known[crop], holes[crop])
    n_regions, labels = cv2.connectedComponents(holes[crop].astype(np.uint8), connectivity=4)
    # Regions without any known neighbour would make their system singular.
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    touching = cv2.dilate(known[crop].astype(np.uint8), cross).astype(bool) & holes[crop]
    solvable = np.zeros(n_regions, dtype=bool)
    solvable[np.unique(labels[touching])] = True
    region = labels[hr, hc]
    values = np.zeros(hr.size)
    if not solvable[region].all():
        values[~solvable[region]] = float(np.median(d[known]))
    sizes = np.bincount(region, minlength=n_regions)
    single = solvable[region] & (sizes[region] == 1)
    values[single] = rhs[single] / diag[single]
    order = np.argsort(region, kind="stable")  # pixels of each region, contiguous, sorted
    starts = np.searchsorted(region[order], np.arange(n_regions + 1))
    pair_order = np.argsort(region[a], kind="stable")
    a, b = a[pair_order], b[pair_order]
    pair_starts = np.searchsorted(region[a], np.arange(n_regions + 1))
    large = []
    for lab in np.flatnonzero(solvable & (sizes > 1)):
        pix = order[starts[lab] : starts[lab + 1]]
        if pix.size > _DENSE_FILL_MAX_PX:
            large.append(pix)
            continue
        pairs = slice(pair_starts[lab], pair_starts[lab + 1])
        system = np.diag(diag[pix])
        np.subtract.at(system, (np.searchsorted(pix, a[pairs]), np.searchsorted(pix, b[pairs])), 1)
        values[pix] = np.linalg.solve(system, rhs[pix])
    if large:
        values = _sparse_fill(values, np.concatenate(large), diag, rhs, a, b)
    out[r0 + hr, c0 + hc] = values
    return out


def _laplace_system(d: np.ndarray, known: np.ndarray, holes: np.ndarray):
    """The 5-point Laplace system of the hole pixels.

    Returns the hole pixels' rows and columns, the diagonal (number of known or hole
    4-neighbours), the right-hand side (sum of the known neighbours' depths) and the pairs
    ``(a, b)`` of hole pixels that are neighbours (indices into the hole pixels, each pair
    in both directions): the system is ``diag[i] x[i] - sum_{(i, j)} x[j] = rhs[i]``.
    """
    h, w = d.shape
    hr, hc = np.nonzero(holes)
    n = hr.size
    idx = np.full(d.shape, -1, dtype=np.int64)
    idx[hr, hc] = np.arange(n)
    diag = np.zeros(n)
    rhs = np.zeros(n)
    pair_a, pair_b = [], []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nr, nc = hr + dr, hc + dc
        inside = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
        nr_i, nc_i = nr[inside], nc[inside]
        me = np.flatnonzero(inside)
        is_known = known[nr_i, nc_i]
        is_hole = holes[nr_i, nc_i]
        diag += np.bincount(me[is_known | is_hole], minlength=n)
        rhs += np.bincount(me[is_known], weights=d[nr_i[is_known], nc_i[is_known]], minlength=n)
        pair_a.append(me[is_hole])
        pair_b.append(idx[nr_i[is_hole], nc_i[is_hole]])
    return hr, hc, diag, rhs, np.concatenate(pair_a), np.concatenate(pair_b)


def _sparse_fill(values, pix, diag, rhs, a, b):
    """Solve the hole pixels ``pix`` (whole regions) with SciPy's sparse direct solver."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    pix = np.sort(pix)
    sel = np.isin(a, pix)
    pa, pb = np.searchsorted(pix, a[sel]), np.searchsorted(pix, b[sel])
    m = pix.size
    system = sparse.csr_matrix(
        (
            np.concatenate([diag[pix], -np.ones(pa.size)]),
            (np.concatenate([np.arange(m), pa]), np.concatenate([np.arange(m), pb])),
        ),
        shape=(m, m),
    )
    values = values.copy()
    values[pix] = spsolve(system, rhs[pix])
    return values

"""The smooth outline of a pixel mask, and the triangles between it and a regular grid.

Used by :mod:`face3d_mesh.surface`. Coordinates are pixels ``(u, v)`` = (column, row) of
the array given, centre of the top-left pixel at (0, 0). Outline loops are oriented with
the region on their right in ``(u, v)`` (counter-clockwise seen from +z in the mesh frame,
where y = -v); holes run the other way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Loop",
    "outline_loops",
    "iso_loops",
    "inside_loops",
    "near_loops",
    "delaunay",
    "nearest_point",
    "cut_pinches",
    "nearest_segment",
]


def _marching_table() -> np.ndarray:
    """Segments of marching squares: ``table[case + 16 * centre_inside, k] = (from, to)``.

    Corners 0..3 = top-left, top-right, bottom-right, bottom-left (bit k = corner k above
    the level); edges 0..3 = top, right, bottom, left. Each segment runs with the region
    above the level on its left in (u, v) (``cross(direction, inside) > 0``).
    """
    corner = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    mid = np.array([[0.5, 0], [1, 0.5], [0.5, 1], [0, 0.5]], float)
    ends = [(0, 1), (1, 2), (3, 2), (0, 3)]  # corners of each edge
    table = np.full((32, 2, 2), -1, np.int64)
    for code in range(32):
        case, centre = code % 16, code >= 16
        inside = [bool(case >> k & 1) for k in range(4)]
        cut = [e for e in range(4) if inside[ends[e][0]] != inside[ends[e][1]]]
        if not cut:
            continue
        if len(cut) == 2:
            ref = corner[[k for k in range(4) if inside[k]]].mean(axis=0)
            pairs = [(cut[0], cut[1], ref, True)]
        else:  # saddle: each segment cuts off one corner
            lonely = [0, 2] if inside[0] != centre else [1, 3]
            around = {0: (3, 0), 1: (0, 1), 2: (1, 2), 3: (2, 3)}
            pairs = [(*around[k], corner[k], inside[k]) for k in lonely]
        for s, (ea, eb, ref, ref_inside) in enumerate(pairs):
            d = mid[eb] - mid[ea]
            w = ref - mid[ea]
            left = d[0] * w[1] - d[1] * w[0] > 0
            table[code, s] = (ea, eb) if left == ref_inside else (eb, ea)
    return table


_TABLE = _marching_table()


def iso_loops(f: np.ndarray, level: float) -> list[np.ndarray]:
    """Closed iso-lines ``f == level`` by marching squares, as (K, 2) float (u, v) loops.

    ``f`` must be below ``level`` all along its border (so that every line closes). Loops
    run with ``f > level`` on their left in (u, v); the crossing on each grid edge is
    interpolated linearly.
    """
    h, w = f.shape
    above = f > level
    b = (
        above[:-1, :-1].astype(np.uint8)
        | above[:-1, 1:] << 1
        | above[1:, 1:] << 2
        | above[1:, :-1] << 3
    )
    ci, cj = np.nonzero((b != 0) & (b != 15))
    case = b[ci, cj].astype(np.int64)
    saddle = (case == 5) | (case == 10)
    centre = np.zeros(case.shape, bool)
    if saddle.any():
        si, sj = ci[saddle], cj[saddle]
        centre[saddle] = (f[si, sj] + f[si, sj + 1] + f[si + 1, sj] + f[si + 1, sj + 1]) > 4 * level
    code = case + 16 * centre
    # Global edge ids: horizontal edge (i, j)-(i, j+1) = i*w + j, vertical (i, j)-(i+1, j)
    # = h*w + i*w + j; cell edges top, right, bottom, left.
    cell_edges = np.stack(
        [ci * w + cj, h * w + ci * w + cj + 1, (ci + 1) * w + cj, h * w + ci * w + cj], axis=1
    )
    seg = _TABLE[code]  # (n, 2, 2)
    rows = np.arange(len(code))
    a, b_ = [], []
    for s in range(2):
        ok = seg[:, s, 0] >= 0
        a.append(cell_edges[rows[ok], seg[ok, s, 0]])
        b_.append(cell_edges[rows[ok], seg[ok, s, 1]])
    a, b_ = np.concatenate(a), np.concatenate(b_)
    if a.size == 0:
        return []
    order = np.argsort(a)
    nxt = order[np.searchsorted(a[order], b_)]
    xy = _edge_crossings(f, level, a)
    loops = []
    seen = np.zeros(a.size, bool)
    for start in range(a.size):
        if seen[start]:
            continue
        ids = []
        s = start
        while not seen[s]:
            seen[s] = True
            ids.append(s)
            s = nxt[s]
        loops.append(xy[ids])
    return loops


def _edge_crossings(f: np.ndarray, level: float, edge: np.ndarray) -> np.ndarray:
    """(u, v) of the level crossing on each global edge id (see :func:`iso_loops`)."""
    h, w = f.shape
    vertical = edge >= h * w
    e = np.where(vertical, edge - h * w, edge)
    i, j = np.divmod(e, w)
    i2 = i + vertical
    j2 = j + ~vertical
    f0, f1 = f[i, j], f[i2, j2]
    t = (level - f0) / (f1 - f0)
    return np.column_stack([j + t * ~vertical, i + t * vertical]).astype(np.float64)


def _signed_area(p: np.ndarray) -> float:
    """Shoelace area in (u, v) (positive = counter-clockwise in u-right, v-down maths)."""
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


@dataclass
class Loop:
    """One outline loop: a fine polyline and the samples taken on it.

    ``fine`` (M, 2) float px closed polyline; ``cum`` (M + 1,) its cumulative
    arc length; ``t`` (K,) arc positions of the samples; ``points`` (K, 2) the samples
    (possibly pushed inward a little to stay in the mask).
    """

    fine: np.ndarray
    cum: np.ndarray
    t: np.ndarray
    points: np.ndarray

    def frame(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points and unit inward normals (region side) of the fine polyline at arc
        positions ``t`` (linear interpolation between its vertices)."""
        m = len(self.fine)
        if not hasattr(self, "_inward"):
            tangent = np.roll(self.fine, -1, axis=0) - np.roll(self.fine, 1, axis=0)
            tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
            self._inward = np.column_stack([tangent[:, 1], -tangent[:, 0]])
            # segment index at arc positions every quarter of the shortest segment
            self._bin = 0.25 * max(float(np.min(np.diff(self.cum))), 1e-9)
            grid = np.arange(int(self.length / self._bin) + 2) * self._bin
            self._first = np.clip(np.searchsorted(self.cum, grid, side="right") - 1, 0, m - 1)
        t = np.mod(t, self.length)
        i = self._first[(t / self._bin).astype(np.int64)]
        i = np.minimum(i + (self.cum[np.minimum(i + 1, m)] <= t), m - 1)  # at most one on
        f = ((t - self.cum[i]) / np.maximum(self.cum[i + 1] - self.cum[i], 1e-12))[:, None]
        j = (i + 1) % m
        p = self.fine[i] * (1 - f) + self.fine[j] * f
        # (neighbouring unit normals differ by a fraction of a degree: their blend is unit
        # to within ~1e-5)
        n = self._inward[i] * (1 - f) + self._inward[j] * f
        return p, n

    @property
    def length(self) -> float:
        return float(self.cum[-1])

    def at(self, t: np.ndarray) -> np.ndarray:
        """Points of the fine polyline at arc positions ``t``."""
        closed = np.vstack([self.fine, self.fine[:1]])
        t = np.mod(t, self.length)
        return np.column_stack(
            [np.interp(t, self.cum, closed[:, 0]), np.interp(t, self.cum, closed[:, 1])]
        )

    def arc_samples(self, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """Points and unit inward normals every ``spacing`` (about) of arc, (M, 2) each."""
        m = max(int(math.ceil(self.length / spacing)), 8)
        return self.frame(np.arange(m) * (self.length / m))

    def split(self, k: np.ndarray) -> None:
        """Add a sample half-way (in arc length) along each sample edge ``k -> k + 1``."""
        t_next = np.roll(self.t, -1)
        t_next[-1] += self.length
        t_new = np.concatenate([self.t, 0.5 * (self.t[k] + t_next[k]) % self.length])
        order = np.argsort(t_new, kind="stable")
        self.t = t_new[order]
        self.points = np.vstack([self.points, self.at(t_new[len(self.points) :])])[order]


def _arc_lengths(p: np.ndarray) -> np.ndarray:
    """Cumulative arc length of a closed polyline, (M + 1,), starting at 0."""
    seg = np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def _smoothed(fine: np.ndarray, sigma_px: float) -> np.ndarray:
    """A closed polyline resampled every ~0.5 px of arc and smoothed along itself (Gaussian,
    ``sigma_px`` of arc): removes the small kinks marching squares leaves between cells."""
    cum = _arc_lengths(fine)
    n = max(int(round(cum[-1] / 0.5)), 8)
    closed = np.vstack([fine, fine[:1]])
    t = np.arange(n) * (cum[-1] / n)
    p = np.column_stack([np.interp(t, cum, closed[:, 0]), np.interp(t, cum, closed[:, 1])])
    sigma = sigma_px / (cum[-1] / n)
    half = min(int(math.ceil(3 * sigma)), (n - 1) // 2)
    offsets = np.arange(-half, half + 1)
    w = np.exp(-0.5 * (offsets / sigma) ** 2)
    w /= w.sum()
    out = np.zeros_like(p)
    for o, wk in zip(offsets, w, strict=True):
        out += wk * np.roll(p, o, axis=0)
    return out


def _make_loop(fine: np.ndarray, spacing: float, smooth_px: float) -> Loop:
    fine = _smoothed(fine, smooth_px)
    cum = _arc_lengths(fine)
    n = max(int(round(cum[-1] / spacing)), 3)
    loop = Loop(fine, cum, np.arange(n) * (cum[-1] / n), np.empty((0, 2)))
    loop.points = loop.at(loop.t)
    return loop


def outline_loops(
    inside: np.ndarray, *, sigma_px: float, spacing_px: float, min_samples: int = 4
) -> list[Loop]:
    """The smooth outline of the largest region of ``inside`` and of its holes.

    The mask is blurred (Gaussian, ``sigma_px``) and its iso-line is taken at the level
    where a straight edge's outline passes through the centres of the edge pixels; the
    loops are sampled every ``spacing_px`` (about) of arc length. Holes with fewer than
    ``min_samples`` samples are left out (filled over), as are other regions.

    Parameters
    ----------
    inside : ndarray, shape (H, W), bool
        The mask; False all along its border (at least ``3 * sigma_px + 2`` pixels).
    sigma_px, spacing_px : float, keyword-only
        Smoothing scale and sample spacing, pixels.

    Returns
    -------
    list of Loop
        Outer loop first (empty list when nothing is left), region on the right of each
        loop in (u, v).
    """
    import cv2

    f = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma_px)
    # A straight edge's blurred profile is Phi(-x / sigma), x = distance out of the pixel
    # edge; the pixel centres just inside are at x = -0.5.
    level = 0.5 * (1.0 + math.erf(0.5 / sigma_px / math.sqrt(2.0)))
    raw = [p for p in iso_loops(f, level) if len(p) >= 3]
    if not raw:
        return []
    area = np.array([_signed_area(p) for p in raw])
    outer = int(np.argmax(area))
    if area[outer] <= 0:
        return []
    inner = [k for k in range(len(raw)) if k != outer and _contains(raw[outer], raw[k][0])]
    # A hole belongs to the outer region unless it lies in an island inside another hole.
    islands = [k for k in inner if area[k] > 0]
    holes = [
        k for k in inner if area[k] < 0 and not any(_contains(raw[i], raw[k][0]) for i in islands)
    ]
    smooth = sigma_px
    loops = [_make_loop(raw[outer][::-1], spacing_px, smooth)]
    for k in holes:
        loop = _make_loop(raw[k][::-1], spacing_px, smooth)
        if len(loop.points) >= min_samples:
            loops.append(loop)
    return loops


def _contains(polygon: np.ndarray, point: np.ndarray) -> bool:
    import cv2

    contour = np.ascontiguousarray(polygon, dtype=np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, (float(point[0]), float(point[1])), False) > 0


def push_inside(loop: Loop, valid_at, *, reach_px: float = 3.0, max_px: float = 2.0) -> None:
    """Move the samples of ``loop`` that ``valid_at`` rejects inward, smoothly.

    Each rejected sample needs some inward shift (found in 0.05 px steps, at most
    ``max_px``); the shifts applied are their smooth envelope (a raised-cosine bump of
    half-width ``reach_px`` around each), so the outline bends gently instead of
    kinking. Samples still rejected are dropped.
    """
    pushed = False
    for _ in range(3):
        p = loop.points
        bad = np.flatnonzero(~valid_at(p))
        if bad.size == 0:
            break
        pushed = True
        tangent = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
        inward = np.column_stack([tangent[:, 1], -tangent[:, 0]])  # region on the right
        need = np.zeros(len(p))
        todo = bad
        for k in range(1, int(max_px / 0.05) + 1):
            ok = valid_at(p[todo] + (0.05 * k + 0.05) * inward[todo])
            need[todo[ok]] = 0.05 * k + 0.05
            todo = todo[~ok]
            if todo.size == 0:
                break
        spacing = loop.length / len(p)
        half = max(int(math.ceil(reach_px / spacing)), 1)
        shift = need.copy()
        for o in range(1, min(half, len(p) // 2) + 1):
            g = math.cos(0.5 * math.pi * o / (half + 1)) ** 2
            shift = np.maximum(shift, g * np.maximum(np.roll(need, o), np.roll(need, -o)))
        keep = np.ones(len(p), bool)
        keep[todo] = False
        loop.points = (p + shift[:, None] * inward)[keep]
        loop.t = loop.t[keep]
    if pushed:
        ok = valid_at(loop.points)
        loop.points, loop.t = loop.points[ok], loop.t[ok]
        _drop_crowded(loop)


def _drop_crowded(loop: Loop, *, fraction: float = 0.3) -> None:
    """Drop samples closer than ``fraction`` of the mean spacing to the sample before them
    (pushed samples can bunch up in a tight concave corner, making slivers)."""
    p = loop.points
    if len(p) < 4:
        return
    gap = np.linalg.norm(p - np.roll(p, 1, axis=0), axis=1)
    crowded = gap < fraction * loop.length / len(p)
    crowded[0] = False
    if crowded.any():
        loop.points, loop.t = p[~crowded], loop.t[~crowded]


def cut_pinches(loops: list[Loop], *, fraction: float = 1.0) -> list[Loop]:
    """Remove the parts of the outline that come closer to another part than ``fraction``
    of the sample spacing (a protrusion or a neck thinner than that, which no triangle of
    that size can fill): within the outer loop the shorter side of the pinch is dropped; a
    hole that pinches, or comes that close to another loop, is dropped (filled over; of
    two holes, the smaller). Samples where a loop turns back on itself go first."""
    loops = list(loops)
    for _ in range(8):
        for loop in loops:
            _drop_spikes(loop)
        loops = [lp for lp in loops[:1] + [h for h in loops[1:] if len(h.points) >= 4]]
        pts = np.concatenate([lp.points for lp in loops])
        n_loop = np.array([len(lp.points) for lp in loops])
        which = np.repeat(np.arange(len(loops)), n_loop)
        pos = np.concatenate([np.arange(k) for k in n_loop])
        spacing = min(lp.length / len(lp.points) for lp in loops)
        i, j = _close_pairs(pts, fraction * spacing)
        same = which[i] == which[j]
        apart = np.abs(pos[i] - pos[j])
        gap = np.minimum(apart, n_loop[which[i]] - apart)
        bad = np.flatnonzero(~same | (gap > 3))
        if bad.size == 0:
            return loops
        a, b = i[bad[0]], j[bad[0]]
        la, lb = which[a], which[b]
        if la != lb or la > 0:  # a hole involved: fill it over
            drop = max(la, lb) if min(la, lb) == 0 else (la if n_loop[la] < n_loop[lb] else lb)
            loops = [lp for k, lp in enumerate(loops) if k != drop]
            continue
        loop = loops[la]
        lo, hi = sorted((pos[a], pos[b]))
        keep = np.ones(len(loop.points), bool)
        if hi - lo <= len(loop.points) - (hi - lo):
            keep[lo + 1 : hi] = False
        else:
            keep[hi + 1 :] = False
            keep[:lo] = False
        loop.points, loop.t = loop.points[keep], loop.t[keep]
    return loops


def _drop_spikes(loop: Loop) -> None:
    """Drop samples where the loop turns back on itself (by more than 120 degrees)."""
    for _ in range(4):
        p = loop.points
        if len(p) < 4:
            return
        d_in = p - np.roll(p, 1, axis=0)
        d_out = np.roll(p, -1, axis=0) - p
        dot = np.sum(d_in * d_out, axis=1)
        spike = dot < -0.5 * np.linalg.norm(d_in, axis=1) * np.linalg.norm(d_out, axis=1)
        spike &= ~np.roll(spike, 1)  # of two neighbours, drop the first only
        if not spike.any():
            return
        loop.points, loop.t = p[~spike], loop.t[~spike]


def _close_pairs(points: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of points closer than ``radius`` (hash grid of that cell size)."""
    cell = np.floor(points / radius).astype(np.int64)
    lo = cell.min(axis=0) - 1
    dims = cell.max(axis=0) - lo + 2
    key = (cell[:, 1] - lo[1]) * dims[0] + (cell[:, 0] - lo[0])
    order = np.argsort(key)
    key_sorted = key[order]
    out_i, out_j = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            k = key + dy * dims[0] + dx
            first = np.searchsorted(key_sorted, k, "left")
            count = np.searchsorted(key_sorted, k, "right") - first
            i = np.repeat(np.arange(len(points)), count)
            j = order[np.repeat(first, count) + _ranks(count)]
            keep = (i < j) & (np.linalg.norm(points[i] - points[j], axis=1) < radius)
            out_i.append(i[keep])
            out_j.append(j[keep])
    return np.concatenate(out_i), np.concatenate(out_j)


def segments(loops: list[Loop]) -> tuple[np.ndarray, np.ndarray]:
    """All loop edges as start and end points, (S, 2) each."""
    a = np.concatenate([lp.points for lp in loops])
    b = np.concatenate([np.roll(lp.points, -1, axis=0) for lp in loops])
    return a, b


def inside_loops(
    loops: list[Loop], origin: tuple[float, float], step: float, shape: tuple[int, int]
) -> np.ndarray:
    """Which nodes of the grid ``origin + step * (j, i)`` lie inside the loops (even-odd).

    Exact scan-line test against the loop polygons; returns an (ny, nx) bool array.
    """
    ny, nx = shape
    a, b = segments(loops)
    ga = (a - origin) / step  # grid units: column, row
    gb = (b - origin) / step
    lo = np.minimum(ga[:, 1], gb[:, 1])
    hi = np.maximum(ga[:, 1], gb[:, 1])
    # Rows r crossed with lo <= r < hi (half-open, so shared end points count once).
    r0 = np.ceil(lo).astype(np.int64)
    r1 = np.ceil(hi).astype(np.int64)
    count = np.maximum(r1 - r0, 0)
    seg = np.repeat(np.arange(len(ga)), count)
    rows = np.repeat(r0, count) + _ranks(count)
    t = (rows - ga[seg, 1]) / (gb[seg, 1] - ga[seg, 1])
    x = ga[seg, 0] + t * (gb[seg, 0] - ga[seg, 0])
    keep = (rows >= 0) & (rows < ny)
    # A crossing at x toggles the parity of every node of its row from column ceil(x) on.
    col = np.clip(np.ceil(x[keep]).astype(np.int64), 0, nx)
    toggles = np.bincount(rows[keep] * (nx + 1) + col, minlength=ny * (nx + 1))
    left = np.cumsum(toggles.reshape(ny, nx + 1)[:, :nx], axis=1)
    return left % 2 == 1


def near_loops(
    loops: list[Loop],
    origin: tuple[float, float],
    step: float,
    shape: tuple[int, int],
    *,
    clearance: float,
    edge_factor: float = 0.55,
) -> np.ndarray:
    """Grid nodes closer to a loop edge than ``max(clearance, edge_factor * |edge|)``.

    Distances in grid steps; returns an (ny, nx) bool array. Keeping nodes out of these
    discs makes every loop edge a Delaunay edge (its diametral disc holds no node).
    """
    ny, nx = shape
    a, b = segments(loops)
    ga = (a - origin) / step
    gb = (b - origin) / step
    d = gb - ga
    length = np.linalg.norm(d, axis=1)
    radius = np.maximum(clearance, edge_factor * length)
    half = int(math.ceil(float(np.max(radius + 0.5 * length)) + 0.5))
    mid = np.rint(0.5 * (ga + gb)).astype(np.int64)
    off = np.arange(-half, half + 1)
    oj, oi = np.meshgrid(off, off)
    nj = mid[:, 0:1] + oj.ravel()[None, :]
    ni = mid[:, 1:2] + oi.ravel()[None, :]
    px = nj - ga[:, 0:1]
    py = ni - ga[:, 1:2]
    t = np.clip((px * d[:, 0:1] + py * d[:, 1:2]) / np.maximum(length**2, 1e-24)[:, None], 0, 1)
    dist = np.hypot(px - t * d[:, 0:1], py - t * d[:, 1:2])
    hit = (dist < radius[:, None]) & (ni >= 0) & (ni < ny) & (nj >= 0) & (nj < nx)
    near = np.zeros((ny, nx), bool)
    near[ni[hit], nj[hit]] = True
    return near


def delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles of (N, 2) distinct points, (T, 3) indices (OpenCV Subdiv2D)."""
    import cv2

    p = np.ascontiguousarray(points, dtype=np.float32)
    lo = np.floor(p.min(axis=0)) - 2
    hi = np.ceil(p.max(axis=0)) + 2
    sub = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])))
    sub.insert(p.tolist())
    tri = sub.getTriangleList().reshape(-1, 2).astype(np.float32)
    keys = p.view(np.uint64).ravel()
    order = np.argsort(keys)
    q = np.ascontiguousarray(tri).view(np.uint64).ravel()
    pos = np.searchsorted(keys[order], q)
    pos = np.minimum(pos, len(keys) - 1)
    found = keys[order][pos] == q
    idx = order[pos].reshape(-1, 3)
    return idx[found.reshape(-1, 3).all(axis=1)]


def nearest_point(points: np.ndarray, xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Index of (about) the nearest of ``points`` (K, 2) to each of ``xy`` (N, 2).

    Both lie on an (h, w) ``shape`` pixel grid: the points are rasterized (rounded to
    pixels) and a distance transform labels every pixel with its nearest point, so the
    answer is exact to about a pixel; where several points share a pixel the last wins.
    """
    import cv2

    h, w = shape
    canvas = np.ones((h, w), np.uint8)
    pix = np.clip(np.rint(points).astype(np.int64), 0, [w - 1, h - 1])
    canvas[pix[:, 1], pix[:, 0]] = 0
    _, labels = cv2.distanceTransformWithLabels(
        canvas, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # labels number the zero pixels in raster order
    owner = np.full((h, w), -1, np.int64)
    owner[pix[:, 1], pix[:, 0]] = np.arange(len(points))
    zero_r, zero_c = np.nonzero(canvas == 0)
    point_of_label = np.concatenate([[0], owner[zero_r, zero_c]])
    q = np.clip(np.rint(xy).astype(np.int64), 0, [w - 1, h - 1])
    return point_of_label[labels[q[:, 1], q[:, 0]]]


def nearest_segment(
    a: np.ndarray, b: np.ndarray, xy: np.ndarray, *, max_dist: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest of the segments ``a[k] -> b[k]`` (S, 2) to each point of ``xy`` (N, 2).

    Only segments within ``max_dist`` are searched (a hash grid of that cell size).
    Returns ``(segment, lam, dist)``: segment index (-1 if none within reach), position
    along it in [0, 1], and distance (inf if none).
    """
    d = b - a
    cell = max(max_dist + float(np.max(np.linalg.norm(d, axis=1))), 1e-9)
    mid = np.floor(0.5 * (a + b) / cell).astype(np.int64)
    pc = np.floor(xy / cell).astype(np.int64)
    lo_c = np.minimum(mid.min(axis=0), pc.min(axis=0)) - 2
    dims = np.maximum(mid.max(axis=0), pc.max(axis=0)) - lo_c + 3
    key = (mid[:, 1] - lo_c[1]) * dims[0] + (mid[:, 0] - lo_c[0])
    order = np.argsort(key)
    key_sorted = key[order]
    n = len(xy)
    pts, segs = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            k = (pc[:, 1] + dy - lo_c[1]) * dims[0] + (pc[:, 0] + dx - lo_c[0])
            lo = np.searchsorted(key_sorted, k, "left")
            count = np.searchsorted(key_sorted, k, "right") - lo
            pts.append(np.repeat(np.arange(n), count))
            segs.append(order[np.repeat(lo, count) + _ranks(count)])
    p_idx, s_idx = np.concatenate(pts), np.concatenate(segs)
    rel = xy[p_idx] - a[s_idx]
    ds = d[s_idx]
    lam = np.clip(np.sum(rel * ds, axis=1) / np.maximum(np.sum(ds * ds, axis=1), 1e-24), 0, 1)
    dist = np.hypot(rel[:, 0] - lam * ds[:, 0], rel[:, 1] - lam * ds[:, 1])
    out_seg = np.full(n, -1, dtype=np.int64)
    out_lam = np.zeros(n)
    out_d = np.full(n, np.inf)
    if p_idx.size:
        best = np.lexsort((dist, p_idx))
        first = best[np.r_[True, p_idx[best][1:] != p_idx[best][:-1]]]
        first = first[dist[first] <= max_dist]
        out_seg[p_idx[first]] = s_idx[first]
        out_lam[p_idx[first]] = lam[first]
        out_d[p_idx[first]] = dist[first]
    return out_seg, out_lam, out_d


def _ranks(count: np.ndarray) -> np.ndarray:
    """0, 1, ..., count[i] - 1 for each i, concatenated."""
    return np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)

#!/usr/bin/env python
"""Build the package's face-model data: the ICT-FaceKit light model, cut to the face and
compacted, and the registration of MediaPipe's 478 landmarks onto its surface.

Reproducible: the same inputs give the same ``face3d_mesh/data/ict_face_model.npz``.
Inputs (``../shared/face_models`` beside the project by default):

- ``ict_face_light.npz``: the ICT Face Model Light (MIT licence, ICT-FaceKit): neutral mesh,
  100 identity modes, 53 expression blendshapes, centimetres, y up, face toward +z.
- ``canonical_face_model.obj``: MediaPipe's canonical face mesh (Apache-2.0): its 468 face
  landmarks as 3D vertices, in landmark order.

Registration, in three steps:

1. **Similarity** of the canonical mesh onto the ICT neutral from anatomical pairs (eye
   corners, mouth corners, nose, brows, lips; MediaPipe's indices of the 68-point scheme
   against the model's own 68 landmarks), Umeyama.
2. **Non-rigid fit**: the ICT model's identity (N(0, 1) prior) and expression weights
   (in [0, 1]) and the similarity fitted to the canonical vertices, alternating with
   closest-point correspondences, the anatomical pairs kept as soft constraints; each
   canonical vertex is then projected onto the fitted ICT surface: a triangle and
   barycentric coordinates on the ICT topology, valid for every identity and expression.
3. **A check against MediaPipe's own detections** (``--renders N``, default 40): ICT heads
   of random identity, shaded (painted eyes), rendered at random poses, lenses and lights;
   MediaPipe runs on each render and every detected landmark is traced back onto the
   rendered surface (a ray through the pixel, exact; traces steeper than 60° from the view
   are dropped). The registration's bias (the image distance, in mm on the face, between a
   detected landmark and its registered point on the rendered head) is reported on half of
   the renders, and a *calibrated* registration (each landmark moved to the median of its
   traces on the other half, the face oval's from near-frontal renders only) beside it.
   ``--apply-calibration`` ships the calibrated one. It is off by default: on these
   untextured renders (no eyebrows, lips or skin texture for MediaPipe to see) the
   calibration lowers the held-out bias (about 2.5 to 1.7 mm) but it made the fits worse on
   photo-realistic renders of a real head scan at many poses, so the shift it learns is
   partly an artefact of the renders.

The 10 iris landmarks (468-477) get the eye-region points nearest the eye centre; the fit
excludes them (the light model has no eyeballs).

The compact model keeps the part of the ICT "face" geometry around the MediaPipe face oval
(no ears, scalp or neck), closes the eye and mouth openings with fans, converts to
millimetres and stores the modes as int8 with one scale per mode (error < 0.05 mm).

Prints a JSON report (registration statistics, calibration bias) to stdout.

Usage: ``python scripts/build_face_model.py [--models DIR] [--out FILE] [--renders N]
[--apply-calibration]``
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from face3d_mesh._model_solver import umeyama

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ROOT.parent / "shared" / "face_models"
DEFAULT_OUT = ROOT / "face3d_mesh" / "data" / "ict_face_model.npz"

#: MediaPipe landmark of each point of the 68-point (Multi-PIE) scheme, 17..67 (the jaw
#: line 0..16 is a silhouette in that scheme and is not used).
MP68 = (
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301, 168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380, 61, 39, 37, 0, 267, 269, 291,
    405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip
#: Pairs whose anatomy is unambiguous in both schemes: (index into 17..67, weight).
_SURE = {19: 1.0, 22: 1.0, 25: 1.0, 28: 1.0, 31: 1.0, 37: 1.0, 13: 1.0, 16: 0.5, 34: 0.5}


# --------------------------------------------------------------------------- geometry


def load_obj_vertices(path: Path) -> np.ndarray:
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(rows, dtype=np.float64)


def closest_on_triangles(p, a, b, c):
    """Closest points on triangles (a, b, c) to points p, all (N, 3): barycentrics (N, 3)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        v, w = vb * denom, vc * denom
        bary = np.column_stack([1 - v - w, v, w])
        # edges and corners (Ericson, Real-Time Collision Detection 5.1.5)
        t_ab = np.clip(d1 / (d1 - d3), 0, 1)
        t_ac = np.clip(d2 / (d2 - d6), 0, 1)
        t_bc = np.clip((d4 - d3) / ((d4 - d3) + (d5 - d6)), 0, 1)
    cases = [
        ((d1 <= 0) & (d2 <= 0), lambda: (1, 0, 0)),
        ((d3 >= 0) & (d4 <= d3), lambda: (0, 1, 0)),
        ((d6 >= 0) & (d5 <= d6), lambda: (0, 0, 1)),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), lambda: (1 - t_ab, t_ab, 0 * t_ab)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), lambda: (1 - t_ac, 0 * t_ac, t_ac)),
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), lambda: (0 * t_bc, 1 - t_bc, t_bc)),
    ]
    done = np.zeros(len(p), bool)
    for cond, value in cases:
        sel = cond & ~done
        if sel.any():
            vals = [np.broadcast_to(np.asarray(x, float), (len(p),)) for x in value()]
            bary[sel] = np.column_stack(vals)[sel]
            done |= sel
    return bary


class SurfaceQuery:
    """Closest points on a fixed-topology triangle mesh (the candidates: triangles whose
    centroids are among the k nearest to the query)."""

    def __init__(self, triangles: np.ndarray, k: int = 24):
        self.triangles, self.k = triangles, k

    def closest(self, vertices: np.ndarray, points: np.ndarray, allowed=None):
        tris = self.triangles if allowed is None else self.triangles[allowed]
        ids = np.arange(len(self.triangles)) if allowed is None else np.flatnonzero(allowed)
        corners = vertices[tris]
        tree = cKDTree(corners.mean(axis=1))
        _, cand = tree.query(points, k=self.k)
        n, k = cand.shape
        p = np.repeat(points, k, axis=0)
        a, b, c = (corners[cand.ravel(), j] for j in range(3))
        bary = closest_on_triangles(p, a, b, c)
        q = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
        dist = np.linalg.norm(q - p, axis=1).reshape(n, k)
        best = dist.argmin(axis=1)
        flat = np.arange(n) * k + best
        return ids[cand[np.arange(n), best]], bary[flat], q[flat]


def interpolate(values: np.ndarray, triangles: np.ndarray, tri: np.ndarray, bary: np.ndarray):
    """Values (..., V, 3) at surface points (tri, bary): (..., N, 3)."""
    corners = values[..., triangles[tri], :]  # (..., N, 3, 3)
    return np.einsum("...nkc,nk->...nc", corners, bary)


# --------------------------------------------------------------------------- step 1 + 2


def _fit_coefficients(targets, weights, basis_at, mean_at, n_id, prior_sigma_cm):
    """Identity (N(0,1)) + expression ([0,1]) coefficients fitting points to targets, cm."""
    n = len(targets)
    design = basis_at.reshape(-1, n * 3).T  # (3N, K)
    resid = (targets - mean_at).ravel()
    w = np.repeat(weights, 3) / prior_sigma_cm**2
    k = design.shape[1]
    reg = np.ones(k)
    reg[n_id:] = 0.5  # a mild pull of expressions toward 0
    lower = np.r_[np.full(n_id, -np.inf), np.zeros(k - n_id)]
    upper = np.r_[np.full(n_id, np.inf), np.ones(k - n_id)]
    from scipy.optimize import lsq_linear

    sw = np.sqrt(w)[:, None]
    a = np.vstack([design * sw, np.diag(np.sqrt(reg))])
    b = np.r_[resid * sw[:, 0], np.zeros(k)]
    return lsq_linear(a, b, bounds=(lower, upper), method="bvls").x


def register_geometric(ict: dict, canonical: np.ndarray, log) -> dict:
    """Steps 1 and 2: canonical landmarks -> (triangle, barycentrics) on the ICT surface."""
    triangles = ict["triangles"]
    face_tri = (triangles <= ict["ranges"][0, 1]).all(axis=1)
    neutral = ict["neutral"].astype(np.float64)
    basis = np.concatenate([ict["id_modes"], ict["expr_modes"]]).astype(np.float64)
    n_id = len(ict["id_modes"])
    lm68 = ict["lm68"]
    mp_idx = np.array(MP68)
    ict_idx = lm68[17:68]
    pair_w = np.full(len(mp_idx), 0.2)
    for i, wt in _SURE.items():
        pair_w[i] = wt
    s, rot, t = umeyama(canonical[mp_idx], neutral[ict_idx], pair_w)
    query = SurfaceQuery(triangles)
    coef = np.zeros(len(basis))
    shape = neutral
    for it in range(8):
        src = s * canonical @ rot.T + t
        tri, bary, closest = query.closest(shape, src, allowed=face_tri)
        # similarity toward the surface (and the anatomical pairs)
        pts = np.vstack([canonical, canonical[mp_idx]])
        dst = np.vstack([closest, shape[ict_idx]])
        w = np.r_[np.ones(len(canonical)), 4 * pair_w]
        s, rot, t = umeyama(pts, dst, w)
        src = s * canonical @ rot.T + t
        # coefficients: the surface points follow the canonical vertices
        mean_at = np.vstack([interpolate(neutral, triangles, tri, bary), neutral[ict_idx]])
        basis_at = np.concatenate(
            [interpolate(basis, triangles, tri, bary), basis[:, ict_idx]], axis=1
        )
        targets = np.vstack([src, src[mp_idx]])
        coef = _fit_coefficients(targets, w, basis_at, mean_at, n_id, prior_sigma_cm=0.1)
        shape = neutral + np.tensordot(coef, basis, axes=1)
        rms = np.sqrt(((interpolate(shape, triangles, tri, bary) - src) ** 2).sum(1).mean())
        log(f"  non-rigid {it}: scale {s:.4f}, |id| {np.linalg.norm(coef[:n_id]):.2f}, "
            f"surface rms {10 * rms:.2f} mm")  # fmt: skip
    src = s * canonical @ rot.T + t
    tri, bary, closest = query.closest(shape, src, allowed=face_tri)
    gap = np.linalg.norm(closest - src, axis=1) * 10
    log(f"  canonical-to-fitted-surface distance: median {np.median(gap):.2f} mm, "
        f"max {gap.max():.2f} mm")  # fmt: skip
    return {"tri": tri, "bary": bary, "coef": coef, "similarity": (s, rot, t)}


# --------------------------------------------------------------------------- compact model


def boundary_loops(triangles: np.ndarray) -> list[list[int]]:
    """Closed boundary loops of a triangle mesh, each a list of vertex indices in order."""
    from collections import Counter, defaultdict

    count = Counter()
    for t in triangles:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            count[(min(a, b), max(a, b))] += 1
    adj = defaultdict(list)
    for (a, b), c in sorted(count.items()):
        if c == 1:
            adj[a].append(b)
            adj[b].append(a)
    seen, loops = set(), []
    for start in sorted(adj):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [x for x in adj[cur] if x != prev and (x not in seen or x == start)]
            if not nxt or nxt[0] == start:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return loops


def _cylinder_coords(points: np.ndarray, centre_z: float) -> np.ndarray:
    """(angle about the vertical axis through (0, ., centre_z) in cm of arc at 9 cm, y)."""
    return np.column_stack([9.0 * np.arctan2(points[:, 0], points[:, 2] - centre_z), points[:, 1]])


def face_region(ict: dict, oval_points: np.ndarray, band_cm: float) -> np.ndarray:
    """Vertices of the ICT face geometry inside the MediaPipe face oval (seen on a cylinder
    about the head's vertical axis) or within ``band_cm`` of it along the surface: bool (V,)."""
    import cv2
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    neutral = ict["neutral"].astype(np.float64)
    last = int(ict["ranges"][0, 1])
    tris = ict["triangles"][(ict["triangles"] <= last).all(axis=1)]
    poly = _cylinder_coords(oval_points, centre_z=0.0)
    coords = _cylinder_coords(neutral, centre_z=0.0)
    contour = poly.astype(np.float32).reshape(-1, 1, 2)
    inside = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0
                       for x, y in coords])  # fmt: skip
    inside &= (np.arange(len(neutral)) <= last) & (neutral[:, 2] > 0.0)
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    length = np.linalg.norm(neutral[edges[:, 0]] - neutral[edges[:, 1]], axis=1)
    graph = coo_matrix((length, (edges[:, 0], edges[:, 1])), shape=(len(neutral),) * 2)
    dist = dijkstra(graph.tocsr(), directed=False, indices=np.flatnonzero(inside),
                    limit=band_cm, min_only=True)  # fmt: skip
    return np.isfinite(dist)


def _fan(loop: list[int], centre: int) -> np.ndarray:
    ring = np.asarray(loop, np.int64)
    return np.column_stack([np.roll(ring, -1), ring, np.full(len(ring), centre)])


def compact_model(ict: dict, positions_mm: np.ndarray, *, band_cm: float = 1.5) -> dict:
    """The face part of the ICT model in mm with closed eye and mouth openings, and the
    468 registered landmarks (``positions_mm``: on the neutral head, mm) as triangles and
    barycentric coordinates on it: the arrays of the package's data file."""
    from face3d_mesh.landmarks import FACE_OVAL

    triangles = ict["triangles"].astype(np.int64)
    neutral = ict["neutral"].astype(np.float64)
    modes = np.concatenate([ict["id_modes"], ict["expr_modes"]]).astype(np.float64)
    mm = float(ict["mm_scale"])
    keep = face_region(ict, positions_mm[list(FACE_OVAL)] / mm, band_cm)
    kept_tri = np.flatnonzero(keep[triangles].all(axis=1))
    source = np.flatnonzero(keep)
    new_index = np.full(len(neutral), -1, np.int64)
    new_index[source] = np.arange(len(source))
    tris = new_index[triangles[kept_tri]]
    uv = _vertex_uv(ict["uv"][ict["tri_uv"][kept_tri]], tris, len(source))
    verts, mode_v = neutral[source], modes[:, source]
    loops = sorted(boundary_loops(tris), key=len)
    holes = loops[:-1]  # the longest loop is the outer boundary
    fans = [_fan(loop, len(source) + i) for i, loop in enumerate(holes)]
    verts = np.vstack([verts, *[verts[loop].mean(axis=0) for loop in holes]])
    mode_v = np.concatenate([mode_v, np.stack([mode_v[:, h].mean(axis=1) for h in holes], 1)], 1)
    uv = np.vstack([uv, *[uv[loop].mean(axis=0) for loop in holes]])
    tris = np.vstack([tris, *fans])
    lm_tri, lm_bary, on_surface = SurfaceQuery(tris).closest(verts * mm, positions_mm)
    gap = np.linalg.norm(on_surface - positions_mm, axis=1)
    if gap.max() > 0.5:
        raise RuntimeError(f"registered landmarks {np.flatnonzero(gap > 0.5).tolist()} lie up "
                           f"to {gap.max():.1f} mm off the kept face region")  # fmt: skip
    arrays = {
        "neutral": (verts * mm).astype(np.float32),
        "triangles": tris.astype(np.int32),
        "uv": uv.astype(np.float32),
        "source_vertex": np.r_[source, np.full(len(holes), -1)].astype(np.int32),
        # ICT's own 68-point (Multi-PIE) landmark vertices, for checking the registration
        "ict_lm68": new_index[ict["lm68"]].astype(np.int32),
        "hole_names": np.array(_hole_names(verts[len(source) :])),
        "expr_names": np.asarray(ict["expr_names"]),
        "n_identity": np.int32(len(ict["id_modes"])),
    }
    arrays.update(_quantized("modes", mode_v * mm))
    arrays["lm_triangle"], arrays["lm_bary"] = _with_irises(lm_tri, lm_bary, arrays, holes)
    return arrays


def _vertex_uv(corner_uv: np.ndarray, tris: np.ndarray, n: int) -> np.ndarray:
    """One texture coordinate per vertex (the face part of the ICT mesh has no UV seams:
    where a vertex has several UV entries they are equal)."""
    uv = np.zeros((n, 2))
    uv[tris.ravel()] = corner_uv.reshape(-1, 2)
    spread = np.abs(uv[tris.ravel()] - corner_uv.reshape(-1, 2)).max()
    if spread > 1e-6:
        raise RuntimeError(f"the kept region has a UV seam ({spread:.3g})")
    return uv


def _hole_names(centres: np.ndarray) -> list[str]:
    names = []
    for c in centres:
        if c[1] < 0:
            names.append("mouth")
        else:
            names.append("left_eye" if c[0] > 0 else "right_eye")  # x: the subject's left
    return names


def _quantized(name: str, values: np.ndarray) -> dict:
    """int8 values with one float32 scale per leading index (round to nearest)."""
    scale = np.abs(values).reshape(len(values), -1).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    q = np.rint(values / scale[:, None, None]).astype(np.int8)
    return {name: q, name + "_scale": scale.astype(np.float32)}


def _with_irises(lm_tri, lm_bary, arrays, holes):
    """Add the 10 iris landmarks: centre at the eye opening's centre, boundary points
    5.85 mm (an iris radius) to the side, above, below, on the opening's fan."""
    from face3d_mesh.landmarks import LEFT_IRIS, RIGHT_IRIS

    verts, tris = arrays["neutral"].astype(np.float64), arrays["triangles"].astype(np.int64)
    names = list(arrays["hole_names"])
    tri = np.r_[lm_tri, np.zeros(10, np.int64)]
    bary = np.vstack([lm_bary, np.zeros((10, 3))])
    n_fan_start = len(tris) - sum(len(h) for h in holes)
    start = n_fan_start
    for name, hole in zip(names, holes, strict=True):
        fan = np.arange(start, start + len(hole))
        start += len(hole)
        if name == "mouth":
            continue
        iris = RIGHT_IRIS if name == "right_eye" else LEFT_IRIS
        centre = verts[tris[fan[0], 2]]
        # boundary order: image-right (+x for a frontal face), top, image-left, bottom
        offsets = [(0, 0), (5.85, 0), (0, 5.85), (-5.85, 0), (0, -5.85)]
        targets = np.array([centre + (dx, dy, 0.0) for dx, dy in offsets])
        allowed = np.zeros(len(tris), bool)
        allowed[fan] = True
        t, b, _ = SurfaceQuery(tris, k=min(24, len(fan))).closest(verts, targets, allowed)
        tri[list(iris)], bary[list(iris)] = t, b
    return tri.astype(np.int32), bary.astype(np.float32)


# --------------------------------------------------------------------------- step 3


def head_with_closed_openings(ict: dict) -> dict:
    """The whole ICT head (mm) with its eye and mouth openings closed by fans: what the
    calibration renders show. Fans come after ICT's own triangles."""
    tris = ict["triangles"].astype(np.int64)
    neutral = ict["neutral"].astype(np.float64)
    modes = np.concatenate([ict["id_modes"], ict["expr_modes"]]).astype(np.float32)
    holes = [loop for loop in boundary_loops(tris) if neutral[loop].mean(axis=0)[1] > -10]
    fans = [_fan(loop, len(neutral) + i) for i, loop in enumerate(holes)]
    sizes = [len(h) for h in holes]
    fan_of = np.r_[np.full(len(tris), -1), np.repeat(np.arange(len(holes)), sizes)]
    mm = float(ict["mm_scale"])
    return {
        "neutral": np.vstack([neutral, [neutral[h].mean(axis=0) for h in holes]]) * mm,
        "modes": np.concatenate([modes, np.stack([modes[:, h].mean(axis=1) for h in holes], 1)], 1)
        * mm,
        "triangles": np.vstack([tris, *fans]),
        "fan_of": fan_of,
        "hole_is_mouth": [bool(neutral[h].mean(axis=0)[1] < 0) for h in holes],
        "centres": np.arange(len(neutral), len(neutral) + len(holes)),
    }


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Model frame to camera frame (x right, y down, z forward), as in
    ``scripts/render_scan_cases.py``: Rz(roll) Rx(-pitch) Ry(-yaw) diag(1, -1, -1)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry @ np.diag([1.0, -1.0, -1.0])


def _vertex_normals(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    n = np.zeros_like(v)
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def render_head(head: dict, verts: np.ndarray, rot, t, focal, size, light, skin):
    """Shaded RGB render (uint8) of the head, its projected vertices and triangle buffer.
    Lambertian skin, eyes painted on the eye fans (sclera, iris 11.7 mm, pupil), the
    mouth's fan dark."""
    from face3d_mesh.depth._zbuffer import barycentric, rasterize

    tris = head["triangles"]
    cam = verts @ rot.T + t
    uv = focal * cam[:, :2] / cam[:, 2:3] + (size - 1) / 2
    _, owner = rasterize(uv, cam[:, 2], tris, (size, size))
    rows, cols = np.nonzero(owner >= 0)
    tri = owner[rows, cols]
    bary = barycentric(uv, tris, tri, np.column_stack([cols, rows]))
    normal = (_vertex_normals(cam, tris)[tris[tri]] * bary[:, :, None]).sum(axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    normal *= -np.sign(np.median(normal[:, 2]))  # toward the camera
    lam = np.clip(normal @ (np.asarray(light) / np.linalg.norm(light)), 0, 1)
    colour = np.asarray(skin)[None] * (0.25 + 0.8 * lam[:, None])
    pos = (bary[:, :, None] * verts[tris[tri]]).sum(axis=1)
    for i, (centre, mouth) in enumerate(zip(head["centres"], head["hole_is_mouth"], strict=True)):
        on = head["fan_of"][tri] == i
        if mouth:
            colour[on] = (0.25, 0.1, 0.1)
            continue
        r = np.linalg.norm(pos[on, :2] - verts[centre, :2], axis=1)[:, None]
        eye = np.where(r < 5.85, np.array([0.3, 0.2, 0.12]), np.array([0.92, 0.9, 0.88]))
        colour[on] = np.where(r < 2.2, 0.03, eye) * (0.7 + 0.3 * lam[on, None])
    image = np.empty((size, size, 3))
    image[:] = (0.55, 0.58, 0.62)
    image[rows, cols] = colour
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), uv, owner


_MIN_FACING = 0.5  # cosine between surface normal and viewing ray: traces steeper than 60°
# from the view are ill-conditioned (a pixel's error moves them far along the surface)


def _facing(verts, tris, tri, rot, t) -> np.ndarray:
    """|cos| of the angle between each triangle's normal and the ray to its centre."""
    corners = verts[tris[np.maximum(tri, 0)]] @ rot.T + t  # (N, 3, 3) camera frame
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    ray = corners.mean(axis=1)
    cos = np.abs((normal * ray).sum(axis=1))
    return cos / np.maximum(np.linalg.norm(normal, axis=1) * np.linalg.norm(ray, axis=1), 1e-12)


def trace_landmarks(head, uv, owner, detected):
    """The surface point under each detected landmark: (tri, bary) on the head's
    topology, or tri -1 where the pixel shows no face."""
    from face3d_mesh.depth._zbuffer import barycentric

    size = owner.shape[0]
    col = np.clip(np.rint(detected[:, 0]).astype(int), 0, size - 1)
    row = np.clip(np.rint(detected[:, 1]).astype(int), 0, size - 1)
    tri = owner[row, col].astype(np.int64)
    ok = tri >= 0
    bary = np.zeros((len(detected), 3))
    bary[ok] = barycentric(uv, head["triangles"], tri[ok], detected[ok, :2])
    bary = np.clip(bary, 0, None)
    bary /= np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)
    return tri, bary


def _render_cases(n: int, seed: int):
    """Random render settings: identity, pose (half of them frontal), lens, light, skin."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        frontal = i % 4 < 2
        yield {
            "identity": 0.8 * rng.standard_normal(100),
            "yaw": float(rng.uniform(-6, 6) if frontal else rng.uniform(-30, 30)),
            "pitch": float(rng.uniform(-12, 12)),
            "roll": float(rng.uniform(-8, 8)),
            "f35": float(rng.choice([26.0, 35.0, 50.0])),
            "light": (float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.6, 0.2)), -1.0),
            "skin": tuple(np.array([0.85, 0.66, 0.55]) * rng.uniform(0.6, 1.1)),
            "frontal": frontal,
        }


def calibration_samples(ict: dict, reg: dict, n: int, seed: int, log) -> list[dict]:
    """MediaPipe on ``n`` renders of random ICT heads: per render, where each detected
    landmark lies on the neutral head (mm), and the detected and the geometric
    registration's image positions."""
    from face3d_mesh.errors import NoFaceError
    from face3d_mesh.landmarks import detect_faces

    head = head_with_closed_openings(ict)
    size, out = 768, []
    n_id = len(ict["id_modes"])
    anchor = interpolate(head["neutral"], head["triangles"], reg["tri"], reg["bary"]).mean(axis=0)
    for case in _render_cases(n, seed):
        coef = np.r_[case["identity"], np.zeros(len(head["modes"]) - n_id)].astype(np.float32)
        verts = head["neutral"] + np.tensordot(coef, head["modes"], axes=1)
        rot = head_rotation(case["yaw"], case["pitch"], case["roll"])
        focal = case["f35"] / 36.0 * size
        t = np.array([0.0, 0.0, 0.44 * focal]) - rot @ anchor
        image, uv, owner = render_head(head, verts, rot, t, focal, size, case["light"],
                                       case["skin"])  # fmt: skip
        try:
            detected = detect_faces(image)[0].points
        except NoFaceError:
            continue
        tri, bary = trace_landmarks(head, uv, owner, detected)
        on_neutral = interpolate(head["neutral"], head["triangles"], tri, bary)
        steep = _facing(verts, head["triangles"], tri, rot, t) < _MIN_FACING
        on_neutral[(tri < 0) | steep] = np.nan
        cam = interpolate(verts, head["triangles"], reg["tri"], reg["bary"]) @ rot.T + t
        out.append({
            "frontal": case["frontal"],
            "on_neutral": on_neutral,
            "detected": detected[:, :2],
            "px_per_mm": focal / float(cam[:, 2].mean()),
            "verts": verts, "rot": rot, "t": t, "focal": focal, "size": size,
        })  # fmt: skip
    log(f"  calibration: MediaPipe found the face in {len(out)} of {n} renders")
    return out


def registration_bias_mm(sample: dict, head: dict, tri, bary) -> np.ndarray:
    """Per landmark (468,): image distance (mm on the face) between MediaPipe's detection
    and the registration's point on the rendered head."""
    cam = interpolate(sample["verts"], head["triangles"], tri, bary) @ sample["rot"].T
    cam += sample["t"]
    uv = sample["focal"] * cam[:, :2] / cam[:, 2:3] + (sample["size"] - 1) / 2
    return np.linalg.norm(uv - sample["detected"][: len(uv)], axis=1) / sample["px_per_mm"]


def calibrate(ict: dict, reg: dict, samples: list[dict], log) -> dict:
    """Move each landmark to the median of where MediaPipe put it on the neutral head
    (the even-numbered renders; the face oval's from frontal renders only), report the
    bias on the odd-numbered ones before and after."""
    from face3d_mesh.landmarks import FACE_OVAL

    head = head_with_closed_openings(ict)
    fit_set, held_out = samples[0::2], samples[1::2]
    oval = np.zeros(468, bool)
    oval[list(FACE_OVAL)] = True
    stack = np.array([s["on_neutral"][:468] for s in fit_set])
    frontal = np.array([s["frontal"] for s in fit_set])
    stack[np.ix_(~frontal, oval)] = np.nan
    with warnings.catch_warnings():  # landmarks never traced: NaN, replaced below
        warnings.simplefilter("ignore", RuntimeWarning)
        target = np.nanmedian(stack, axis=0)
    geometric = interpolate(head["neutral"], head["triangles"], reg["tri"], reg["bary"])
    enough = np.isfinite(stack[:, :, 0]).sum(axis=0) >= max(3, len(stack) // 4)
    target = np.where(enough[:, None] & np.isfinite(target), target, geometric)
    n_ict = len(ict["triangles"])
    allowed = np.ones(len(head["triangles"]), bool)
    allowed[n_ict:] = True
    tri, bary, _ = SurfaceQuery(head["triangles"]).closest(head["neutral"], target, allowed)
    before = np.array([registration_bias_mm(s, head, reg["tri"], reg["bary"]) for s in held_out])
    after = np.array([registration_bias_mm(s, head, tri, bary) for s in held_out])
    shift = np.linalg.norm(target - geometric, axis=1)
    report = {
        "renders_fit": len(fit_set),
        "renders_held_out": len(held_out),
        "shift_mm_median": float(np.median(shift[:468])),
        "shift_mm_p90": float(np.percentile(shift[:468], 90)),
        "bias_before_mm": _bias_summary(before),
        "bias_after_mm": _bias_summary(after),
    }
    log(f"  calibration moved the landmarks by {report['shift_mm_median']:.2f} mm (median); "
        f"held-out bias {report['bias_before_mm']['median']:.2f} -> "
        f"{report['bias_after_mm']['median']:.2f} mm")  # fmt: skip
    positions = interpolate(head["neutral"], head["triangles"], tri, bary)
    return {"tri": tri, "bary": bary, "positions": positions, "report": report}


def _bias_summary(bias: np.ndarray) -> dict:
    """Median over renders of the per-render median (and 90th percentile) over the 468
    mesh landmarks, mm."""
    mesh = bias[:, :468]
    return {
        "median": round(float(np.median(np.median(mesh, axis=1))), 3),
        "p90": round(float(np.median(np.percentile(mesh, 90, axis=1))), 3),
    }


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--renders", type=int, default=40, help="calibration renders (0: none)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--apply-calibration", action="store_true")
    args = ap.parse_args(argv)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    with np.load(args.models / "ict_face_light.npz") as data:
        ict = {k: data[k] for k in data.files}
    canonical = load_obj_vertices(args.models / "canonical_face_model.obj")
    log("registration: similarity and non-rigid fit of the canonical mesh")
    reg = register_geometric(ict, canonical, log)
    mm = float(ict["mm_scale"])
    positions = interpolate(ict["neutral"].astype(np.float64) * mm, ict["triangles"],
                            reg["tri"], reg["bary"])  # fmt: skip
    report = {"identity_norm": float(np.linalg.norm(reg["coef"][: len(ict["id_modes"])]))}
    if args.renders:
        samples = calibration_samples(ict, reg, args.renders, args.seed, log)
        calibrated = calibrate(ict, reg, samples, log)
        report["calibration"] = calibrated["report"]
        if args.apply_calibration:
            positions = calibrated["positions"]
    report["calibration_applied"] = bool(args.apply_calibration and args.renders)
    arrays = compact_model(ict, positions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.out)
    report.update(
        out=str(args.out),
        bytes=args.out.stat().st_size,
        vertices=len(arrays["neutral"]),
        triangles=len(arrays["triangles"]),
    )
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

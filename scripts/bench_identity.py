"""How much of a face's own shape the face-model fit recovers, and why: printed as JSON.

The fidelity sets score depth maps; this asks the question behind them on faces other than
the scan's. Each morph of ``render_scan_cases.py --morph K`` changes the head scan's shape
by a known identity of the ICT face model (coefficients ``c``, its displacement
``B c`` in the model's frame). Render the scan and its morph at the same random poses,
lenses and lights, fit the model to each photo's landmarks (:func:`fit_face_model`, the
photo's focal length given), and compare the change of the fitted shape,
``B (c_morph − c_scan)``, with the true one over the model's face (the vertices within
5 mm of a landmark), after a 3D similarity (7 parameters) is taken out of both: a change
of size, place or angle is not a change of shape.

Per morph (median over its cases) and overall:

- ``fit_gain_xy``, ``fit_gain_z``: the least-squares gain of the fitted change on the true
  one, across the face (x, y) and in depth (z): 1 = the whole change recovered, 0 = none;
  ``fit_r2_*``: 1 − |fitted − true|² / |true|² (can be negative).
- ``landmark_gain``, ``landmark_r2``: the same for the 468 face-mesh landmarks in the
  image: the change MediaPipe's detected positions make between the two photos against the
  change of the true positions (the scan's landmarks moved with its surface, projected;
  a 2D similarity taken out of both).
- ``ceiling_gain_*``, ``ceiling_r2_*``: the fit's gain when given the true landmark
  positions (MediaPipe's depths kept): what the fit could recover from perfect 2D
  landmarks. The gap between ``ceiling`` and ``fit`` is MediaPipe's share of the loss;
  the gap between 1 and ``ceiling`` the fit's and the 2D evidence's.

Usage: ``python scripts/bench_identity.py ../shared/fidelity/scan [--morphs 2,4,6,7]
[--count 12] [--seed 300]`` (about 1 s per pose on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render_scan_cases import (  # noqa: E402
    case_camera,
    load_scan,
    morph_coefficients,
    morph_scan,
    random_cases,
    render,
    scan_landmarks,
)

#: Vertices of the model's face: within this distance (mm) of a landmark of its mean face.
FACE_RADIUS_MM = 5.0


def similarity_basis(points: np.ndarray) -> np.ndarray:
    """Orthonormal basis (n·d, k) of the displacement fields of ``points`` (n, d; d = 2 or
    3) that a small similarity makes: translations, a scaling and rotations (k = 4 or 7)."""
    n, dim = points.shape
    centred = points - points.mean(axis=0)
    fields = [np.tile(np.eye(dim)[i], (n, 1)) for i in range(dim)] + [centred]
    if dim == 2:
        fields.append(np.column_stack([-centred[:, 1], centred[:, 0]]))
    else:
        for axis in np.eye(3):
            fields.append(np.cross(axis, centred))
    q, _ = np.linalg.qr(np.column_stack([f.reshape(-1) for f in fields]))
    return q


def shape_change(field: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``field`` (n, d) with its similarity part (:func:`similarity_basis`) taken out."""
    flat = field.reshape(-1)
    return (flat - basis @ (basis.T @ flat)).reshape(field.shape)


def agreement(found: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """(gain, r2) of the displacement ``found`` against ``true`` (same shape): the
    least-squares factor that best maps ``true`` onto ``found``, and
    1 − |found − true|² / |true|²."""
    energy = float((true * true).sum())
    if energy <= 0:
        return float("nan"), float("nan")
    gain = float((found * true).sum()) / energy
    return gain, 1.0 - float(((found - true) ** 2).sum()) / energy


def _project(points_model, rot, t, fx, centre):
    cam = points_model @ rot.T + t
    return fx * cam[:, :2] / cam[:, 2:3] + centre


def _fit(points, fx, centre):
    from face3d_mesh.model_fit import fit_face_model

    return fit_face_model(points, focal_px=fx, principal_point=(centre, centre))


def score_case(scan, morphed, landmarks, shift_at_landmarks, coef, case, *, size, face_idx):
    """The figures of one pose (see the module docstring), or None when a face is missed."""
    from face3d_mesh import find_faces
    from face3d_mesh.errors import NoFaceError
    from face3d_mesh.morphable import face_model

    model = face_model()
    fx, rot, t = case_camera(case, size=size, distance_factor=0.44)
    centre = (size - 1) / 2
    found = []
    for mesh in (scan, morphed):
        image, _ = render(mesh[0], mesh[1], rot, t, fx, size, case[5])
        try:
            found.append(find_faces(np.ascontiguousarray(image[:, :, :3])).faces[0].points)
        except NoFaceError:
            return None
    ok = np.isfinite(landmarks).all(axis=1)
    true_uv = [_project(landmarks[ok], rot, t, fx, centre),
               _project(landmarks[ok] + shift_at_landmarks[ok], rot, t, fx, centre)]  # fmt: skip
    basis2 = similarity_basis(true_uv[0])
    detected = shape_change(found[1][:468][ok, :2] - found[0][:468][ok, :2], basis2)
    truth2 = shape_change(true_uv[1] - true_uv[0], basis2)
    gain, r2 = agreement(detected, truth2)
    row = {"landmark_gain": gain, "landmark_r2": r2}

    face = model.neutral[face_idx]
    basis3 = similarity_basis(face)
    true_change = shape_change(model.vertices(coef)[face_idx] - face, basis3)
    for label, pair in (("fit", found), ("ceiling", _with_true_positions(found, true_uv, ok))):
        fits = [_fit(points, fx, centre) for points in pair]
        change = (
            model.vertices(fits[1].identity)[face_idx] - model.vertices(fits[0].identity)[face_idx]
        )
        change = shape_change(change, basis3)
        for axes, name in ((slice(0, 2), "xy"), (slice(2, 3), "z")):
            gain, r2 = agreement(change[:, axes], true_change[:, axes])
            row[f"{label}_gain_{name}"], row[f"{label}_r2_{name}"] = gain, r2
    return row


def _with_true_positions(found, true_uv, ok):
    """The detected landmarks with the 468 face-mesh positions replaced by the true ones
    (where the scan has a landmark), MediaPipe's depths and irises kept."""
    pairs = [points.copy() for points in found]
    for points, uv in zip(pairs, true_uv, strict=True):
        points[np.flatnonzero(ok), :2] = uv
    return pairs


def _medians(rows):
    keys = rows[0].keys() if rows else ()
    return {k: round(float(np.median([r[k] for r in rows])), 3) for k in keys}


def main(argv=None) -> int:
    from scipy.spatial import cKDTree

    from face3d_mesh.morphable import face_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scan_dir", type=Path)
    ap.add_argument("--morphs", default="2,4,6,7", help="comma-separated morph seeds")
    ap.add_argument("--count", type=int, default=12, help="poses per morph")
    ap.add_argument("--seed", type=int, default=300, help="poses: seed + morph seed")
    ap.add_argument("--size", type=int, default=768, help="image side, pixels")
    args = ap.parse_args(argv)
    model = face_model()
    dist, _ = cKDTree(model.landmark_mean[:468]).query(model.neutral)
    face_idx = np.flatnonzero(dist < FACE_RADIUS_MM)
    scan = load_scan(args.scan_dir)
    landmarks = scan_landmarks(*scan)
    tree = cKDTree(np.asarray(scan[0].points))
    result = {"face_vertices": int(face_idx.size), "morphs": {}}
    everything = []
    for seed in (int(s) for s in args.morphs.split(",")):
        morphed, info = morph_scan(*scan, seed)
        shift = np.asarray(morphed.points, np.float64) - np.asarray(scan[0].points)
        at = tree.query(np.nan_to_num(landmarks))[1]
        coef = morph_coefficients(seed, info["sd"], model.n_identity)
        rows = []
        for case in random_cases(args.count, args.seed + seed, args.size):
            row = score_case(
                scan, (morphed, scan[1]), landmarks, shift[at], coef, case,
                size=args.size, face_idx=face_idx,
            )  # fmt: skip
            if row is not None:
                rows.append(row)
            print(f"morph {seed}: {case[0]}", file=sys.stderr, flush=True)
        result["morphs"][str(seed)] = {"cases": len(rows), **_medians(rows)}
        everything += rows
    result["all"] = {"cases": len(everything), **_medians(everything)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

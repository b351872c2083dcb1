#!/usr/bin/env python
"""Score reconstructions against ground-truth depth: the fidelity benchmark.

Runs the pipeline on every case of one or more fidelity sets (``../shared/fidelity`` beside
the project by default: photos of a real head scan with exact per-pixel depth in mm; more
cases of the same layout come from ``scripts/render_scan_cases.py``) with every offline
depth backend, and scores them as the fidelity README prescribes:

1. region R = pixels inside the face oval of the MediaPipe landmarks of the photo, where
   the ground truth is finite;
2. coverage = fraction of R where the reconstruction has a finite depth;
3. on R ∩ predicted: shape error = median |gt − (s·pred + t)| (s, t by least squares);
   metric error = median |gt − (pred + t)| (t = median offset); scale = s (ideal 1);
4. NoW-like 3D error: the truth back-projected to 3D with the intrinsics, the
   reconstruction's own 3D points for the same pixels (``rec.pixel_to_mesh``, mm), aligned
   by a similarity (Umeyama on the pixel correspondences, refitted once on the 90 %
   best-matching points); the median over the true points of the distance to the nearest
   aligned reconstructed point. A wrong head tilt does not count here.

Where the NoW-like error sits: per case, the median signed distance (mm; positive = the
reconstruction nearer the camera than the truth, after the alignment) of the true points in
the outer :data:`EDGE_MM` of the region at its top, bottom and two sides (for a head turned
by :data:`TURNED_DEG` or more, the sides are told apart as ``near_side`` and ``far_side``:
the far one is where the true surface is deeper), and of the interior (:data:`INTERIOR_MM`
or more inside the edge), as ``bands_mm``.

Prints a table to stderr (per case, then per backend the median and 90th percentile over
cases, the same over the frontal cases only: |yaw| and |pitch| under 5°, no roll, the
medians by |yaw| (``by_yaw``: the error grows with it) and the median of each band over the
cases) and the whole result as JSON to stdout. The neural backends need weights
(``--weights``) and are not run by default.

Each case's focal length (from its ``.json``) is given to the pipeline as a photo's EXIF
tag FocalLengthIn35mmFilm would give it; ``--no-intrinsics`` scores the pipeline as it
runs on a photo without camera metadata (a guessed 50 mm-equivalent lens; the face on the
optical axis).

``--region mediapipe`` takes the region from MediaPipe's own face mesh run once on the
whole photo (static image mode, as a scorer with its own landmark run would; the
reconstruction's mask margin, which the default region ``own`` — the reconstruction's own
landmarks — never reaches, then counts). ``--region silhouette`` scores the reconstruction's
own oval joined by its face mesh where that stands out of the oval (a turned head's nose
and lips: ``face_mask(..., silhouette=True)``), the whole face the photo shows. Each row
says how many pixels its region has (``region_px``).

Usage: ``python scripts/bench_fidelity.py [--data DIR ...] [--backends landmarks,model,hybrid]
[--limit N] [--no-intrinsics] [--region own|mediapipe|silhouette]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "fidelity"
OFFLINE = ("landmarks", "model", "hybrid")
FRONTAL_DEG = 5.0
#: The bands of :func:`band_errors`: the region's outer edge and its interior, mm (at the
#: true surface), and the yaw from which the two sides count as near and far.
EDGE_MM = 6.0
INTERIOR_MM = 15.0
TURNED_DEG = 12.0
#: Bins of |yaw| (degrees) for the summary's ``by_yaw``.
YAW_BINS = (0.0, 10.0, 20.0, 30.0, 90.0)
BANDS = ("top", "bottom", "sides", "near_side", "far_side", "interior")


def score(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> dict:
    """The fidelity README's depth-map scores (maps in mm, larger = farther)."""
    valid = region & np.isfinite(pred)
    coverage = valid.sum() / max(region.sum(), 1)
    p = pred[valid].astype(np.float64)
    g = gt[valid].astype(np.float64)
    if p.size < 10:
        return {"coverage": float(coverage), "shape_mm": None, "metric_mm": None, "scale": None}
    design = np.column_stack([p, np.ones_like(p)])
    (s, t), *_ = np.linalg.lstsq(design, g, rcond=None)
    return {
        "coverage": round(float(coverage), 4),
        "shape_mm": round(float(np.median(np.abs(g - (s * p + t)))), 3),
        "metric_mm": round(float(np.median(np.abs(g - (p + np.median(g - p))))), 3),
        "scale": round(float(s), 3),
    }


def now_error(
    rec, gt: np.ndarray, region: np.ndarray, intrinsics: dict, *, yaw_deg: float = 0.0
) -> tuple[float | None, dict]:
    """NoW-like 3D error (mm) of a reconstruction against the true depth (see the module
    docstring), the true points on every second pixel of each axis; and the signed errors
    of :func:`band_errors` (``{}`` when there are too few points)."""
    from scipy.spatial import cKDTree

    from face3d_mesh._model_solver import umeyama

    valid = region & np.isfinite(rec.depth_mm)
    rows, cols = np.nonzero(valid)
    if rows.size < 100:
        return None, {}
    z = gt[rows, cols].astype(np.float64)
    truth = np.column_stack(
        [(cols - intrinsics["cx"]) * z / intrinsics["fx"],
         (rows - intrinsics["cy"]) * z / intrinsics["fy"], z]
    )  # fmt: skip
    ours = rec.pixel_to_mesh(cols, rows, rec.depth_mm[rows, cols])
    s, rot, t = umeyama(ours, truth)
    dist = np.linalg.norm(s * ours @ rot.T + t - truth, axis=1)
    best = dist <= np.percentile(dist, 90)
    s, rot, t = umeyama(ours[best], truth[best])
    aligned = s * ours @ rot.T + t
    sample = ((rows % 2) == 0) & ((cols % 2) == 0)
    nearest, index = cKDTree(aligned).query(truth[sample])
    # positive where the aligned reconstruction lies nearer the camera than the truth
    signed = np.sign(truth[sample, 2] - aligned[index, 2]) * nearest
    edge_mm = _edge_distance_px(valid)[rows, cols] * z / intrinsics["fx"]
    bands = band_errors(
        signed,
        rows[sample],
        cols[sample],
        edge_mm[sample],
        z[sample],
        turned=abs(yaw_deg) >= TURNED_DEG,
    )
    return round(float(np.median(nearest)), 3), bands


def _edge_distance_px(region: np.ndarray) -> np.ndarray:
    """Distance (pixels) of every pixel of ``region`` from the region's edge."""
    import cv2

    return cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 5)


def band_errors(signed, rows, cols, edge_mm, depth, *, turned: bool) -> dict:
    """Median signed error (mm) of the true points in each band of the region.

    Parameters
    ----------
    signed : numpy.ndarray
        (N,) distance of each true point to the aligned reconstruction, mm, positive where
        the reconstruction is nearer the camera.
    rows, cols : numpy.ndarray
        (N,) the points' pixels.
    edge_mm : numpy.ndarray
        (N,) each point's distance from the region's edge, mm.
    depth : numpy.ndarray
        (N,) each point's true depth, mm (tells the far side of a turned head).
    turned : bool
        Report the sides as ``near_side`` and ``far_side`` rather than ``sides``.

    Returns
    -------
    dict
        Band name (of :data:`BANDS`) to the median, rounded to 0.01 mm; a band with fewer
        than 20 points is left out.
    """
    angle = np.degrees(np.arctan2(rows - rows.mean(), cols - cols.mean()))
    edge = edge_mm < EDGE_MM
    left, right = edge & (np.abs(angle) > 135), edge & (np.abs(angle) < 45)
    masks = {
        "top": edge & (angle > -135) & (angle < -45),
        "bottom": edge & (angle > 45) & (angle < 135),
        "interior": edge_mm >= INTERIOR_MM,
    }
    if not turned:
        masks["sides"] = left | right
    elif left.any() and right.any():
        far_left = np.median(depth[left]) > np.median(depth[right])
        masks["far_side"], masks["near_side"] = (left, right) if far_left else (right, left)
    return {
        name: round(float(np.median(signed[m])), 2)
        for name, m in masks.items()
        if np.count_nonzero(m) >= 20
    }


def flat_baseline(gt: np.ndarray, region: np.ndarray) -> float:
    """Shape error of a constant prediction (the plane baseline)."""
    g = gt[region].astype(np.float64)
    return float(np.median(np.abs(g - g.mean())))


def summarise(values):
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "p90": None}
    return {
        "median": round(float(np.median(values)), 3),
        "p90": round(float(np.percentile(values, 90)), 3),
    }


def is_frontal(meta: dict) -> bool:
    pose = meta.get("pose", {})
    angles = ("yaw_deg", "pitch_deg", "roll_deg")
    return all(abs(float(pose.get(k, 0.0))) < FRONTAL_DEG for k in angles)


_WHOLE_PHOTO_MESH = []


def whole_photo_landmarks(image: np.ndarray) -> np.ndarray | None:
    """(478, 2) x, y (pixel centres) of MediaPipe's face mesh run on the whole photo, or
    None when it finds no face."""
    if not _WHOLE_PHOTO_MESH:
        from mediapipe.python.solutions import face_mesh

        _WHOLE_PHOTO_MESH.append(
            face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
        )
    result = _WHOLE_PHOTO_MESH[0].process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        return None
    h, w = image.shape[:2]
    return np.array([(p.x * w, p.y * h) for p in result.multi_face_landmarks[0].landmark]) - 0.5


def run_case(
    path: Path, backends, options: dict, intrinsics: bool, region_from: str = "own"
) -> list[dict]:
    import face3d_mesh
    from face3d_mesh.errors import NoFaceError
    from face3d_mesh.mask import face_mask

    gt = np.load(path.with_name(path.stem + "_depth.npz"))["depth"]
    meta = json.loads(path.with_suffix(".json").read_text())
    extra = {"focal_length_px": float(meta["intrinsics"]["fx"])} if intrinsics else {}
    rows = []
    theirs = None
    for backend in backends:
        start = time.perf_counter()
        try:
            rec = face3d_mesh.reconstruct(path, **options, depth=backend, **extra)
        except NoFaceError:
            rows.append({"case": path.stem, "backend": backend, "no_face": True})
            continue
        seconds = time.perf_counter() - start
        if region_from == "mediapipe":
            if theirs is None:
                theirs = whole_photo_landmarks(rec.image)
            if theirs is None:
                rows.append({
                    "case": path.stem, "backend": backend, "no_face": True,
                    "note": "MediaPipe's whole-photo run found no face (no region to score)",
                })  # fmt: skip
                continue
        points = theirs if region_from == "mediapipe" else rec.landmarks
        region = face_mask(points, gt.shape, silhouette=region_from == "silhouette")
        region &= np.isfinite(gt)
        pose = meta.get("pose", {})
        now, bands = now_error(
            rec, gt, region, meta["intrinsics"], yaw_deg=float(pose.get("yaw_deg", 0.0))
        )
        rows.append({
            "case": path.stem,
            "set": path.parent.name,
            "backend": backend,
            "frontal": is_frontal(meta),
            "yaw_deg": pose.get("yaw_deg"),
            "pitch_deg": pose.get("pitch_deg"),
            "lens_mm": meta["intrinsics"].get("focal_35mm_equiv_mm"),
            "region_px": int(region.sum()),
            **score(rec.depth_mm, gt, region),
            "now_mm": now,
            "bands_mm": bands,
            "flat_shape_mm": round(flat_baseline(gt, region), 3),
            "scale_source": rec.scale.source,
            "seconds": round(seconds, 2),
        })  # fmt: skip
    return rows


def summary(rows: list[dict]) -> dict:
    rows = [r for r in rows if not r.get("no_face")]
    out = {
        "cases": len(rows),
        "coverage_min": min((r["coverage"] for r in rows), default=None),
        "shape_mm": summarise([r["shape_mm"] for r in rows]),
        "now_mm": summarise([r["now_mm"] for r in rows]),
        "metric_mm": summarise([r["metric_mm"] for r in rows]),
        "scale": summarise([r["scale"] for r in rows]),
        "flat_shape_mm": summarise([r["flat_shape_mm"] for r in rows]),
    }
    front = [r for r in rows if r["frontal"]]
    out["frontal"] = {
        "cases": len(front),
        "shape_mm": summarise([r["shape_mm"] for r in front]),
        "now_mm": summarise([r["now_mm"] for r in front]),
    }
    out["by_yaw"] = _by_yaw(rows)
    out["bands_mm"] = {
        band: summarise([r["bands_mm"].get(band) for r in rows if r.get("bands_mm")])["median"]
        for band in BANDS
    }
    return out


def _by_yaw(rows: list[dict]) -> list[dict]:
    """Case count and median errors per bin of |yaw| (cases without a pose left out)."""
    out = []
    for lo, hi in zip(YAW_BINS[:-1], YAW_BINS[1:], strict=True):
        inside = [r for r in rows if r.get("yaw_deg") is not None and lo <= abs(r["yaw_deg"]) < hi]
        out.append({
            "yaw_deg": [lo, hi],
            "cases": len(inside),
            "shape_mm": summarise([r["shape_mm"] for r in inside])["median"],
            "now_mm": summarise([r["now_mm"] for r in inside])["median"],
        })  # fmt: skip
    return out


def _print_summary(name: str, s: dict) -> None:
    def f(v):
        return "  -  " if v is None else f"{v:5.2f}"

    print(
        f"{name:28} n {s['cases']:3}  shape {f(s['shape_mm']['median'])} / "
        f"{f(s['shape_mm']['p90'])}  NoW {f(s['now_mm']['median'])} / {f(s['now_mm']['p90'])}"
        f"  frontal ({s['frontal']['cases']}) shape {f(s['frontal']['shape_mm']['median'])} "
        f"NoW {f(s['frontal']['now_mm']['median'])}  cov≥{f(s['coverage_min'])}  "
        f"scale {f(s['scale']['median'])}  (flat {f(s['flat_shape_mm']['median'])})",
        file=sys.stderr,
    )
    by_yaw = "  ".join(
        f"{lo:.0f}-{hi:.0f}° ({b['cases']}) {f(b['shape_mm'])} {f(b['now_mm'])}"
        for b in s["by_yaw"]
        for lo, hi in [b["yaw_deg"]]
        if b["cases"]
    )
    bands = "  ".join(f"{k} {v:+.2f}" for k, v in s["bands_mm"].items() if v is not None)
    print(f"{'':28} by |yaw| (shape, NoW): {by_yaw}", file=sys.stderr)
    print(f"{'':28} NoW bands (mm, + = too near): {bands}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA])
    parser.add_argument(
        "--backends", default=",".join(OFFLINE), help="comma-separated depth backends"
    )
    parser.add_argument("--weights", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N cases of each set")
    parser.add_argument(
        "--no-intrinsics",
        dest="intrinsics",
        action="store_false",
        help="do not give the pipeline each case's focal length (by default it gets it, as "
        "a photo's EXIF FocalLengthIn35mmFilm would give it)",
    )
    parser.add_argument(
        "--region",
        choices=("own", "mediapipe", "silhouette"),
        default="own",
        help="the face oval scored: the reconstruction's own landmarks' (default), that of "
        "MediaPipe's face mesh run on the whole photo, or the own oval with the face mesh "
        "where it stands out of it (a turned head's nose)",
    )
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    options = {}
    if args.weights:
        options["weights"] = args.weights
    if args.model:
        options["depth_model"] = args.model
    results = {
        "focal_length_given": args.intrinsics,
        "region": args.region,
        "backends": backends,
        "sets": {},
    }
    for data in args.data:
        cases = sorted(p for p in data.glob("*.png") if p.with_suffix(".json").exists())
        cases = cases[: args.limit] if args.limit else cases
        if not cases:
            print(f"no fidelity cases in {data}", file=sys.stderr)
            return 2
        rows = []
        for path in cases:
            for row in run_case(path, backends, options, args.intrinsics, args.region):
                rows.append(row)
                if not row.get("no_face"):
                    print(f"{row['case'][:34]:34} {row['backend']:9} cov {row['coverage']:.3f} "
                          f"shape {row['shape_mm']:5.2f}  NoW {row['now_mm']:5.2f}  "
                          f"metric {row['metric_mm']:5.2f}  scale {row['scale']:.2f}",
                          file=sys.stderr)  # fmt: skip
        per_backend = {b: summary([r for r in rows if r["backend"] == b]) for b in backends}
        no_face = sorted({r["case"] for r in rows if r.get("no_face")})
        results["sets"][str(data)] = {"cases": rows, "summary": per_backend, "no_face": no_face}
        print(f"--- {data} ({len(cases)} cases; no face found in {len(no_face)})", file=sys.stderr)
        for b in backends:
            _print_summary(b, per_backend[b])
    results["targets"] = {"shape_mm_median": 2.0, "shape_mm_frontal_median": 2.5,
                          "now_mm_median": 1.1, "coverage_min": 0.97}  # fmt: skip
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

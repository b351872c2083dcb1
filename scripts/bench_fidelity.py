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

Prints a table to stderr (per case, then per backend the median and 90th percentile over
cases, and the same over the frontal cases only: |yaw| and |pitch| under 5°, no roll) and
the whole result as JSON to stdout. The neural backends need weights (``--weights``) and
are not run by default.

Each case's focal length (from its ``.json``) is given to the pipeline as a photo's EXIF
tag FocalLengthIn35mmFilm would give it; ``--no-intrinsics`` scores the pipeline as it
runs on a photo without camera metadata (a guessed 50 mm-equivalent lens; the face on the
optical axis).

Usage: ``python scripts/bench_fidelity.py [--data DIR ...] [--backends landmarks,model,hybrid]
[--limit N] [--no-intrinsics]``
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


def now_error(rec, gt: np.ndarray, region: np.ndarray, intrinsics: dict) -> float | None:
    """NoW-like 3D error (mm) of a reconstruction against the true depth (see the module
    docstring); the true points on every second pixel of each axis."""
    from scipy.spatial import cKDTree

    from face3d_mesh._model_solver import umeyama

    valid = region & np.isfinite(rec.depth_mm)
    rows, cols = np.nonzero(valid)
    if rows.size < 100:
        return None
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
    nearest, _ = cKDTree(aligned).query(truth[sample])
    return round(float(np.median(nearest)), 3)


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


def run_case(path: Path, backends, options: dict, intrinsics: bool) -> list[dict]:
    import face3d_mesh
    from face3d_mesh.errors import NoFaceError
    from face3d_mesh.mask import face_mask

    gt = np.load(path.with_name(path.stem + "_depth.npz"))["depth"]
    meta = json.loads(path.with_suffix(".json").read_text())
    extra = {"focal_length_px": float(meta["intrinsics"]["fx"])} if intrinsics else {}
    rows = []
    for backend in backends:
        start = time.perf_counter()
        try:
            rec = face3d_mesh.reconstruct(path, **options, depth=backend, **extra)
        except NoFaceError:
            rows.append({"case": path.stem, "backend": backend, "no_face": True})
            continue
        seconds = time.perf_counter() - start
        region = face_mask(rec.landmarks, gt.shape) & np.isfinite(gt)
        rows.append({
            "case": path.stem,
            "set": path.parent.name,
            "backend": backend,
            "frontal": is_frontal(meta),
            **score(rec.depth_mm, gt, region),
            "now_mm": now_error(rec, gt, region, meta["intrinsics"]),
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
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    options = {}
    if args.weights:
        options["weights"] = args.weights
    if args.model:
        options["depth_model"] = args.model
    results = {"focal_length_given": args.intrinsics, "backends": backends, "sets": {}}
    for data in args.data:
        cases = sorted(p for p in data.glob("*.png") if p.with_suffix(".json").exists())
        cases = cases[: args.limit] if args.limit else cases
        if not cases:
            print(f"no fidelity cases in {data}", file=sys.stderr)
            return 2
        rows = []
        for path in cases:
            for row in run_case(path, backends, options, args.intrinsics):
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

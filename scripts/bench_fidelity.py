#!/usr/bin/env python
"""Score reconstructions against ground-truth depth: the fidelity benchmark.

Runs the pipeline on every case of the fidelity set (``../shared/fidelity`` beside the
project by default: photos of a real head scan with exact per-pixel depth in mm) and scores
it exactly as that folder's README prescribes:

1. region R = pixels inside the face oval of the MediaPipe landmarks of the photo, where
   the ground truth is finite;
2. coverage = fraction of R where the reconstruction has a finite depth;
3. on R ∩ predicted: shape error = median |gt − (s·pred + t)| (s, t by least squares);
   metric error = median |gt − (pred + t)| (t = median offset); scale = s (ideal 1).

Prints a table (per case, then median and 90th percentile over cases, beside the
flat-plane baseline) to stderr and the whole result as JSON to stdout.

Each case's focal length (from its ``.json``) is given to the pipeline as a photo's EXIF
tag FocalLengthIn35mmFilm would give it; ``--no-intrinsics`` scores the pipeline as it
runs on a photo without camera metadata (the face is then assumed on the optical axis).

Usage: ``python scripts/bench_fidelity.py [--data DIR] [--depth landmarks] [--limit N]
[--no-intrinsics]``
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


def score(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> dict:
    """The fidelity README's scores of one prediction (depth maps in mm, larger = farther)."""
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--depth", default="landmarks", choices=["landmarks", "midas", "fused", "auto"]
    )
    parser.add_argument("--weights", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases")
    parser.add_argument(
        "--no-intrinsics",
        dest="intrinsics",
        action="store_false",
        help="do not give the pipeline each case's focal length (by default it gets it, as "
        "a photo's EXIF FocalLengthIn35mmFilm would give it)",
    )
    args = parser.parse_args()

    import face3d_mesh
    from face3d_mesh.mask import face_mask

    cases = sorted(p for p in args.data.glob("*.png") if (p.with_suffix(".json")).exists())
    if args.limit:
        cases = cases[: args.limit]
    if not cases:
        print(f"no fidelity cases in {args.data}", file=sys.stderr)
        return 2
    options = {"depth": args.depth}
    if args.weights:
        options["weights"] = args.weights
    if args.model:
        options["depth_model"] = args.model
    rows = []
    for path in cases:
        gt = np.load(path.with_name(path.stem + "_depth.npz"))["depth"]
        extra = {}
        if args.intrinsics:
            meta = json.loads(path.with_suffix(".json").read_text())
            extra["focal_length_px"] = float(meta["intrinsics"]["fx"])
        start = time.perf_counter()
        rec = face3d_mesh.reconstruct(path, **options, **extra)
        seconds = time.perf_counter() - start
        region = face_mask(rec.landmarks, gt.shape) & np.isfinite(gt)
        row = {
            "case": path.stem,
            **score(rec.depth_mm, gt, region),
            "flat_shape_mm": round(flat_baseline(gt, region), 3),
            "scale_source": rec.scale.source,
            "backend": rec.depth_info.get("backend"),
            "seconds": round(seconds, 2),
        }
        rows.append(row)
        print(
            f"{row['case']:38} cov {row['coverage']:.3f}  shape {row['shape_mm']:5.2f} mm  "
            f"metric {row['metric_mm']:5.2f} mm  scale {row['scale']:.2f}  "
            f"(flat {row['flat_shape_mm']:.2f})",
            file=sys.stderr,
        )
    result = {
        "data": str(args.data),
        "depth": args.depth,
        "focal_length_given": args.intrinsics,
        "cases": rows,
        "summary": {
            "coverage_min": min(r["coverage"] for r in rows),
            "shape_mm": summarise([r["shape_mm"] for r in rows]),
            "metric_mm": summarise([r["metric_mm"] for r in rows]),
            "scale": summarise([r["scale"] for r in rows]),
            "flat_shape_mm": summarise([r["flat_shape_mm"] for r in rows]),
        },
        "targets": {"shape_mm_median": 2.5, "coverage_min": 0.95},
    }
    s = result["summary"]
    print(
        f"{'median':38} cov≥{s['coverage_min']:.3f}  shape {s['shape_mm']['median']:5.2f} mm  "
        f"metric {s['metric_mm']['median']:5.2f} mm  scale {s['scale']['median']:.2f}  "
        f"(flat {s['flat_shape_mm']['median']:.2f})",
        file=sys.stderr,
    )
    print(
        f"{'p90':38}            shape {s['shape_mm']['p90']:5.2f} mm  "
        f"metric {s['metric_mm']['p90']:5.2f} mm",
        file=sys.stderr,
    )
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

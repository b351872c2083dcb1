#!/usr/bin/env python
"""Coverage of the face oval and error of the metric scale, on renders with exact depth.

For every case of a fidelity-style folder (``NAME.png``, ``NAME_depth.npz``, ``NAME.json``:
``../shared/fidelity`` or renders of ``scripts/render_scan_cases.py``) it reconstructs the
face (``landmarks`` backend, the case's focal length given as EXIF would give it) and reports:

- ``coverage_own``: the fidelity README's coverage with the region taken from the
  reconstruction's own landmarks (what ``bench_fidelity.py`` reports);
- ``coverage_indep``: the worst coverage over regions taken from independent MediaPipe
  face-mesh runs on the same photo (the whole photo as it is, scaled by 0.75 and 1.33, and
  padded on two sides), as a scorer with its own landmark run would measure it; and
  ``coverage_whole``, that of the first of them alone (the whole photo as it is, one run:
  the fidelity README's region; None when it found no face). Landmarks
  of one face differ by a few pixels from run to run, most on the forehead of a head tilted
  up, so this is the figure that says whether the mask covers "the" face oval;
- ``scale_ratio``: ``rec.scale.mm_per_px`` over the truth at the outer eye corners, where
  the pipeline defines it (median true depth around the two outer-corner landmarks / fx),
  ideal 1; and ``scale_source``, ``scale_uncertainty``;
- ``fitted_s``: the depth scale s of the shape-error fit (as in ``bench_fidelity.py``).

Prints one line per case to stderr and the whole result as JSON to stdout.

Usage: ``python scripts/bench_scale_coverage.py [DIR ...] [--limit N] [--no-indep]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "fidelity"
OUTER_EYE_CORNERS = (33, 263)


def independent_landmarks(mesh, image: np.ndarray) -> list[np.ndarray | None]:
    """(478, 2) landmark x, y of independent whole-photo MediaPipe runs (photo pixels), the
    photo as it is first; None for a run that found no face."""
    import cv2

    runs = []
    for factor, pad in ((1.0, 0), (0.75, 0), (1.33, 0), (1.0, 96)):
        im = cv2.copyMakeBorder(image, pad, 0, pad, 0, cv2.BORDER_REPLICATE) if pad else image
        if factor != 1.0:
            interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            im = cv2.resize(im, None, fx=factor, fy=factor, interpolation=interp)
        result = mesh.process(np.ascontiguousarray(im))
        if not result.multi_face_landmarks:
            runs.append(None)
            continue
        h, w = im.shape[:2]
        pts = np.array([(p.x * w, p.y * h) for p in result.multi_face_landmarks[0].landmark])
        runs.append(pts / factor - 0.5 - pad)  # MediaPipe's corner origin -> pixel centres
    return runs


def true_mm_per_px(gt: np.ndarray, landmarks: np.ndarray, fx: float) -> float | None:
    """Millimetres per pixel at the outer eye corners: median true depth near them / fx."""
    values = []
    for i in OUTER_EYE_CORNERS:
        u, v = (int(round(c)) for c in landmarks[i, :2])
        patch = gt[max(v - 2, 0) : v + 3, max(u - 2, 0) : u + 3]
        values.extend(patch[np.isfinite(patch)].tolist())
    return float(np.median(values)) / fx if values else None


def fitted_s(pred: np.ndarray, gt: np.ndarray, region: np.ndarray) -> float | None:
    ok = region & np.isfinite(pred)
    if ok.sum() < 10:
        return None
    p, g = pred[ok].astype(np.float64), gt[ok].astype(np.float64)
    (s, _), *_ = np.linalg.lstsq(np.column_stack([p, np.ones_like(p)]), g, rcond=None)
    return float(s)


def score_case(path: Path, mesh, *, indep: bool) -> dict:
    import face3d_mesh
    from face3d_mesh.mask import face_mask

    gt = np.load(path.with_name(path.stem + "_depth.npz"))["depth"]
    meta = json.loads(path.with_suffix(".json").read_text())
    fx = float(meta["intrinsics"]["fx"])
    rec = face3d_mesh.reconstruct(path, depth="landmarks", focal_length_px=fx)
    finite_gt = np.isfinite(gt)
    predicted = np.isfinite(rec.depth_mm)
    own = face_mask(rec.landmarks, gt.shape) & finite_gt
    row = {
        "case": path.stem,
        "coverage_own": round(float((own & predicted).sum() / max(own.sum(), 1)), 4),
        "coverage_indep": None,
        "coverage_whole": None,
        "scale_source": rec.scale.source,
        "scale_uncertainty": round(float(rec.scale.uncertainty), 4),
        "scale_ratio": None,
        "fitted_s": None,
    }
    if indep:
        covs = []
        for pts in independent_landmarks(mesh, rec.image):
            if pts is None:
                covs.append(None)
                continue
            region = face_mask(pts, gt.shape) & finite_gt
            covs.append(float((region & predicted).sum() / max(region.sum(), 1)))
        found = [c for c in covs if c is not None]
        row["coverage_indep"] = round(min(found), 4) if found else None
        row["coverage_whole"] = None if covs[0] is None else round(covs[0], 4)
    truth = true_mm_per_px(gt, rec.landmarks, fx)
    if truth:
        row["scale_ratio"] = round(rec.scale.mm_per_px / truth, 4)
    s = fitted_s(rec.depth_mm, gt, own)
    row["fitted_s"] = None if s is None else round(s, 3)
    return row


def summary(rows: list[dict], key: str) -> dict:
    values = np.array([r[key] for r in rows if r[key] is not None], dtype=float)
    if values.size == 0:
        return {}
    return {
        "min": round(float(values.min()), 4),
        "p10": round(float(np.percentile(values, 10)), 4),
        "median": round(float(np.median(values)), 4),
        "p90": round(float(np.percentile(values, 90)), 4),
        "max": round(float(values.max()), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="*", default=[DEFAULT_DATA])
    parser.add_argument("--limit", type=int, default=None, help="only the first N per folder")
    parser.add_argument(
        "--no-indep", dest="indep", action="store_false", help="skip the independent runs"
    )
    args = parser.parse_args()
    from mediapipe.python.solutions import face_mesh

    from face3d_mesh.errors import NoFaceError

    mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    rows, failed = [], []
    for folder in args.data:
        cases = sorted(p for p in folder.glob("*.png") if p.with_suffix(".json").exists())
        for path in cases[: args.limit]:
            try:
                row = score_case(path, mesh, indep=args.indep)
            except NoFaceError as exc:
                failed.append({"case": path.stem, "error": str(exc)})
                print(f"{path.stem:36} {exc}", file=sys.stderr)
                continue
            rows.append(row)
            print(
                f"{row['case']:36} cov own {row['coverage_own']:.3f} indep "
                f"{row['coverage_indep'] if row['coverage_indep'] is not None else '-':>6}  "
                f"scale x{row['scale_ratio']} ({row['scale_source']}, "
                f"±{100 * row['scale_uncertainty']:.0f}%)  s {row['fitted_s']}",
                file=sys.stderr,
            )
    if not rows:
        print("no cases found", file=sys.stderr)
        return 2
    result = {
        "data": [str(d) for d in args.data],
        "cases": rows,
        "failed": failed,
        "summary": {k: summary(rows, k) for k in ("coverage_own", "coverage_indep",
                                                  "coverage_whole", "scale_ratio", "fitted_s")},
    }  # fmt: skip
    ratios = np.array([r["scale_ratio"] for r in rows if r["scale_ratio"] is not None])
    result["summary"]["scale_within_5pct"] = round(float(np.mean(np.abs(ratios - 1) <= 0.05)), 3)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

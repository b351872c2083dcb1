#!/usr/bin/env python
"""Benchmark the pipeline: per-stage wall time and peak memory, printed as JSON.

Cases (each measured in a fresh subprocess so that peak RSS belongs to that case alone):

- ``sample``: ``sample_data/astronaut.png`` (512×512);
- ``1024``: the sample upscaled to 1024×1024;
- ``12mp``: the sample upscaled and padded to 4000×3000 (12 megapixels).

Stage times are the median of ``--repeats`` warm runs (the first run, which loads
MediaPipe, is reported separately). ``--depth`` picks the backend (default ``hybrid``,
what ``auto`` runs without network weights: the face-model fit, its depth and the landmark
depth). The ``surface`` stage is also broken down into its steps (``surface_steps_ms``,
medians of as many runs of :func:`surface_arrays` on the same depth map): ``grid``,
``outline`` (the smooth outline), ``band`` (the Delaunay band between grid and outline, and
the grid's triangles), ``rim`` (depth sampling and rim smoothing), ``attributes``
(normals, UV, colours); ``outline_ms`` is the cost of the smooth outline (outline + band +
rim). ``from_png_file_ms``: ``reconstruct`` given the photo as a PNG file (decoding and
EXIF included; median of as many runs; ``peak_rss_mb`` is measured before these runs,
``peak_rss_with_png_file_mb`` after). Also timed: ``face3d-mesh export`` from the command
line with that backend, interpreter start-up included, and whether that path imports torch.

Targets (2-core machine): all stages except a neural network ≤ 150 ms together for the
1024×1024 photo; CLI export ≤ 3 s; peak RSS ≤ 1.5 GB for 12 MP.

Usage: ``python scripts/bench_pipeline.py [--repeats 5] [--cases sample,1024,12mp]
[--depth hybrid]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "astronaut.png"
DEPTH = os.environ.get("FACE3D_BENCH_DEPTH", "hybrid")  # set by --depth for the subprocesses


def make_image(case: str):
    import cv2
    import numpy as np

    from face3d_mesh.image import load_image

    rgb = load_image(SAMPLE)
    if case == "sample":
        return rgb
    if case == "1024":
        return cv2.resize(rgb, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    if case == "12mp":
        big = cv2.resize(rgb, (3000, 3000), interpolation=cv2.INTER_CUBIC)
        canvas = np.full((3000, 4000, 3), 110, np.uint8)
        canvas[:, 500:3500] = big
        return canvas
    raise SystemExit(f"unknown case {case}")


def measure_case(case: str, repeats: int) -> dict:
    """Runs inside the subprocess for one case."""
    import numpy as np

    import face3d_mesh

    image = make_image(case)
    start = time.perf_counter()
    first = face3d_mesh.reconstruct(image, depth=DEPTH)
    first_total = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        runs.append(face3d_mesh.reconstruct(image, depth=DEPTH).timings)
    stages = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    total = sum(stages.values())
    steps = surface_steps(first, repeats)
    solid_t = time.perf_counter()
    first.solid()
    solid_s = time.perf_counter() - solid_t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        first.save(Path(tmp) / "face.stl")
        stl_s = time.perf_counter() - t
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # from the array
        file_s = from_png_file(image, Path(tmp) / "photo.png", repeats)
    return {
        "case": case,
        "size": [int(image.shape[1]), int(image.shape[0])],
        "triangles": int(first.mesh.n_cells),
        "stages_ms": {k: round(1000 * v, 1) for k, v in stages.items()},
        "surface_steps_ms": {k: round(1000 * v, 1) for k, v in steps.items()},
        "outline_ms": round(1000 * (steps["outline"] + steps["band"] + steps["rim"]), 1),
        "total_ms": round(1000 * total, 1),
        "total_without_load_ms": round(1000 * (total - stages.get("load", 0.0)), 1),
        "first_run_ms": round(1000 * first_total, 1),
        "from_png_file_ms": round(1000 * file_s, 1),
        "solid_ms": round(1000 * solid_s, 1),
        "save_stl_ms": round(1000 * stl_s, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "peak_rss_with_png_file_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "depth_finite_px": int(np.isfinite(first.depth_mm).sum()),
        "torch_imported": "torch" in sys.modules,
    }


def from_png_file(image, path: Path, repeats: int) -> float:
    """Median wall time (s) of ``reconstruct`` given the photo as a PNG file: what the
    stages above take plus decoding the file and reading its EXIF."""
    from PIL import Image

    import face3d_mesh

    Image.fromarray(image).save(path, compress_level=6)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        face3d_mesh.reconstruct(path, depth=DEPTH)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def surface_steps(rec, repeats: int) -> dict:
    """Median wall time (s) of each step of the surface stage on ``rec``'s depth map."""
    from face3d_mesh.surface import surface_arrays

    runs = []
    for _ in range(repeats):
        steps: dict[str, float] = {}
        surface_arrays(
            rec.depth_mm,
            mm_per_px=rec.mm_per_px,
            origin_px=rec.nose_px,
            image=rec.image,
            grid_step_px=rec.config.grid_step_px,
            target_triangles=rec.config.target_triangles,
            timings=steps,
        )
        runs.append(steps)
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def cli_export_time() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, TORCH_HOME=str(Path(tmp) / "torch"))
        cmd = [
            sys.executable,
            "-m",
            "face3d_mesh",
            "export",
            str(SAMPLE),
            "-o",
            str(Path(tmp) / "face.stl"),
            "--depth",
            DEPTH,
            "-q",
        ]
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, capture_output=True)
            times.append(time.perf_counter() - t)
        argv = [
            "export",
            str(SAMPLE),
            "-o",
            str(Path(tmp) / "probe.stl"),
            "--depth",
            DEPTH,
            "-q",
        ]
        probe = (
            f"import sys\nfrom face3d_mesh.frontends.cli import main\nmain({argv!r})\n"
            "print('torch' in sys.modules)"
        )
        out = (
            subprocess.run(
                [sys.executable, "-c", probe], check=True, env=env, capture_output=True, text=True
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    return {
        "cli_export_s_median": round(statistics.median(times), 3),
        "cli_export_s_all": [round(t, 3) for t in times],
        "torch_imported_by_export": out == "True",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default="sample,1024,12mp")
    parser.add_argument("--depth", default=DEPTH, help="depth backend (default hybrid)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, in-process
    args = parser.parse_args()
    os.environ["FACE3D_BENCH_DEPTH"] = args.depth
    if args.case:
        print(json.dumps(measure_case(args.case, args.repeats)))
        return
    results = []
    for case in args.cases.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--case", case, "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            results.append({"case": case, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "depth": args.depth,
        "cases": results,
        "cli": cli_export_time(),
        "targets": {"stages_1024_ms": 150, "cli_export_s": 3.0, "peak_rss_12mp_mb": 1536},
    }
    by_case = {r["case"]: r for r in results if "error" not in r}
    report["meets_targets"] = {
        "stages_1024": by_case.get("1024", {}).get("total_without_load_ms", 1e9) <= 150,
        "cli_export": report["cli"]["cli_export_s_median"] <= 3.0
        and not report["cli"]["torch_imported_by_export"],
        "peak_rss_12mp": by_case.get("12mp", {}).get("peak_rss_mb", 1e9) <= 1536,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

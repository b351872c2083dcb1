#!/usr/bin/env python
"""Batch throughput (images/s): worker processes beside Ray actors, printed as JSON.

Copies the sample photos ``--copies`` times into a temporary folder and runs
``reconstruct_batch`` (landmarks backend, STL output) with 1 and 2 worker processes, then
on a local Ray instance with 1 and 2 actors (``--ray-workers``; skipped without Ray).
Each run's ``seconds`` includes its workers' start-up (spawn or actor creation, imports,
MediaPipe), as in a real batch; Ray's own start-up (``ray.init``) is reported apart, once.
Like the worker processes, each of N actors gets cores/N CPUs (and as many threads).
``steady_s_per_image`` is the time between the first and the last finished image divided by
the images in between: the cost per image once the workers run, which is where Ray's
overhead per image shows (``ray_overhead``: Ray's steady cost over the processes', same
worker count). ``--repeat`` runs the whole set again, interleaved; figures are medians.

Usage: ``python scripts/bench_batch.py [--copies 20] [--workers 1,2] [--ray-workers 1,2]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(inputs, out, *, fmt, workers, ray=None):
    from face3d_mesh.config import ReconstructionConfig
    from face3d_mesh.frontends.batch import reconstruct_batch

    # Ray actors share the cores as the worker processes do (threads = cores / workers).
    cpus = (os.cpu_count() or 1) / workers
    finished = []
    start = time.perf_counter()
    items = reconstruct_batch(
        inputs,
        out,
        fmt=fmt,
        workers=workers,
        overwrite=True,
        config=ReconstructionConfig(depth="landmarks"),
        ray=ray,
        cpus_per_worker=cpus if ray else 1.0,
        on_item=lambda item: finished.append(time.perf_counter()),
    )
    seconds = time.perf_counter() - start
    steady = (finished[-1] - finished[0]) / (len(finished) - 1) if len(finished) > 1 else None
    return {
        "seconds": seconds,
        "steady_s_per_image": steady,
        "failed": sum(item.status == "failed" for item in items),
    }


def _median_runs(runs: list[dict], images: int) -> dict:
    seconds = statistics.median(r["seconds"] for r in runs)
    steady = [r["steady_s_per_image"] for r in runs if r["steady_s_per_image"] is not None]
    return {
        "images": images,
        "repeats": len(runs),
        "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 2),
        "steady_s_per_image": round(statistics.median(steady), 3) if steady else None,
        "steady_each_repeat": [round(value, 3) for value in steady],
        "failed": max(r["failed"] for r in runs),
    }


def _start_ray(folder: str) -> float | None:
    """Start a local Ray instance keeping its files in ``folder``; its start-up, s."""
    try:
        import ray
    except ImportError:
        return None
    os.environ["RAY_TMPDIR"] = folder
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="copies of each sample photo")
    parser.add_argument("--workers", default="1,2", help="worker process counts")
    parser.add_argument("--ray-workers", default="1,2", help="Ray actor counts ('' = no Ray)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--format", default="stl", choices=["stl", "obj", "ply"])
    args = parser.parse_args()

    from face3d_mesh.frontends.batch import find_inputs

    samples = sorted((ROOT / "sample_data").glob("*.png"))
    plan = [("processes", int(w)) for w in args.workers.split(",") if w]
    ray_plan = [("ray", int(w)) for w in args.ray_workers.split(",") if w]
    ray_folder = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths
    ray_start = _start_ray(ray_folder) if ray_plan else None
    if ray_start is not None:
        plan += ray_plan
    runs: dict = {key: [] for key in plan}
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for i in range(args.copies):
            for sample in samples:
                shutil.copy(sample, photos / f"{sample.stem}_{i}.png")
        inputs = find_inputs(str(photos))
        for _ in range(args.repeat):
            for kind, workers in plan:
                out = Path(tmp) / f"out_{kind}_{workers}"
                ray = "local" if kind == "ray" else None
                runs[kind, workers].append(
                    _run(inputs, out, fmt=args.format, workers=workers, ray=ray)
                )
    results = [
        {"runner": kind, "workers": workers, **_median_runs(runs[kind, workers], len(inputs))}
        for kind, workers in plan
    ]
    steady = {(r["runner"], r["workers"]): r["steady_s_per_image"] for r in results}
    overhead = {
        str(workers): round(steady["ray", workers] / steady["processes", workers] - 1, 3)
        for kind, workers in plan
        if kind == "ray" and steady.get(("processes", workers)) and steady["ray", workers]
    }
    if ray_start is not None:
        import ray

        ray.shutdown()
    shutil.rmtree(ray_folder, ignore_errors=True)
    report = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "format": args.format,
        "ray_start_s": None if ray_start is None else round(ray_start, 2),
        "ray_overhead": overhead,
        "runs": results,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

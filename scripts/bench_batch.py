#!/usr/bin/env python
"""Batch throughput (images/s) with 1 and 2 worker processes, printed as JSON.

Copies the sample photos ``--copies`` times into a temporary folder and runs
``reconstruct_batch`` (landmarks backend, STL output) with each worker count.
Worker start-up (spawn, imports, MediaPipe) is included: it is part of a real batch.

Usage: ``python scripts/bench_batch.py [--copies 6] [--workers 1,2]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--format", default="stl", choices=["stl", "obj", "ply"])
    args = parser.parse_args()

    from face3d_mesh.config import ReconstructionConfig
    from face3d_mesh.frontends.batch import find_inputs, reconstruct_batch

    samples = sorted((ROOT / "sample_data").glob("*.png"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for i in range(args.copies):
            for sample in samples:
                shutil.copy(sample, photos / f"{sample.stem}_{i}.png")
        inputs = find_inputs(str(photos))
        for workers in (int(w) for w in args.workers.split(",")):
            out = Path(tmp) / f"out_{workers}"
            start = time.perf_counter()
            items = reconstruct_batch(
                inputs,
                out,
                fmt=args.format,
                workers=workers,
                overwrite=True,
                config=ReconstructionConfig(depth="landmarks"),
            )
            seconds = time.perf_counter() - start
            results.append(
                {
                    "workers": workers,
                    "images": len(inputs),
                    "seconds": round(seconds, 2),
                    "images_per_s": round(len(inputs) / seconds, 2),
                    "failed": sum(item.status == "failed" for item in items),
                }
            )
    print(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "format": args.format,
                "runs": results,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

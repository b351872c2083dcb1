#!/usr/bin/env python
"""Benchmark the depth networks and the fusion; prints one JSON document.

Per model (each in its own subprocess, so peak RSS is per model): build time, forward time
at the native square resolution (random weights: timing does not depend on them), peak RSS
and the device. Plus the cost of ``fuse_relative_depth`` at 512x512.

Usage::

    python scripts/bench_depth.py                      # all models, CPU
    python scripts/bench_depth.py --models midas_v21_small_256,depth_anything_v2_vits
    python scripts/bench_depth.py --device cuda --precision float16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_model(name: str, *, device: str, precision: str, warmup: int, repeats: int) -> dict:
    import torch

    from face3d_mesh.depth import create_model
    from face3d_mesh.depth._estimator import resolve_device
    from face3d_mesh.depth._registry import get_spec

    spec = get_spec(name)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    model = create_model(name).to(dev)
    build_s = time.perf_counter() - t0
    size = spec.input_size
    x = torch.randn(1, 3, size, size, device=dev)
    dtype = getattr(torch, precision)

    def run():
        with torch.inference_mode():
            if dtype == torch.float32:
                out = model(x)
            else:
                with torch.autocast(device_type=dev.type, dtype=dtype):
                    out = model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    result = {
        "model": name,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "input": [size, size],
        "output": list(out.shape[1:]),
        "build_s": round(build_s, 3),
        "forward_s": round(min(times), 4),
        "forward_s_all": [round(t, 4) for t in times],
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "device": str(dev),
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(dev)
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return result


def bench_fusion(size: int = 512, repeats: int = 3) -> dict:
    import numpy as np

    from face3d_mesh.depth import fuse_relative_depth

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r2 = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.33 * size)) ** 2
    mask = r2 < 1
    z = 60 * r2 + 2 * np.sin(xx / 5)
    rng = np.random.default_rng(0)
    d = 1.0 / (z + 600.0) * 1e5 + rng.normal(0, 0.05, z.shape)
    z_ref = np.where(mask, z, np.nan)
    out = {"size": [size, size], "mask_pixels": int(mask.sum())}
    for space in ("depth", "inverse_depth", "auto"):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            _, info = fuse_relative_depth(d, z_ref, mask, space=space)
            times.append(time.perf_counter() - t)
        out[f"{space}_s"] = round(min(times), 4)
        out[f"{space}_chosen"] = info.space
        out[f"{space}_residual_median_mm"] = round(info.residual_median_mm, 4)
    return out


def main(argv=None) -> int:
    from face3d_mesh.depth._registry import MODEL_NAMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision", default="float32", choices=["float32", "float16", "bfloat16"]
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-fusion", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        res = bench_model(
            args.worker,
            device=args.device,
            precision=args.precision,
            warmup=args.warmup,
            repeats=args.repeats,
        )
        print(json.dumps(res))
        return 0

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(MODEL_NAMES)}")
    report = {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    results = []
    for name in names:
        cmd = [sys.executable, __file__, "--worker", name, "--device", args.device]
        cmd += ["--precision", args.precision, "--warmup", str(args.warmup)]
        cmd += ["--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
            results.append({"model": name, "error": tail[0]})
        else:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{name}: done", file=sys.stderr)
    report["models"] = results
    if not args.no_fusion:
        report["fusion"] = bench_fusion()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Cold start of ``face3d-mesh export PHOTO -o bust.stl --solid`` against its irreducible part.

Two commands, each a fresh interpreter, run interleaved ``--repeats`` times:

- ``export``: ``python -m face3d_mesh export PHOTO -o bust.stl --solid`` (the CLI, with no
  neural weights cached, so the default ``auto`` backend is ``landmarks``);
- ``baseline``: the irreducible part of it: interpreter start, the plain documented
  ``import mediapipe``, reading the photo with OpenCV and one face-mesh pass
  (``mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True)``).

Prints JSON: each command's wall times, their medians and ``ratio`` = median export /
median baseline (target ≤ 1.5), and the same for CPU time (user + system, all threads),
which other jobs on a busy machine disturb less than wall time. With ``--imports``, also the
heavy modules the export path imports (neither matplotlib nor torch; pyvista and scipy until
the surface and solid stages keep their meshes as arrays).

Usage: ``python scripts/bench_cold_start.py [--repeats 9] [--photo PATH] [--imports]
[--tree OTHER_CHECKOUT ...]``; each ``--tree`` adds the same export run from another checkout
of the package (e.g. ``main``), interleaved with the others, to compare code versions.
Timings are wall clock on a possibly busy machine: compare the two medians of one run.
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

BASELINE = """
import sys
import cv2
import mediapipe as mp
rgb = cv2.cvtColor(cv2.imread(sys.argv[1]), cv2.COLOR_BGR2RGB)
with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
    found = mesh.process(rgb).multi_face_landmarks
sys.exit(0 if found else 3)
"""

HEAVY = ("pyvista", "vtk", "matplotlib", "torch", "scipy", "skimage", "trimesh")


def _env(torch_home: str, root: Path = ROOT) -> dict:
    env = dict(os.environ)
    env["TORCH_HOME"] = torch_home  # no cached weights: auto = landmarks, as on a fresh install
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of one run, seconds.

    ``cwd`` is a folder without the package: ``python -m`` imports from the current folder
    first, which would shadow the checkout named by ``PYTHONPATH``.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _imports(photo: Path, out: Path, env: dict) -> list[str]:
    """Heavy top-level modules loaded by the export path (checked at interpreter exit)."""
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('HEAVY', sorted(m for m in {HEAVY!r} "
        "if m in sys.modules), file=sys.__stdout__, flush=True))\n"
        "from face3d_mesh.frontends.cli import main\n"
        f"sys.exit(main(['export', {str(photo)!r}, '-o', {str(out)!r}, '--solid', '-q']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("HEAVY")), "HEAVY []")
    return json.loads(line[len("HEAVY ") :].replace("'", '"'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--photo", type=Path, default=SAMPLE)
    parser.add_argument("--imports", action="store_true", help="also list heavy imports")
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="also time the export of another checkout (repeatable)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = str(Path(tmp) / "torch_home")
        env = _env(home)
        out = Path(tmp) / "bust.stl"
        export = [sys.executable, "-m", "face3d_mesh", "export", str(args.photo), "-o", str(out),
                  "--solid", "-q"]  # fmt: skip
        commands = {
            "export": (export, env),
            "baseline": ([sys.executable, "-c", BASELINE, str(args.photo)], env),
        }
        for tree in args.tree:
            commands[f"export@{tree}"] = (export, _env(home, tree.resolve()))
        for cmd, cmd_env in commands.values():  # warm the file cache once, not timed
            _timed(cmd, cmd_env, tmp)
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, (cmd, cmd_env) in commands.items():
                wall, used = _timed(cmd, cmd_env, tmp)
                times[name].append(wall)
                cpu[name].append(used)
        medians = {name: statistics.median(t) for name, t in times.items()}
        cpu_medians = {name: statistics.median(t) for name, t in cpu.items()}
        report = {
            "photo": str(args.photo),
            "repeats": args.repeats,
            "export_cmd": "python -m face3d_mesh export PHOTO -o bust.stl --solid -q",
            "baseline_cmd": "python -c 'import mediapipe; cv2.imread; one FaceMesh pass'",
            "median_s": {k: round(v, 3) for k, v in medians.items()},
            "times_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "ratio": round(medians["export"] / medians["baseline"], 3),
            "ratios_of_trees": {
                name: round(medians[name] / medians["baseline"], 3)
                for name in medians
                if name.startswith("export@")
            },
            "target_ratio": 1.5,
            # CPU time (all threads) is less disturbed by other jobs on a busy machine
            "cpu_median_s": {k: round(v, 3) for k, v in cpu_medians.items()},
            "cpu_ratio": round(cpu_medians["export"] / cpu_medians["baseline"], 3),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        if args.imports:
            report["export_heavy_imports"] = _imports(args.photo, out, env)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

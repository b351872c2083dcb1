"""Time the meshing stages on a synthetic 1024 x 1024 photo with a 400 x 500 px face.

Run: PYTHONPATH=. python benchmarks/bench_meshing.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from face3d_mesh.exporters import export_mesh
from face3d_mesh.filtering import filter_depth
from face3d_mesh.solid import make_solid
from face3d_mesh.surface import depth_to_mesh


def main(repeats: int = 15) -> None:
    h = w = 1024
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    mpp = 0.4
    mask = ((u - 512) / 200) ** 2 + ((v - 512) / 250) ** 2 < 1  # 400 x 500 px ellipse
    x, y = (u - 512) * mpp, (v - 512) * mpp
    depth = np.where(mask, 100 - np.sqrt(np.maximum(100**2 - x**2 - 0.64 * y**2, 0)), np.nan)
    rng = np.random.default_rng(0)
    depth = (depth + rng.normal(0, 0.5, depth.shape)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.01] += 30  # outliers
    depth[500:520, 500:530] = np.nan  # a hole
    image = np.dstack([u / 4, v / 4, np.full_like(u, 100)]).astype(np.uint8)

    def best(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return out, 1e3 * min(times), 1e3 * float(np.median(times))

    filt, tf, tfm = best(lambda: filter_depth(depth, mask, mm_per_px=mpp))
    mesh, tm, tmm = best(
        lambda: depth_to_mesh(filt, mm_per_px=mpp, origin_px=(512, 512), image=image)
    )
    solid, ts, tsm = best(lambda: make_solid(mesh))
    print(f"filter_depth   best {tf:6.1f} ms  median {tfm:6.1f} ms")
    print(
        f"depth_to_mesh  best {tm:6.1f} ms  median {tmm:6.1f} ms  "
        f"({mesh.n_points} points, {mesh.n_cells} triangles)"
    )
    print(f"filter + mesh  best {tf + tm:6.1f} ms")
    print(f"make_solid     best {ts:6.1f} ms  median {tsm:6.1f} ms  ({solid.n_cells} triangles)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, m, tex in [
            ("face.stl", mesh, None),
            ("face.ply", mesh, None),
            ("face.obj", mesh, image),
            ("solid.stl", solid, None),
        ]:
            files, te, _ = best(
                lambda m=m, name=name, tex=tex: export_mesh(m, Path(tmp) / name, texture=tex)
            )
            sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in files)
            print(f"export {name:9s} best {te:6.1f} ms  {sizes}")


if __name__ == "__main__":
    main()

"""Benchmark of the viewer, off-screen; prints one JSON object.

- ``rotate_fps``: frames per second while the camera orbits the default-resolution mesh
  (about 80k triangles) in a 1600×900 window, per display mode (target >= 30);
- ``rotate_cpu_ms_per_frame``: CPU time of the process per frame (all threads; the machine's
  other jobs change it less than the frame rate);
- ``toggle_ms``: time of each display key, the action alone and the action plus the next
  rendered frame (what the user waits for; target < 100 ms);
- ``remesh_ms``: the smoothing key (``]``: ``rec.with_config(smooth_sigma_mm=...)`` re-runs
  filter + surface, then the viewer swaps the mesh and renders; target < 300 ms), with the
  share spent in ``with_config``.

``startup_ms`` is the viewer's construction plus ``tune_for_interaction`` (which renders
every mode once, unseen); ``loadavg_1min_before_after`` tells how busy the machine was.

Usage: ``python scripts/bench_viewer.py [photo] [--synthetic] [--frames N]``. Without a
photo it uses ``sample_data/astronaut.png`` through the real pipeline, or a synthetic face
when the pipeline is unavailable (or with ``--synthetic``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _load(photo, synthetic):
    if not synthetic:
        try:
            import face3d_mesh

            return face3d_mesh.reconstruct(str(photo)), f"pipeline: {Path(photo).name}"
        except Exception as exc:  # noqa: BLE001 - fall back to the synthetic face
            print(
                f"pipeline unavailable ({type(exc).__name__}: {exc}); using a synthetic face",
                file=sys.stderr,
            )
    sys.path.insert(0, str(REPO / "tests"))
    from fake_reconstruction import make_fake_reconstruction

    return make_fake_reconstruction(), "synthetic face"


def _render(pl):
    # pyvista's Plotter.render() is a no-op until show(); drive the VTK window directly
    pl.render_window.Render()
    wait = getattr(pl.render_window, "WaitForCompletion", None)
    if wait is not None:
        wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo", nargs="?", default=str(REPO / "sample_data" / "astronaut.png"))
    ap.add_argument("--synthetic", action="store_true", help="use the synthetic face")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--size", default="1600x900")
    args = ap.parse_args(argv)

    import pyvista as pv
    import vtk

    from face3d_mesh.frontends import viewer

    rec, source = _load(args.photo, args.synthetic)
    size = viewer.parse_size(args.size)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    pl = viewer.show(rec, off_screen=True, size=size, mode="textured")
    v = pl.face3d_viewer
    software = v.tune_for_interaction()  # what an interactive window does (warms up modes)
    startup_ms = 1000 * (time.perf_counter() - t0)
    cam = v.main_renderer.camera
    result = {
        "source": source,
        "triangles": int(v.base.n_cells),
        "window": f"{size[0]}x{size[1]}",
        "window_class": pl.render_window.GetClassName(),
        "opengl_renderer": v.renderer_name(),
        "software_opengl_msaa_off": software,
        "python": platform.python_version(),
        "pyvista": pv.__version__,
        "vtk": vtk.vtkVersion.GetVTKVersion(),
        "cpu_count": os.cpu_count(),
        "startup_ms": round(startup_ms),
    }

    result.update(_rotation_rates(pl, v, cam, args.frames))
    result["toggle_ms"] = _toggle_times(pl, v)
    result["remesh_ms"] = _remesh_times(pl, v)
    pl.close()
    result["loadavg_1min_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, indent=2))
    return 0


def _rotation_rates(pl, v, cam, frames):
    """Frames per second and CPU ms per frame while rotating, for each display mode."""
    fps, cpu_ms = {}, {}
    for mode in ("textured", "shaded", "depth", "points", "wireframe"):
        v.set_mode(mode)
        for _ in range(5):  # warm-up: first renders upload buffers/textures
            cam.Azimuth(2.0)
            _render(pl)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(frames):
            cam.Azimuth(360.0 / frames)
            _render(pl)
        fps[mode] = round(frames / (time.perf_counter() - t0), 1)
        # CPU time of the process (all of llvmpipe's threads) per frame: less sensitive
        # than the frame rate to other jobs on the machine
        cpu_ms[mode] = round(1000 * (time.process_time() - c0) / frames, 1)
    v.set_mode("textured")
    return {"rotate_fps": fps, "rotate_cpu_ms_per_frame": cpu_ms}


_TOGGLE_KEYS = ["t", "t", "w", "w", "p", "p", "d", "d", "l", "l", "h", "h", "1", "2", "3", "r"]
_TOGGLE_KEYS += ["plus", "minus", "0"]


def _toggle_times(pl, v):
    """Each key's action alone and with the next frame, ms."""
    action, frame = {}, {}
    for key in _TOGGLE_KEYS:
        t0 = time.perf_counter()
        v.press(key)  # off-screen before show(): the action only, no render
        t1 = time.perf_counter()
        _render(pl)
        t2 = time.perf_counter()
        action.setdefault(key, []).append(1000 * (t1 - t0))
        frame.setdefault(key, []).append(1000 * (t2 - t0))
    return {
        "action_only": {k: round(statistics.median(t), 1) for k, t in action.items()},
        "action_only_max": round(max(max(t) for t in action.values()), 1),
        "with_next_frame": {k: round(statistics.median(t), 1) for k, t in frame.items()},
        "with_next_frame_median": round(statistics.median(sum(frame.values(), [])), 1),
        "with_next_frame_max": round(max(max(t) for t in frame.values()), 1),
    }


def _remesh_times(pl, v):
    """A smoothing step ([ and ]): re-meshing alone, the key's action, and with the frame, ms."""
    remesh, remesh_frame, with_config = [], [], []
    for key in ["bracketright", "bracketright", "bracketleft", "bracketleft"]:
        step = 0.5 if key == "bracketright" else -0.5
        t0 = time.perf_counter()
        v.rec.with_config(smooth_sigma_mm=max(0.0, v.smooth_mm + step))
        with_config.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        v.press(key)
        t1 = time.perf_counter()
        _render(pl)
        remesh.append(1000 * (t1 - t0))
        remesh_frame.append(1000 * (time.perf_counter() - t0))
    return {
        "with_config_median": round(statistics.median(with_config), 1),
        "key_action_median": round(statistics.median(remesh), 1),
        "key_action_max": round(max(remesh), 1),
        "key_with_next_frame_median": round(statistics.median(remesh_frame), 1),
    }


if __name__ == "__main__":
    sys.exit(main())

"""Render extra fidelity cases of the head scan (any yaw/pitch/roll, lens, lighting).

Writes, per case, ``NAME.png`` (RGB), ``NAME_depth.npz`` (key ``depth``: float32 Z along the
optical axis in mm, NaN on background) and ``NAME.json`` (``intrinsics`` fx, fy, cx, cy and
the pose), in the layout of ``../shared/fidelity``, so that the same scoring applies. Used to
check that depth improvements hold beyond the 20 shared cases (pitch and roll, other lenses).

The scan: "Infinite, 3D Head Scan" by Lee Perry-Smith, Infinite Realities, CC BY 3.0 (see
``SCAN_LICENSE.txt`` beside it). Pose convention as in the shared set: X_cam = R X_model + t,
R = Rz(roll) Rx(-pitch) Ry(-yaw) diag(1, -1, -1); the depth of the shared cases is reproduced
to a median of about 0.05 mm.

Example::

    python scripts/render_scan_cases.py ../shared/fidelity/scan /tmp/val --count 28 --seed 7
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np

PIVOT_MODEL_MM = np.array([0.0, 65.5452, 7.2828])  # the shared set's rotation pivot
LIGHTS = {
    "key": [((-400, -300, -300), 1.0, (1, 1, 1)), ((500, 0, -300), 0.35, (0.9, 0.95, 1))],
    "right": [((600, -200, -300), 1.0, (1, 0.95, 0.85)), ((-500, 50, -400), 0.2, (0.8, 0.9, 1))],
    "front": [((0, -50, -1), 1.0, (1, 1, 1))],
}


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry @ np.diag([1.0, -1.0, -1.0])


def load_scan(scan_dir: Path):
    import pyvista as pv

    mm_per_unit = json.loads((scan_dir / "scale_lps.json").read_text())["scale_mm_per_unit"]
    block = pv.read(scan_dir / "LeePerrySmith.glb")
    while isinstance(block, pv.MultiBlock):
        block = block[0]
    mesh = pv.PolyData(np.asarray(block.points) * mm_per_unit, block.faces.copy())
    mesh.active_texture_coordinates = np.asarray(block["TEXCOORD_0"]).copy()
    texture = pv.read_texture(str(scan_dir / "Map-COL.jpg"))
    return mesh, texture


def render(mesh, texture, rot, t, fx, size=768, lights="key"):
    """RGB uint8 image and Z depth (mm, NaN background) of the scan seen by a pinhole camera
    at the origin looking along +z (OpenCV axes), principal point at the image centre."""
    import pyvista as pv

    posed = mesh.copy()
    posed.points = np.asarray(mesh.points) @ rot.T + t
    plotter = pv.Plotter(off_screen=True, window_size=(size, size), lighting="none")
    plotter.add_mesh(
        posed, texture=texture, smooth_shading=True, ambient=0.35, diffuse=0.9, specular=0.05
    )
    plotter.set_background([0.55, 0.58, 0.62])
    cam = plotter.camera
    cam.position, cam.focal_point, cam.up = (0, 0, 0), (0, 0, 1), (0, -1, 0)
    cam.view_angle = math.degrees(2 * math.atan(size / 2 / fx))
    cam.clipping_range = (50, 3000)
    for pos, intensity, color in LIGHTS[lights]:
        plotter.add_light(
            pv.Light(position=pos, focal_point=(0, 0, 400), color=color, intensity=intensity)
        )
    image = plotter.screenshot(return_img=True)
    depth = -plotter.get_image_depth(fill_value=np.nan)
    plotter.close()
    return image, depth.astype(np.float32)


def main(argv=None):
    import cv2

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scan_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--count", type=int, default=28)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    mesh, texture = load_scan(args.scan_dir)
    rng = np.random.default_rng(args.seed)
    size = 768
    for i in range(args.count):
        f35 = float(rng.choice([26, 35, 50]))
        fx = f35 / 36 * size
        yaw = float(rng.uniform(-35, 35))
        pitch = float(rng.choice([-15, -8, 0, 8, 15])) + float(rng.uniform(-3, 3))
        roll = float(rng.choice([-15, 0, 0, 15])) + float(rng.uniform(-3, 3))
        lights = str(rng.choice(list(LIGHTS)))
        rot = rotation(yaw, pitch, roll)
        distance = 0.44 * fx * float(rng.uniform(0.9, 1.1))  # face ~ half the frame
        t = np.array([rng.uniform(-10, 10), rng.uniform(-10, 10), distance]) - rot @ PIVOT_MODEL_MM
        image, depth = render(mesh, texture, rot, t, fx, size, lights)
        name = f"v{i:02d}_f{f35:.0f}_y{yaw:+.0f}_p{pitch:+.0f}_r{roll:+.0f}_{lights}"
        cv2.imwrite(str(args.out_dir / f"{name}.png"), image[:, :, ::-1])
        np.savez_compressed(args.out_dir / f"{name}_depth.npz", depth=depth)
        c = (size - 1) / 2
        meta = {
            "name": name,
            "intrinsics": {"fx": fx, "fy": fx, "cx": c, "cy": c, "focal_35mm_equiv_mm": f35},
            "pose": {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll, "R": rot.tolist(),
                     "t_mm": t.tolist()},
            "lighting": {"name": lights},
        }  # fmt: skip
        (args.out_dir / f"{name}.json").write_text(json.dumps(meta, indent=1))
        print(name, flush=True)


if __name__ == "__main__":
    main()

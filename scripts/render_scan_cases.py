"""Render extra fidelity cases of the head scan (any yaw/pitch/roll, lens, lighting).

Writes, per case, ``NAME.png`` (RGB), ``NAME_depth.npz`` (key ``depth``: float32 Z along the
optical axis in mm, NaN on background) and ``NAME.json`` (``intrinsics`` fx, fy, cx, cy and
the pose), in the layout of ``../shared/fidelity``, so that the same scoring applies. Used to
check that depth improvements hold beyond the 20 shared cases (pitch and roll, other lenses).

Two modes:

- **random** (the default): ``--count`` cases with random yaw (−35…35°), pitch (0, ±8, ±15
  plus up to ±3°), roll (0, ±15 plus up to ±3°), lens (26, 35, 50 mm equivalent) and light
  (``key``, ``right``, ``front``), reproducible from ``--seed``.
- **sweep** (``--sweep``): every combination of the lists given with ``--yaw``, ``--pitch``,
  ``--roll``, ``--lens`` and ``--lights`` (comma-separated; degrees, 35 mm-equivalent focal
  lengths in mm, light names), e.g. a pitch sweep of frontal views.

``--morph SEED`` renders, in either mode, the scan with another face's shape (a random
identity of the face model, carried onto the scan: :func:`morph_scan`), to check accuracy
on more than one face; ``--morph-sd`` sets the coefficients' spread (default 1, the model's
prior). ``--warp SEED`` gives it another shape without the face model (random smooth
changes of proportions and local shape: :func:`warp_scan`), which does not favour the
``model`` backend as the morphs do. The cases' ``.json`` name the morph or warp under
``subject``.

Pose convention as in the shared set: X_cam = R X_model + t, R = Rz(roll) Rx(-pitch) Ry(-yaw)
diag(1, -1, -1): yaw > 0 turns the nose to the image's right, pitch > 0 lifts the chin (head
tilted up), roll > 0 tilts the head's top to the image's right. The depth of the shared cases
is reproduced to a median of about 0.05 mm. The camera is ``--distance-factor`` × the focal
length of a 768-pixel frame away from the head (0.44 as in the shared set: the face fills
about half the frame; larger = smaller face); ``--size`` is the image side in pixels (the
same scene at another resolution).

The scan: "Infinite, 3D Head Scan" by Lee Perry-Smith, Infinite Realities, CC BY 3.0 (see
``SCAN_LICENSE.txt`` beside it). Its eyes are closed: no iris cue on these renders.

Examples::

    python scripts/render_scan_cases.py ../shared/fidelity/scan /tmp/val --count 28 --seed 7
    python scripts/render_scan_cases.py ../shared/fidelity/scan /tmp/pitch --sweep \\
        --pitch=-20,-10,0,10,20 --roll=-15,0,15 --lens 24,50,85 --lights key,window
    python scripts/render_scan_cases.py ../shared/fidelity/scan /tmp/face3 --count 15 \\
        --seed 103 --morph 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np

PIVOT_MODEL_MM = np.array([0.0, 65.5452, 7.2828])  # the shared set's rotation pivot
#: Light rigs: (position in camera mm, intensity, colour) per light, aimed at the head.
LIGHTS = {
    "key": [((-400, -300, -300), 1.0, (1, 1, 1)), ((500, 0, -300), 0.35, (0.9, 0.95, 1))],
    "right": [((600, -200, -300), 1.0, (1, 0.95, 0.85)), ((-500, 50, -400), 0.2, (0.8, 0.9, 1))],
    "front": [((0, -50, -1), 1.0, (1, 1, 1))],
    # Warm side light from the image's right, weak cool fill (like the shared "window").
    "window": [
        ((620, -260, -480), 1.25, (1, 0.93, 0.82)),
        ((-500, 50, -450), 0.22, (0.8, 0.88, 1)),
    ],
    # On-camera flash: one light at the lens.
    "flash": [((0, -20, -5), 1.1, (1, 1, 1))],
    # Overhead light (deep eye sockets, dark under the chin).
    "top": [((0, -700, 0), 1.1, (1, 0.97, 0.92)), ((0, 200, -400), 0.2, (1, 1, 1))],
    # Dim, low-contrast light from below (an unusual, hard case for landmarks).
    "low": [((150, 500, -300), 0.7, (1, 0.9, 0.8))],
}
#: The lights the random mode draws from (kept so that a seed gives the same cases as before).
RANDOM_LIGHTS = ("key", "right", "front")


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

    from face3d_mesh._opengl import load_triton_before_opengl

    load_triton_before_opengl()  # else a later ``import torch`` in this process can crash

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
        # Floats: PyVista reads a colour with an int component as 0-255 (1 would be 1/255).
        rgb = tuple(float(c) for c in color)
        plotter.add_light(
            pv.Light(position=pos, focal_point=(0, 0, 400), color=rgb, intensity=intensity)
        )
    image = plotter.screenshot(return_img=True)
    # Keep the clipping range set above: VTK's reset would put the near plane at 1/1000 of
    # the far one when the camera is inside the scan's bounding box (short lenses), and the
    # background would then read as a finite depth.
    depth = -plotter.get_image_depth(fill_value=np.nan, reset_camera_clipping_range=False)
    plotter.close()
    return image, depth.astype(np.float32)


def scan_landmarks(mesh, texture) -> np.ndarray:
    """The scan's 468 MediaPipe face-mesh landmarks in its model frame (mm; NaN where the
    render has no depth): found on a frontal 50 mm render and lifted with its true depth."""
    import cv2

    from face3d_mesh.landmarks import detect_faces

    size, fx = 768, 50 / 36 * 768
    rot = rotation(0.0, 0.0, 0.0)
    t = np.array([0.0, 0.0, 0.44 * fx]) - rot @ PIVOT_MODEL_MM
    image, depth = render(mesh, texture, rot, t, fx, size, "front")
    uv = detect_faces(np.ascontiguousarray(image[:, :, :3]))[0].points[:468, :2]
    z = cv2.remap(depth, *uv.astype(np.float32).T[:, :, None], cv2.INTER_NEAREST)[:, 0]
    c = (size - 1) / 2
    cam = np.column_stack([(uv - c) / fx * z[:, None], z])
    return (cam - t) @ rot  # X_model = R^T (X_cam - t), row by row


def morph_coefficients(seed: int, sd: float, count: int) -> np.ndarray:
    """The identity coefficients of ``--morph SEED``: (count,) N(0, sd²) from ``seed``."""
    return np.random.default_rng(seed).normal(0.0, sd, count)


def case_camera(case, *, size: int, distance_factor: float):
    """(fx, R, t) of a case from :func:`random_cases` or :func:`sweep_cases` (pixels, the
    rotation and translation of X_cam = R X_model + t, mm)."""
    _, yaw, pitch, roll, f35, _, factor, shift = case
    fx = f35 / 36 * size
    rot = rotation(yaw, pitch, roll)
    distance = distance_factor * (768 / size) * fx * factor  # face ~ half the frame
    return fx, rot, np.array([shift[0], shift[1], distance]) - rot @ PIVOT_MODEL_MM


def morph_scan(mesh, texture, seed: int, sd: float = 1.0):
    """The scan with another face shape: a random identity of the ICT face model, as a
    displacement from the model's neutral face, carried onto the scan.

    The identity coefficients are N(0, ``sd``²) from ``seed``. The model is placed on the
    scan by the similarity that best maps its landmarks onto the scan's
    (:func:`scan_landmarks`); each scan vertex moves by a Gaussian-weighted mean of the
    displacements of its 64 nearest model vertices (σ = 6 mm + half the distance to the
    nearest), faded out beyond 8 mm from the model's face (σ 20 mm: the scalp, ears and
    neck stay, stretched smoothly; in seeds 1-4 no edge's two ends move apart or together
    by more than 0.75 of its length, so the surface does not fold). The scan keeps its own
    details, texture and all that the model cannot represent, so the result is not
    an ICT face; but its change of shape is one the model can represent, which favours the
    ``model`` and ``hybrid`` backends somewhat on these renders. Returns (morphed mesh,
    {"seed", "sd", "model_scale"}).
    """
    from scipy.spatial import cKDTree

    from face3d_mesh._model_solver import umeyama
    from face3d_mesh.morphable import face_model

    model = face_model()
    target = scan_landmarks(mesh, texture)
    source = model.landmark_mean[:468]
    ok = np.isfinite(target).all(axis=1)
    s, rot, t = umeyama(source[ok], target[ok])
    coef = morph_coefficients(seed, sd, model.n_identity)
    delta = (model.vertices(coef) - model.neutral).astype(np.float64) @ rot.T * s
    placed = model.neutral.astype(np.float64) @ rot.T * s + t
    dist, idx = cKDTree(placed).query(np.asarray(mesh.points), k=64)
    weight = np.exp(-0.5 * (dist / (6.0 + 0.5 * dist[:, :1])) ** 2)
    shift = np.einsum("nk,nkc->nc", weight, delta[idx]) / weight.sum(axis=1, keepdims=True)
    # away from the model's face (scalp, ears, neck, the mouth's inside) the shift fades
    shift *= np.exp(-0.5 * (np.maximum(dist[:, :1] - 8.0, 0.0) / 20.0) ** 2)
    morphed = mesh.copy()
    morphed.points = np.asarray(mesh.points) + shift.astype(np.float32)
    return morphed, {"seed": seed, "sd": sd, "model_scale": s}


def warp_scan(mesh, texture, seed: int, sd: float = 1.0):
    """The scan with another face shape made **without** the face model: a random smooth
    warp of its face, so that the ``model`` backend is not favoured (as it is on
    :func:`morph_scan`'s faces, whose change of shape it can represent).

    From ``seed``: the face's width, height and depth (relief) scaled about the landmarks'
    centre by factors N(1, (``sd`` × 4 %)²), N(1, (``sd`` × 4 %)²) and N(1, (``sd`` × 8 %)²),
    plus random displacements of 40 control points spread over the face's 468 landmarks,
    N(0, (``sd`` × 3 mm)²) per axis, smoothed over the control points (Gaussian, σ 25 mm)
    and carried to the surface by normalised Gaussian weights (σ 18 mm); all of it fades
    out beyond 10 mm from the landmarks (σ 20 mm: the scalp, ears and neck stay, stretched
    smoothly). Returns (warped mesh, {"seed", "sd", "scale_xyz", "control_rms_mm"}).
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    marks = scan_landmarks(mesh, texture)
    marks = marks[np.isfinite(marks).all(axis=1)]
    centre = marks.mean(axis=0)
    scale = 1.0 + sd * rng.normal(0.0, 1.0, 3) * np.array([0.04, 0.04, 0.08])
    # 40 control points by farthest-point sampling from the nose tip's side of the face
    chosen = [int(np.argmax(marks[:, 2]))]
    dist = np.linalg.norm(marks - marks[chosen[0]], axis=1)
    for _ in range(39):
        chosen.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(marks - marks[chosen[-1]], axis=1))
    controls = marks[chosen]
    raw = rng.normal(0.0, 3.0 * sd, (len(controls), 3))
    pair = np.linalg.norm(controls[:, None] - controls[None], axis=2)
    smooth = np.exp(-0.5 * (pair / 25.0) ** 2)
    moves = smooth @ raw / smooth.sum(axis=1, keepdims=True)
    moves *= 3.0 * sd / max(float(np.sqrt((moves**2).sum(axis=1).mean() / 3)), 1e-9)
    points = np.asarray(mesh.points, np.float64)
    to_controls = np.linalg.norm(points[:, None] - controls[None], axis=2)
    weight = np.exp(-0.5 * (to_controls / 18.0) ** 2)
    local = weight @ moves / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
    shift = (points - centre) * (scale - 1.0) + local
    near, _ = cKDTree(marks).query(points)
    shift *= np.exp(-0.5 * (np.maximum(near - 10.0, 0.0) / 20.0) ** 2)[:, None]
    warped = mesh.copy()
    warped.points = (points + shift).astype(np.float32)
    rms = float(np.sqrt((moves**2).mean()))
    return warped, {"seed": seed, "sd": sd, "scale_xyz": scale.tolist(), "control_rms_mm": rms}


def write_case(out_dir: Path, name: str, image, depth, *, fx, f35, size, pose, lights, subject):
    """The three files of one case, in the shared set's layout."""
    import cv2

    cv2.imwrite(str(out_dir / f"{name}.png"), image[:, :, ::-1])
    np.savez_compressed(out_dir / f"{name}_depth.npz", depth=depth)
    c = (size - 1) / 2
    meta = {
        "name": name,
        "intrinsics": {"fx": fx, "fy": fx, "cx": c, "cy": c, "focal_35mm_equiv_mm": f35},
        "pose": pose,
        "lighting": {"name": lights},
        "subject": subject,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=1))


def random_cases(count: int, seed: int, size: int):
    """(name, yaw, pitch, roll, f35, lights, distance factor, shift) of the random mode."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        f35 = float(rng.choice([26, 35, 50]))
        yaw = float(rng.uniform(-35, 35))
        pitch = float(rng.choice([-15, -8, 0, 8, 15])) + float(rng.uniform(-3, 3))
        roll = float(rng.choice([-15, 0, 0, 15])) + float(rng.uniform(-3, 3))
        lights = str(rng.choice(list(RANDOM_LIGHTS)))
        factor = float(rng.uniform(0.9, 1.1))
        shift = (rng.uniform(-10, 10), rng.uniform(-10, 10))
        name = f"v{i:02d}_f{f35:.0f}_y{yaw:+.0f}_p{pitch:+.0f}_r{roll:+.0f}_{lights}"
        yield name, yaw, pitch, roll, f35, lights, factor, shift


def sweep_cases(args):
    """Every combination of the sweep lists (no jitter, head centred)."""
    grid = itertools.product(args.lens, args.yaw, args.pitch, args.roll, args.lights)
    for f35, yaw, pitch, roll, lights in grid:
        name = f"s_f{f35:g}_y{yaw:+03g}_p{pitch:+03g}_r{roll:+03g}_{lights}"
        yield name, yaw, pitch, roll, f35, lights, 1.0, (0.0, 0.0)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = sorted(set(names) - set(LIGHTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown lights {unknown}; use {sorted(LIGHTS)}")
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scan_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--count", type=int, default=28, help="random mode: number of cases")
    ap.add_argument("--seed", type=int, default=7, help="random mode: seed")
    ap.add_argument("--sweep", action="store_true", help="every combination of the lists below")
    ap.add_argument("--yaw", type=_floats, default=[0.0], help="sweep: yaws, degrees")
    ap.add_argument("--pitch", type=_floats, default=[0.0], help="sweep: pitches, degrees")
    ap.add_argument("--roll", type=_floats, default=[0.0], help="sweep: rolls, degrees")
    ap.add_argument("--lens", type=_floats, default=[50.0], help="sweep: 35 mm-equivalent mm")
    ap.add_argument("--lights", type=_names, default=["key"], help=f"sweep: {sorted(LIGHTS)}")
    ap.add_argument("--size", type=int, default=768, help="image side, pixels")
    ap.add_argument(
        "--distance-factor", type=float, default=0.44, help="camera distance / 768-px focal length"
    )
    ap.add_argument(
        "--morph",
        type=int,
        default=None,
        metavar="SEED",
        help="give the scan another face shape (a random ICT identity from SEED; see morph_scan)",
    )
    ap.add_argument("--morph-sd", type=float, default=1.0, help="--morph: coefficients' sd")
    ap.add_argument(
        "--warp",
        type=int,
        default=None,
        metavar="SEED",
        help="give the scan another face shape without the face model (see warp_scan)",
    )
    ap.add_argument("--warp-sd", type=float, default=1.0, help="--warp: strength (1 = typical)")
    args = ap.parse_args(argv)
    if args.morph is not None and args.warp is not None:
        ap.error("--morph and --warp are alternatives")
    os.makedirs(args.out_dir, exist_ok=True)
    mesh, texture = load_scan(args.scan_dir)
    subject = {"scan": "Lee Perry-Smith head scan (CC BY 3.0)"}
    if args.morph is not None:
        mesh, subject["morph"] = morph_scan(mesh, texture, args.morph, args.morph_sd)
    if args.warp is not None:
        mesh, subject["warp"] = warp_scan(mesh, texture, args.warp, args.warp_sd)
    size = args.size
    cases = sweep_cases(args) if args.sweep else random_cases(args.count, args.seed, size)
    for case in cases:
        name, yaw, pitch, roll, f35, lights, _, _ = case
        fx, rot, t = case_camera(case, size=size, distance_factor=args.distance_factor)
        image, depth = render(mesh, texture, rot, t, fx, size, lights)
        pose = {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll, "R": rot.tolist(),
                "t_mm": t.tolist()}  # fmt: skip
        write_case(
            args.out_dir,
            name,
            image,
            depth,
            fx=fx,
            f35=f35,
            size=size,
            pose=pose,
            lights=lights,
            subject=subject,
        )
        print(name, flush=True)


if __name__ == "__main__":
    main()

"""Command-line interface: ``face3d-mesh`` / ``python -m face3d_mesh``.

Subcommands: ``export``, ``depth``, ``info``, ``view``, ``models``, ``batch``, ``web``.
Errors are printed as one line (no traceback) and mapped to the exit codes documented in
:mod:`face3d_mesh.errors`; set ``FACE3D_MESH_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import __version__
from ..config import ReconstructionConfig
from ..depth._backends import DEPTH_BACKENDS as _DEPTH_CHOICES
from ..errors import Face3DError, UsageError

__all__ = ["main", "build_parser"]

PROG = "face3d-mesh"

#: Mesh formats, as in :data:`face3d_mesh.exporters.EXPORTERS` (listed here so that building
#: the parser does not import numpy; a test keeps the two the same).
MESH_FORMATS = ("stl", "obj", "ply", "glb", "3mf")


class _Parser(argparse.ArgumentParser):
    """argparse with our one-line error format (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _size(text):
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"size out of range: {text}")
    return width, height


def _add_pipeline_options(parser):
    """The reconstruction options that every command running the pipeline takes."""
    defaults = ReconstructionConfig()
    group = parser.add_argument_group("reconstruction")
    _add_depth_options(group, defaults)
    _add_filter_options(group, defaults)
    _add_mask_and_surface_options(group, defaults)
    group.add_argument(
        "--focal-px",
        dest="focal_length_px",
        type=_positive_float,
        default=None,
        help="the photo's focal length in pixels (default: EXIF, else a 50 mm-equivalent guess)",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def _add_depth_options(group, defaults: ReconstructionConfig) -> None:
    """Which face, and the depth backend and its network."""
    group.add_argument(
        "--face",
        type=_non_negative_int,
        default=defaults.face,
        help="which face when there are several (0 = largest; default 0)",
    )
    group.add_argument(
        "--depth",
        choices=list(_DEPTH_CHOICES),
        default=defaults.depth,
        help="depth backend (default auto: fused when network weights are available, else "
        "hybrid: the fitted face model averaged with the landmark depth)",
    )
    group.add_argument(
        "--model",
        dest="depth_model",
        default=defaults.depth_model,
        help=f"neural depth model (default {defaults.depth_model}; see 'face3d-mesh models')",
    )
    group.add_argument(
        "--weights", default=None, metavar="PATH", help="checkpoint file for --model (no download)"
    )
    group.add_argument(
        "--device", default=defaults.device, help="auto, cpu, cuda, cuda:N or mps (default auto)"
    )


def _add_filter_options(group, defaults: ReconstructionConfig) -> None:
    """The depth filtering stage's options."""
    group.add_argument(
        "--bilateral-space-mm",
        dest="bilateral_sigma_space_mm",
        type=_non_negative_float,
        default=defaults.bilateral_sigma_space_mm,
        help="bilateral filter spatial sigma, mm (0 = off; default "
        f"{defaults.bilateral_sigma_space_mm})",
    )
    group.add_argument(
        "--bilateral-depth-mm",
        dest="bilateral_sigma_depth_mm",
        type=_non_negative_float,
        default=defaults.bilateral_sigma_depth_mm,
        help=f"bilateral filter depth sigma, mm (default {defaults.bilateral_sigma_depth_mm})",
    )
    group.add_argument(
        "--outlier-threshold",
        type=_non_negative_float,
        default=defaults.outlier_threshold,
        help="outlier rejection threshold in robust std. deviations "
        f"(0 = off; default {defaults.outlier_threshold})",
    )
    group.add_argument(
        "--no-fill-holes",
        dest="fill_holes",
        action="store_false",
        help="leave holes in the depth map unfilled",
    )
    group.add_argument(
        "--smooth-mm",
        dest="smooth_sigma_mm",
        type=_non_negative_float,
        default=defaults.smooth_sigma_mm,
        help="extra Gaussian smoothing sigma, mm (default 0 = none)",
    )


def _add_mask_and_surface_options(group, defaults: ReconstructionConfig) -> None:
    """The face mask, the surface grid and the working size."""
    group.add_argument(
        "--mask-margin-mm",
        type=_non_negative_float,
        default=defaults.mask_margin_mm,
        help="grow the face mask beyond the landmarks' face oval by this much, mm "
        f"(default {defaults.mask_margin_mm:g}; 0 = exactly the oval)",
    )
    group.add_argument(
        "--mask-erode-px",
        type=_non_negative_float,
        default=defaults.mask_erode_px,
        help="shrink the face mask by this many pixels (default 0)",
    )
    group.add_argument(
        "--triangles",
        dest="target_triangles",
        type=int,
        default=defaults.target_triangles,
        help=f"approximate triangle count (default {defaults.target_triangles})",
    )
    group.add_argument(
        "--grid-step-px",
        type=_positive_float,
        default=None,
        help="surface grid step in photo pixels (overrides --triangles)",
    )
    group.add_argument(
        "--working-size",
        dest="working_size_px",
        type=int,
        default=defaults.working_size_px,
        help=f"long side of the aligned face crop, pixels (default {defaults.working_size_px})",
    )


def _config_from(args) -> ReconstructionConfig:
    names = ReconstructionConfig.__dataclass_fields__.keys()
    return ReconstructionConfig(**{n: getattr(args, n) for n in names if hasattr(args, n)})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``face3d-mesh`` command."""
    parser = _Parser(
        prog=PROG,
        description="Turn one photo of a face into a 3D mesh: view it, print it, use it.",
        epilog="Exit codes: 0 ok, 1 internal error, 2 bad usage, 3 unusable image, "
        "4 no face, 5 depth model unavailable, 6 output not writable, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (
        _add_export_command,
        _add_depth_command,
        _add_info_command,
        _add_view_command,
        _add_models_command,
        _add_batch_command,
        _add_web_command,
    ):
        add(sub)
    return parser


def _add_export_command(sub) -> None:
    """The ``export`` command: one photo to one mesh file."""
    p = sub.add_parser(
        "export",
        help="write the face mesh as STL, OBJ (+texture), PLY, GLB (+texture) or 3MF",
        description="Reconstruct the face and write it as a mesh file.",
    )
    p.add_argument("photo", help="input photo (JPEG, PNG, WebP, BMP, TIFF)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file: .stl (binary, mm), .obj (+ .mtl + texture PNG), .ply (colours), "
        ".glb (glTF binary, metres, textured), .3mf (mm, for slicers)",
    )
    p.add_argument(
        "--solid",
        action="store_true",
        help="watertight printable solid: relief, side walls and a flat back",
    )
    p.add_argument(
        "--width-mm",
        type=_positive_float,
        default=None,
        help="scale the solid to this width, mm (default: real size)",
    )
    p.add_argument(
        "--base-mm",
        type=_positive_float,
        default=3.0,
        help="back plate thickness behind the deepest point, mm (default 3)",
    )
    p.add_argument(
        "--edge-mm",
        type=_non_negative_float,
        default=0.0,
        help="round the solid's edge between relief and wall with this radius, mm "
        "(default 0: sharp)",
    )
    _add_pipeline_options(p)


def _add_depth_command(sub) -> None:
    """The ``depth`` command: one photo to its depth map."""
    p = sub.add_parser(
        "depth",
        help="write the depth map (PNG: lighter = closer; .npy: mm)",
        description="Reconstruct the face and write its depth map.",
    )
    p.add_argument("photo")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help=".png (grayscale, lighter = closer, background black) or .npy "
        "(float32 mm, larger = farther, NaN background)",
    )
    p.add_argument("--16bit", dest="sixteen_bit", action="store_true", help="write a 16-bit PNG")
    _add_pipeline_options(p)


def _add_info_command(sub) -> None:
    """The ``info`` command: the faces found and the scale's cues."""
    p = sub.add_parser("info", help="list the faces found and how the scale would be set")
    p.add_argument("photo")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--depth", choices=list(_DEPTH_CHOICES), default="auto")
    p.add_argument("--model", dest="depth_model", default=ReconstructionConfig().depth_model)
    p.add_argument("--weights", default=None, metavar="PATH")
    p.add_argument(
        "--focal-px",
        dest="focal_length_px",
        type=_positive_float,
        default=None,
        help="the photo's focal length in pixels, as for export (the scale's fit uses it)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)


def _add_view_command(sub) -> None:
    """The ``view`` command: the interactive viewer or a screenshot."""
    p = sub.add_parser("view", help="interactive 3D viewer (or --screenshot headless)")
    p.add_argument("photo", help="input photo, or a mesh file (.stl, .obj, .ply, .glb, .3mf)")
    p.add_argument(
        "--screenshot", default=None, metavar="PNG", help="render off-screen to this PNG and exit"
    )
    p.add_argument("--size", type=_size, default=(1600, 900), help="window size WxH")
    p.add_argument("--azimuth", type=float, default=0.0, help="camera azimuth, degrees")
    p.add_argument("--elevation", type=float, default=0.0, help="camera elevation, degrees")
    p.add_argument(
        "--mode",
        default="textured",
        choices=["shaded", "textured", "wireframe", "points", "depth"],
        help="initial display mode (default textured)",
    )
    _add_pipeline_options(p)


def _add_models_command(sub) -> None:
    """The ``models`` command: list or download the neural depth models."""
    p = sub.add_parser("models", help="list neural depth models, or download one")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", parser_class=_Parser)
    msub.add_parser("list", help="list the models (default)")
    d = msub.add_parser("download", help="download a model's weights into the cache")
    d.add_argument("name")


def _add_batch_command(sub) -> None:
    """The ``batch`` command: a folder of photos, locally or on Ray."""
    p = sub.add_parser("batch", help="reconstruct every image of a folder or glob")
    p.add_argument("inputs", help="folder, or glob pattern in quotes (e.g. 'photos/*.jpg')")
    p.add_argument("-o", "--output", required=True, help="output folder (created)")
    p.add_argument("--format", choices=MESH_FORMATS, default="stl", help="mesh format")
    p.add_argument("--solid", action="store_true", help="printable solids")
    p.add_argument("--width-mm", type=_positive_float, default=None)
    p.add_argument("--base-mm", type=_positive_float, default=3.0)
    p.add_argument("--edge-mm", type=_non_negative_float, default=0.0)
    p.add_argument(
        "--all-faces",
        action="store_true",
        help="one mesh per face found (default: the largest face only)",
    )
    p.add_argument("--save-depth", action="store_true", help="also write depth maps (.npy)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel worker processes (default 1), or Ray actors with --ray (default: one "
        "per GPU when they use GPUs, else one per --cpus-per-worker CPUs of the cluster)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo outputs that exist")
    group = p.add_argument_group("Ray cluster (pip install 'face3d_mesh[cluster]')")
    group.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: local (a new instance on this machine), auto (RAY_ADDRESS or the "
        "running local cluster), ray://HOST:10001 (Ray Client) or HOST:6379; outputs are "
        "written here, the cluster needs no shared filesystem",
    )
    group.add_argument(
        "--cpus-per-worker",
        type=_positive_float,
        default=None,
        help="CPUs each Ray actor reserves (default 1)",
    )
    group.add_argument(
        "--gpus-per-worker",
        type=_non_negative_float,
        default=None,
        help="GPUs each Ray actor reserves (default 1 when the cluster has GPUs and the depth "
        "backend is neural, else 0)",
    )
    _add_pipeline_options(p)


def _add_web_command(sub) -> None:
    """The ``web`` command: serve the web app."""
    p = sub.add_parser(
        "web",
        help="the web app: upload a photo in a browser, turn the 3D face, download files",
        description="Serve the web app (Streamlit) until Ctrl-C; prints the address to open.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0: every "
        "network interface, best behind a reverse proxy, see the README)",
    )
    p.add_argument("--port", type=_port, default=8501, help="port (default 8501)")


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {text}")
    return value


def main(argv=None) -> int:
    """Run the command line; returns the exit code."""
    debug = os.environ.get("FACE3D_MESH_DEBUG") not in (None, "", "0")
    if argv is None and not debug:
        _route_native_stderr_away()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args) or 0
    except Face3DError as exc:
        if debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`info ... | head`): stop quietly
        _detach_stdout()
        return 141  # 128 + SIGPIPE, as Unix tools end
    except Exception as exc:  # a bug: say so in one line, keep the traceback for debug
        if debug:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(set FACE3D_MESH_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1


def _route_native_stderr_away() -> None:
    """Keep MediaPipe's and TensorFlow Lite's C++ log lines off the terminal.

    They write straight to file descriptor 2, from their own threads, up to interpreter
    exit. Python's ``sys.stderr`` moves to a duplicate of the real stderr and descriptor 2
    goes to /dev/null, so our messages (and tracebacks in debug mode, which skips this)
    still reach the terminal. Only done when running as the ``face3d-mesh`` program.
    """
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(
            real, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace"
        )
    except (OSError, ValueError, AttributeError):  # no real descriptor 2: nothing to hide
        pass


def _detach_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _say(args, text):
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _reconstruct(args):
    from ..pipeline import reconstruct

    config = _config_from(args)
    progress = None
    if not args.quiet and sys.stderr.isatty():

        def progress(stage):
            print(f"  {stage}...", file=sys.stderr, flush=True)

    rec = reconstruct(args.photo, config=config, progress=progress)
    for note in (rec.depth_info.get("note"), *rec.notes):
        if note:
            _say(args, f"note: {note}")
    return rec


def _describe(rec) -> str:
    from ..presentation import describe_camera

    info = rec.depth_info
    text = f"scale: {rec.scale.describe()}; depth: {info.get('backend')}"
    if "residual_mm" in info:
        text += f" (fit residual {info['residual_mm']:.2f} mm)"
    return f"{text}; camera: {describe_camera(rec.camera)}"


def _cmd_export(args):
    from .._atomic import check_writable, refuse_to_overwrite
    from ..exporters import export_mesh, output_paths

    # fail before the slow work: an unknown extension, a missing folder, or an output that
    # is the photo
    outputs = output_paths(args.output, textured=not args.solid)
    for path in outputs:
        check_writable(path)
    refuse_to_overwrite(args.photo, outputs)
    if args.width_mm is not None and not args.solid:
        raise UsageError("--width-mm applies to --solid only")
    if args.edge_mm and not args.solid:
        raise UsageError("--edge-mm applies to --solid only")
    rec = _reconstruct(args)
    if args.solid:
        mesh = rec.solid_arrays(base_mm=args.base_mm, width_mm=args.width_mm, edge_mm=args.edge_mm)
        written = export_mesh(mesh, args.output)
    else:
        mesh = rec.mesh_arrays
        written = rec.save(args.output)  # with the photo as texture where the format has one
    lo, hi = mesh.bounds[0::2], mesh.bounds[1::2]
    size = " × ".join(f"{b - a:.1f}" for a, b in zip(lo, hi, strict=True))
    _say(args, _describe(rec))
    _say(args, f"wrote {', '.join(map(str, written))}: {mesh.n_cells} triangles, {size} mm")


def _cmd_depth(args):
    from .._atomic import check_writable, refuse_to_overwrite
    from ..depth_io import save_depth, supported_depth_extension

    supported_depth_extension(args.output)
    check_writable(args.output)
    refuse_to_overwrite(args.photo, [args.output])
    rec = _reconstruct(args)
    save_depth(rec.depth_mm, args.output, sixteen_bit=args.sixteen_bit)
    _say(args, _describe(rec))
    _say(args, f"wrote {args.output}")


def _cmd_info(args):
    from ..image import load_photo
    from ..landmarks import detect_faces
    from ..pipeline import face_scale
    from ..presentation import describe_camera

    image, focal_px = load_photo(args.photo)
    faces = detect_faces(image, source=args.photo, thorough=True)
    config = ReconstructionConfig(focal_length_px=args.focal_length_px)
    if args.focal_length_px is not None:
        focal_px, focal_source = float(args.focal_length_px), "user"
    else:
        focal_source = "exif"
    camera_line = describe_camera(
        {"focal_px": focal_px, "focal_source": focal_source, "image_size_px": image.shape[1::-1]}
    )
    if focal_px is None:
        camera_line += " (--focal-px sets it)"
    rows = []
    for index, face in enumerate(faces):
        scale = face_scale(image, face, exif_focal_px=focal_px, config=config)
        x0, y0, x1, y1 = face.box
        rows.append(
            {
                "face": index,
                "box_px": [round(v, 1) for v in (x0, y0, x1, y1)],
                "size_px": [round(x1 - x0, 1), round(y1 - y0, 1)],
                "roll_deg": round(face.roll_deg, 1),
                "yaw_deg": round(face.yaw_deg, 1),
                "scale_source": scale.source,
                "mm_per_px": round(scale.mm_per_px, 5),
                "scale_uncertainty": round(scale.uncertainty, 3),
                "scale_detail": scale.detail,
            }
        )
    depth_line = _depth_plan(args)
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.photo,
                    "width": image.shape[1],
                    "height": image.shape[0],
                    "faces": rows,
                    "focal_length_px": None if focal_px is None else round(focal_px, 1),
                    "camera": camera_line,
                    "depth": depth_line,
                },
                indent=1,
            )
        )
        return 0
    print(f"{args.photo}: {image.shape[1]}×{image.shape[0]} pixels, {len(rows)} face(s)")
    print(f"  camera: {camera_line}")
    for row in rows:
        w, h = row["size_px"]
        print(
            f"  face {row['face']}: box {row['box_px']} ({w:.0f}×{h:.0f} px), "
            f"roll {row['roll_deg']:+.1f}°, yaw {row['yaw_deg']:+.1f}°"
        )
        print(
            f"    scale: {row['mm_per_px']:.4g} mm/px from {row['scale_detail']} "
            f"(±{100 * row['scale_uncertainty']:.0f}%)"
        )
    print(f"  depth: {depth_line}")
    return 0


def _depth_plan(args) -> str:
    """Which depth backend `export` would use with these options (nothing is run)."""
    from ..depth import cached_weights_path

    model = args.depth_model
    offline = {
        "landmarks": "landmarks (MediaPipe 3D landmarks)",
        "model": "model (the morphable face model fitted to the landmarks)",
        "hybrid": "hybrid (the fitted face model averaged with the landmark depth)",
    }
    if args.depth in offline:
        return offline[args.depth]
    path = args.weights or cached_weights_path(model)
    backend = "fused" if args.depth == "auto" else args.depth
    if path:
        return f"{backend} with {model} ({path}); export reports the fit residual"
    if args.depth == "auto":
        return (
            f"hybrid (no weights for {model}: run 'face3d-mesh models download "
            f"{model}' or pass --weights PATH for neural depth)"
        )
    return f"{backend} with {model}: weights will be downloaded on first use"


def _cmd_view(args):
    from .viewer import run_view

    return run_view(
        args.photo,
        screenshot=args.screenshot,
        size=args.size,
        azimuth=args.azimuth,
        elevation=args.elevation,
        mode=args.mode,
        config=_config_from(args),
    )


def _cmd_models(args):
    from ..depth import download_weights, list_models

    if args.models_command == "download":
        path = download_weights(args.name, progress=True)
        print(f"{args.name}: {path}")
        return 0
    print(f"{'name':24} {'params':>7} {'download':>9}  {'licence':12} {'input':>5}  cached")
    for m in list_models():
        print(
            f"{m.name:24} {m.params / 1e6:6.1f}M {m.download_bytes / 1e6:6.0f} MB  "
            f"{m.licence:12} {m.input_size:5d}  {m.path if m.cached else 'no'}"
        )
    return 0


def _cmd_batch(args):
    from .batch import run_batch

    return run_batch(args, config=_config_from(args))


def _cmd_web(args):
    from .web import run_web

    return run_web(host=args.host, port=args.port)


_COMMANDS = {
    "export": _cmd_export,
    "depth": _cmd_depth,
    "info": _cmd_info,
    "view": _cmd_view,
    "models": _cmd_models,
    "batch": _cmd_batch,
    "web": _cmd_web,
}

"""Interactive 3D viewer of a reconstruction or a mesh file (VTK, through PyVista).

``show(rec)`` opens a window with the face as a shaded or textured mesh (mouse: rotate,
pan, zoom) beside the input photo (landmarks and face-mask outline drawn) and the
grayscale depth map (lighter = closer). Keys switch modes, change the depth
exaggeration and the smoothing, measure distances in mm, take screenshots and export
the mesh; ``h`` lists them. ``show(..., off_screen=True, screenshot="out.png")`` renders
without a display.

This module imports pyvista/vtk only inside its functions, so ``import face3d_mesh`` stays
light.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

from .._opengl import load_triton_before_opengl
from ..errors import ImageError, OutputError, UsageError

__all__ = [
    "MODES",
    "MESH_SUFFIXES",
    "NoDisplayError",
    "show",
    "run_view",
    "load_mesh",
    "parse_size",
    "display_available",
]

MODES = ("shaded", "textured", "wireframe", "points", "depth")
MESH_SUFFIXES = (".stl", ".obj", ".ply", ".glb", ".3mf")


class NoDisplayError(UsageError):
    """An interactive window was asked for but there is no display (exit code 2)."""


def display_available() -> tuple[bool, str]:
    """Whether an interactive VTK window can open here, and why not.

    On Linux the X display named by ``DISPLAY`` must accept a connection (VTK's windows are
    X11 windows; under Wayland they need XWayland, which sets ``DISPLAY``). On macOS and
    Windows a display is assumed.

    Returns
    -------
    ok : bool
        True when a window can be opened.
    reason : str
        Empty when ``ok``, otherwise why not.
    """
    if not sys.platform.startswith("linux"):
        return True, ""
    disp = os.environ.get("DISPLAY", "")
    if not disp:
        if os.environ.get("WAYLAND_DISPLAY"):
            return False, "WAYLAND_DISPLAY is set but DISPLAY is not (VTK needs XWayland)"
        return False, "DISPLAY is not set"
    lib = ctypes.util.find_library("X11")
    if lib is None:  # cannot check; let VTK try
        return True, ""
    try:
        x11 = ctypes.CDLL(lib)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        handle = x11.XOpenDisplay(disp.encode())
    except (OSError, AttributeError):
        return True, ""
    if not handle:
        return False, f"cannot connect to the X display {disp!r}"
    x11.XCloseDisplay(handle)
    return True, ""


def _require_display():
    ok, reason = display_available()
    if not ok:
        raise NoDisplayError(
            f"no display available ({reason}): use --screenshot out.png, or run under xvfb-run"
        )


def parse_size(text) -> tuple[int, int]:
    """Parse a window size such as ``"1600x900"`` into ``(1600, 900)``.

    Parameters
    ----------
    text : str or tuple of int
        ``"WIDTHxHEIGHT"`` or a (width, height) pair.

    Returns
    -------
    tuple of int
        (width, height), each between 16 and 8192.

    Raises
    ------
    UsageError
        Not a valid size.
    """
    try:
        if isinstance(text, str):
            w, h = (int(t) for t in text.lower().replace("×", "x").split("x"))
        else:
            w, h = (int(t) for t in text)
    except (TypeError, ValueError):
        raise UsageError(f"invalid size {text!r}: expected WIDTHxHEIGHT, e.g. 1600x900") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise UsageError(f"invalid size {text!r}: width and height must be 16..8192 pixels")
    return w, h


def load_mesh(path):
    """Read a mesh file (``.stl``, ``.obj``, ``.ply``, ``.glb``, ``.3mf``) for viewing.

    :func:`face3d_mesh.load_mesh`, then triangulated: an OBJ keeps the texture its MTL file
    names, a GLB its embedded texture, a PLY its vertex colours (the viewer's ``textured``
    mode shows them).

    Parameters
    ----------
    path : str or Path
        Mesh file.

    Returns
    -------
    pyvista.PolyData
        The mesh, triangulated, in mm, with what :func:`face3d_mesh.load_mesh` reads (UVs
        and the texture in field data, vertex colours as point data ``"RGB"``).

    Raises
    ------
    ImageError
        The file is missing, has another extension, or cannot be read as a mesh.
    """
    import pyvista as pv

    from ..readers import load_mesh as read_mesh

    mesh = read_mesh(path)
    if not isinstance(mesh, pv.PolyData):
        mesh = mesh.extract_surface()
    if mesh.n_points == 0 or mesh.n_cells == 0:
        raise ImageError(f"{path}: mesh is empty or unreadable")
    return mesh if mesh.is_all_triangles else mesh.triangulate()


def _check_mode(mode):
    if mode not in MODES:
        raise UsageError(f"invalid mode {mode!r}: use one of {', '.join(MODES)}")


def show(
    source,
    *,
    off_screen=False,
    screenshot=None,
    size=(1600, 900),
    azimuth=0.0,
    elevation=0.0,
    mode="textured",
    panels=True,
    exaggeration=1.0,
    landmarks=False,
    title=None,
    output_dir=None,
    output_stem=None,
    verbose=None,
):
    """Show a reconstruction or a mesh in a VTK window, or render it to a PNG.

    Parameters
    ----------
    source : Reconstruction, pyvista.DataSet, str or Path
        A :class:`~face3d_mesh.Reconstruction` (3D view + photo + depth map), a mesh
        (3D view only), or the path of a mesh file (``.stl``, ``.obj``, ``.ply``, ``.glb``,
        ``.3mf``).
    off_screen : bool
        Render without opening a window. Implied by ``screenshot``.
    screenshot : str or Path or None
        Write the rendered window to this PNG (atomically) and return without
        interaction.
    size : tuple of int or str
        Window size in pixels, ``(width, height)`` or ``"1600x900"``.
    azimuth, elevation : float
        Camera rotation about the face from the front view, degrees: azimuth > 0 moves the
        camera to the right of the front view (toward the subject's left side), elevation
        > 0 raises it.
    mode : str
        ``"shaded"``, ``"textured"``, ``"wireframe"``, ``"points"`` (point cloud, grey by
        depth, lighter = closer) or ``"depth"`` (surface coloured by depth, mm scale bar).
    panels : bool
        Show the photo and depth-map panels beside the 3D view (reconstructions only).
    exaggeration : float
        Depth exaggeration of the displayed mesh (display only; exports stay in real mm).
    landmarks : bool
        Show the landmarks on the 3D face.
    title : str or None
        Window title and caption.
    output_dir : str or Path or None
        Folder for the screenshots (key ``s``) and exports (key ``e``); default: the
        folder of the input file (a mesh path, or ``rec.source``) if writable, else cwd.
    output_stem : str or None
        File-name stem for those files; default the input file's stem, else ``"face3d"``.
    verbose : bool or None
        Print one line per key action; default: when interactive.

    Returns
    -------
    pyvista.Plotter
        The plotter (closed after an interactive session or a screenshot). Its
        ``face3d_viewer`` attribute is the :class:`~face3d_mesh.frontends._viewer_impl.FaceViewer`
        (``.press("t")``, ``.set_mode(...)``, ``.save_screenshot(...)``...).

    Raises
    ------
    NoDisplayError
        Interactive use without a display (no ``DISPLAY`` on Linux).
    UsageError
        Invalid mode or size.
    OutputError
        The screenshot cannot be written.
    """
    _check_mode(mode)
    size = parse_size(size)
    if screenshot is not None:
        off_screen = True
        shot = Path(screenshot)
        if shot.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise OutputError(f"screenshot must be a .png or .jpg file, not {shot.name!r}")
        from .._atomic import check_writable

        check_writable(shot)  # its folder exists (and is one), and it is no folder itself
    if not off_screen:
        _require_display()
    elif sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        # without X, go straight to EGL instead of VTK trying X first and warning about it
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        source = load_mesh(path)
        output_dir, output_stem = _outputs_next_to(path, output_dir, output_stem)
        title = title or f"face3d_mesh - {path.name}"
    elif isinstance(getattr(source, "source", None), (str, os.PathLike)):
        # a Reconstruction remembers its photo: screenshots and exports go beside it
        path = Path(source.source)
        output_dir, output_stem = _outputs_next_to(path, output_dir, output_stem)
        title = title or f"face3d_mesh - {path.name}"
    load_triton_before_opengl()
    from . import _viewer_impl

    viewer = _viewer_impl.FaceViewer(
        source,
        off_screen=off_screen,
        size=size,
        mode=mode,
        title=title,
        output_dir=output_dir,
        output_stem=output_stem or "face3d",
        panels=panels,
        exaggeration=exaggeration,
        landmarks=landmarks,
        verbose=(not off_screen) if verbose is None else verbose,
    )
    viewer.view_preset("front", render=False, azimuth=azimuth, elevation=elevation)
    plotter = viewer.plotter
    if screenshot is not None:
        viewer.save_screenshot(screenshot)
        plotter.close()
        return plotter
    if off_screen:
        plotter.render()
        return plotter
    viewer.tune_for_interaction()
    if viewer.verbose:
        print("face3d_mesh viewer: press h in the window for the keys, q to quit", flush=True)
    plotter.show(title=viewer.title)
    return plotter


def _outputs_next_to(path: Path, output_dir, output_stem):
    """Default output folder (the input's, if writable, else cwd) and file-name stem."""
    if output_dir is None:
        folder = path.parent if str(path.parent) else Path(".")
        output_dir = folder if folder.is_dir() and os.access(folder, os.W_OK) else Path.cwd()
    return output_dir, output_stem or path.stem


def run_view(
    source,
    *,
    screenshot=None,
    size=(1600, 900),
    azimuth=0.0,
    elevation=0.0,
    mode="textured",
    config=None,
) -> int:
    """Entry point of ``face3d_mesh view``: reconstruct (or load) and show.

    Parameters
    ----------
    source : str, Path or ndarray
        A photo (path or H×W×3 uint8 RGB array), reconstructed with
        :func:`face3d_mesh.reconstruct`, or a mesh file (see :data:`MESH_SUFFIXES`).
    screenshot : str or Path or None
        Render off-screen to this PNG instead of opening a window.
    size : tuple of int or str
        Window / screenshot size, ``(width, height)`` or ``"1600x900"``.
    azimuth, elevation : float
        Camera rotation from the front view, degrees.
    mode : str
        Initial display mode (see :func:`show`).
    config : ReconstructionConfig or None
        Pipeline parameters for a photo.

    Returns
    -------
    int
        0 on success (errors are raised as :class:`~face3d_mesh.errors.Face3DError`).

    Raises
    ------
    NoDisplayError
        No screenshot asked for and no display (checked before the reconstruction runs).
    Face3DError
        Whatever the reconstruction or the mesh reader raise.
    """
    _check_mode(mode)
    size = parse_size(size)
    if screenshot is None:
        _require_display()
    title = output_dir = output_stem = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if screenshot is not None:
            from .._atomic import refuse_to_overwrite

            refuse_to_overwrite(path, [screenshot])  # `view photo.png --screenshot photo.png`
        title = f"face3d_mesh - {path.name}"
        output_dir, output_stem = _outputs_next_to(path, None, None)
        if path.suffix.lower() in MESH_SUFFIXES:
            source = load_mesh(path)
        else:
            source = _reconstruct(path, config)
    else:
        source = _reconstruct(source, config)
    show(
        source,
        screenshot=screenshot,
        size=size,
        azimuth=azimuth,
        elevation=elevation,
        mode=mode,
        title=title,
        output_dir=output_dir,
        output_stem=output_stem,
    )
    if screenshot is not None:
        print(f"screenshot: {screenshot}", flush=True)
    return 0


def _reconstruct(source, config):
    import face3d_mesh

    reconstruct = getattr(face3d_mesh, "reconstruct", None)
    if reconstruct is None:
        from ..pipeline import reconstruct
    return reconstruct(source, config=config)

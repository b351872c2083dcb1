"""The viewer's keys and what they do: modes, views, exaggeration, smoothing, files.

Part of :class:`~face3d_mesh.frontends._viewer_impl.FaceViewer` (a mixin).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ._viewer_scene import BG_BOTTOM, BG_TOP
from .viewer import MODES

__all__ = ["ActionsMixin", "KEYS", "help_text", "write_image_atomic"]

# keysym -> (label shown in the help, description); the order is the help's order
KEYS = [
    ("h", "h", "show / hide this help"),
    ("r", "r", "reset the view (front, fitted)"),
    ("1", "1 / 2 / 3", "front / left profile / right profile view"),
    ("t", "t", "texture on / off (textured <-> shaded)"),
    ("w", "w", "wireframe on / off"),
    ("p", "p", "point cloud, grey by depth (lighter = closer)"),
    ("d", "d", "surface coloured by depth, with a mm scale bar"),
    ("l", "l", "landmarks on the 3D face on / off"),
    ("plus", "+ / -", "depth exaggeration x1.25 / /1.25 (display only)"),
    ("0", "0", "depth exaggeration back to 1"),
    ("bracketright", "] / [", "smoothing +0.5 / -0.5 mm (re-runs filter + surface)"),
    ("m", "m", "measure: pick the surface point under the cursor (2 picks = distance)"),
    ("c", "c", "clear the measurement"),
    ("s", "s", "screenshot (PNG next to the input, or in the current folder)"),
    ("e", "e", "export the mesh as STL, OBJ, GLB and 3MF (real size, no exaggeration)"),
    ("q", "q / Esc", "quit"),
]

#: What the ``e`` key writes (a textured OBJ and GLB when the mesh has a photo).
EXPORT_FORMATS = (".stl", ".obj", ".glb", ".3mf")

EXAGGERATION_STEP = 1.25
SMOOTH_STEP_MM = 0.5
MAX_SMOOTH_MM = 10.0


def help_text() -> str:
    """The help overlay's text: one line per key."""
    width = max(len(label) for _, label, _ in KEYS)
    lines = ["keys (mouse: left drag rotate, shift+left / middle pan, wheel / right zoom)"]
    lines += [f"  {label:<{width}}  {desc}" for _, label, desc in KEYS]
    return "\n".join(lines)


def _free_path(folder: Path, stem: str, suffixes: tuple[str, ...]) -> list[Path]:
    """First ``stem_NN`` for which no file with any of ``suffixes`` exists in ``folder``."""
    for n in range(1, 10_000):
        paths = [folder / f"{stem}_{n:02d}{s}" for s in suffixes]
        if not any(p.exists() for p in paths):
            return paths
    raise OutputError(f"no free file name for {stem}_NN in {folder}")


def write_image_atomic(img: np.ndarray, path) -> Path:
    """Write an RGB(A) uint8 image to ``path`` (PNG or JPEG) via a temporary file.

    Parameters
    ----------
    img : ndarray
        H×W×3 or H×W×4 uint8 image.
    path : str or Path
        Destination; its folder must exist.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    OutputError
        Unsupported extension or unwritable folder.
    """
    import io

    from PIL import Image

    from .._atomic import check_writable, write_atomically

    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"screenshot must be a .png or .jpg file, not {path.name!r}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img[..., :3])).save(buf, format=fmt)
    write_atomically({check_writable(path): buf.getvalue()})
    return path


class ActionsMixin:
    """Key bindings, the status line, and the actions of the keys."""

    help_text = staticmethod(help_text)

    def _install_keys(self):
        p = self.plotter
        if p.iren is None:
            self.key_map = self._key_map()
            return
        p.iren.clear_key_event_callbacks()
        # swallow VTK's built-in char bindings (e/q exit, w/s wireframe/surface, 3 stereo,
        # j/t joystick/trackball, p pick, f fly-to...): a style with a CharEvent observer
        # calls the observer instead of its OnChar.
        style = p.iren.style
        if style is not None:
            style.AddObserver("CharEvent", lambda *_: None)
            for ev in ("InteractionEvent", "EndInteractionEvent"):
                style.AddObserver(ev, self._restore_panel_cameras)
        self.key_map = self._key_map()
        for key in self.key_map:
            p.add_key_event(key, lambda key=key: self.press(key))

    def _key_map(self):
        return {
            "h": self.toggle_help,
            "r": self.reset_view,
            "1": lambda: self.view_preset("front"),
            "2": lambda: self.view_preset("left"),
            "3": lambda: self.view_preset("right"),
            "t": self.toggle_texture,
            "w": lambda: self.toggle_mode("wireframe"),
            "p": lambda: self.toggle_mode("points"),
            "d": lambda: self.toggle_mode("depth"),
            "l": self.toggle_landmarks,
            "plus": lambda: self.change_exaggeration(EXAGGERATION_STEP),
            "equal": lambda: self.change_exaggeration(EXAGGERATION_STEP),
            "KP_Add": lambda: self.change_exaggeration(EXAGGERATION_STEP),
            "minus": lambda: self.change_exaggeration(1 / EXAGGERATION_STEP),
            "underscore": lambda: self.change_exaggeration(1 / EXAGGERATION_STEP),
            "KP_Subtract": lambda: self.change_exaggeration(1 / EXAGGERATION_STEP),
            "0": lambda: self.change_exaggeration(None),
            "bracketright": lambda: self.change_smoothing(+SMOOTH_STEP_MM),
            "bracketleft": lambda: self.change_smoothing(-SMOOTH_STEP_MM),
            "m": self.measure_at_cursor,
            "c": self._clear_measurement,
            "s": self.save_screenshot,
            "e": self.export,
            "q": self.quit,
            "Escape": self.quit,
        }

    def press(self, key: str):
        """Run the action bound to the key ``key`` (a VTK/X keysym, e.g. ``"t"``, ``"plus"``).

        Parameters
        ----------
        key : str
            Key symbol.

        Returns
        -------
        object
            What the action returned (a path list for ``s``/``e``), or None.
        """
        action = self.key_map.get(key)
        if action is None:
            return None
        self.last_message = ""
        try:
            result = action()
        except Exception as exc:  # a failing key must not kill the window
            self._message(f"{key}: {type(exc).__name__}: {exc}")
            result = None
        if key not in ("q", "Escape"):
            self._update_status()
            self.render()
        return result

    def render(self):
        """Render the window (no-op when closed)."""
        if self.plotter.render_window is not None:
            self.plotter.render()

    def _message(self, text, overlay=True):
        self.last_message = text if overlay else ""
        if self.verbose:
            print(text, flush=True)

    def _update_status(self):
        parts = [f"mode: {self.mode}", f"depth x{self.exaggeration:.2f}"]
        if self.rec is not None:
            parts.append(f"smoothing {self.smooth_mm:.1f} mm")
        parts.append(f"{self.base.n_cells:,} triangles")
        if len(self.picks) == 2:
            parts.append(f"distance {self.distance_mm():.1f} mm")
        parts.append("h: help")
        line = "   |   ".join(parts)
        if self.last_message:
            line = self.last_message + "\n" + line
        self.status.SetInput(line)

    def set_mode(self, mode, render=True):
        """Show the mesh as ``shaded``, ``textured``, ``wireframe``, ``points`` or ``depth``.

        Parameters
        ----------
        mode : str
            One of :data:`MODES`.
        render : bool
            Render afterwards.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        if mode in ("shaded", "textured"):
            self.surface_mode = mode
        for name in MODES:
            self.actors[name].visibility = False
        self.actors[mode].visibility = True
        self.scalar_bar.SetVisibility(mode == "depth")
        if mode == "points":
            self.main_renderer.set_background((0.0, 0.0, 0.0), top=(0.10, 0.10, 0.12))
        else:
            self.main_renderer.set_background(BG_BOTTOM, top=BG_TOP)
        self._update_status()
        if render:
            self.render()

    def toggle_mode(self, mode):
        """Switch to ``mode``, or back to the last surface mode if already in it.

        Parameters
        ----------
        mode : str
            One of :data:`MODES`.
        """
        self.set_mode(self.surface_mode if self.mode == mode else mode, render=False)
        self._message(f"mode: {self.mode}", overlay=False)

    def toggle_texture(self):
        """Textured <-> shaded (from any other mode: textured)."""
        if self.mode == "textured":
            self.set_mode("shaded", render=False)
        else:
            self.set_mode("textured", render=False)
        self._message(f"mode: {self.mode}", overlay=False)

    def toggle_help(self):
        """Show or hide the key help."""
        self.help_visible = not self.help_visible
        self.help_actor.SetVisibility(self.help_visible)

    def reset_view(self, render=True):
        """Front view, camera fitted to the face.

        Parameters
        ----------
        render : bool
            Render afterwards.
        """
        self.view_preset("front", render=render)

    def view_preset(self, name, render=True, azimuth=0.0, elevation=0.0):
        """Put the camera in front of (``front``) or beside (``left``, ``right``) the face.

        Parameters
        ----------
        name : str
            ``front``; ``left``: the subject's left profile (camera on +x, the right of
            the front view); ``right``: the subject's right profile.
        render : bool
            Render afterwards.
        azimuth, elevation : float
            Extra rotation of the camera about the face, degrees.
        """
        r = self.main_renderer
        b = np.array(self.surf.bounds).reshape(3, 2)
        centre = b.mean(axis=1)
        radius = 0.5 * float(np.linalg.norm(b[:, 1] - b[:, 0])) or 1.0
        direction = {"front": (0, 0, 1), "left": (1, 0, 0), "right": (-1, 0, 0)}[name]
        cam = r.camera
        cam.parallel_projection = False
        cam.view_angle = 30.0
        dist = radius / math.sin(math.radians(15.0)) * 0.92
        cam.focal_point = tuple(centre)
        cam.position = tuple(centre + dist * np.array(direction, float))
        cam.up = (0, 1, 0)
        if azimuth:
            cam.Azimuth(float(azimuth))
        if elevation:
            cam.Elevation(float(elevation))
            cam.OrthogonalizeViewUp()
        r.ResetCameraClippingRange()
        if render:
            self.render()

    def change_exaggeration(self, factor):
        """Multiply the displayed depth by ``factor`` (display only; exports stay in mm).

        Parameters
        ----------
        factor : float or None
            Multiplier of the current exaggeration (kept within 0.1..10); None resets to 1.
        """
        new = 1.0 if factor is None else self.exaggeration * factor
        new = float(min(max(new, 0.1), 10.0))
        if abs(new - self.exaggeration) < 1e-9:
            return
        self.exaggeration = new
        self._update_geometry()
        self._message(f"depth exaggeration x{self.exaggeration:.2f}")

    def change_smoothing(self, delta_mm):
        """Change ``smooth_sigma_mm`` by ``delta_mm`` and re-run filter + surface.

        Uses ``rec.with_config(smooth_sigma_mm=...)``; the depth panel follows.

        Parameters
        ----------
        delta_mm : float
            Change of the Gaussian smoothing, mm (the result is kept within 0..10 mm).
        """
        if self.rec is None or not hasattr(self.rec, "with_config"):
            self._message("smoothing needs a reconstruction (this is a bare mesh)")
            return
        new = round(min(max(self.smooth_mm + delta_mm, 0.0), MAX_SMOOTH_MM), 3)
        if new == self.smooth_mm:
            return
        t0 = time.perf_counter()
        self.rec = self.rec.with_config(smooth_sigma_mm=new)
        self.smooth_mm = new
        self.base = self._prepare_mesh(self.rec.mesh)
        self._update_geometry()
        self._refresh_depth_panel()
        self._message(
            f"smoothing {new:.1f} mm (re-meshed in {1000 * (time.perf_counter() - t0):.0f} ms)"
        )

    def save_screenshot(self, path=None):
        """Write the window to a PNG (``path``, or a free name in the output folder).

        Parameters
        ----------
        path : str or Path or None
            Destination; default ``<output_dir>/<stem>_view_NN.png``.

        Returns
        -------
        Path
            The written file.
        """
        if path is None:
            (path,) = _free_path(self.output_dir, f"{self.output_stem}_view", (".png",))
        self._panels_dirty = True  # a screenshot draws everything afresh
        fast = getattr(self, "_vertex_lighting", False)
        try:
            self.set_vertex_lighting(False)  # VTK's per-pixel lighting for the file
            self.render()
            img = self.plotter.screenshot(return_img=True)
        finally:
            self.set_vertex_lighting(fast)
        out = write_image_atomic(img, path)
        self._message(f"screenshot: {out}")
        return out

    def export(self, formats=EXPORT_FORMATS):
        """Export the current mesh (current smoothing, real mm) next to the input.

        Parameters
        ----------
        formats : tuple of str
            Extensions to write.

        Returns
        -------
        list of Path
            Every file written (an OBJ may come with its material and texture).
        """
        paths = _free_path(self.output_dir, f"{self.output_stem}_mesh", tuple(formats))
        written = []
        for path in paths:
            if self.rec is not None and hasattr(self.rec, "save"):
                written += [Path(x) for x in self.rec.save(path)]
            else:
                from ..exporters import export_mesh

                texture = self._texture_image() if self._has_texture() else None
                written += [Path(x) for x in export_mesh(self.base, path, texture=texture)]
        self._message("exported: " + ", ".join(str(p) for p in written))
        return written

    def quit(self):
        """Close the window (ends :meth:`pyvista.Plotter.show`)."""
        p = self.plotter
        if p.iren is not None:
            try:
                p._prep_for_close()
            except Exception:
                pass
            p.iren.terminate_app()

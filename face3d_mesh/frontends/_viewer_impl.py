"""Implementation of the interactive viewer (imports pyvista/vtk: load it lazily).

The public entry points live in :mod:`face3d_mesh.frontends.viewer`; this module holds the
:class:`FaceViewer` that builds the scene, keeps the state (mode, exaggeration,
smoothing, measurement) and handles the keys. Its parts, one module each:

- :mod:`._viewer_scene`: display copies of the mesh, the plotter, lights and actors;
- :mod:`._viewer_panels`: the photo and depth-map panels;
- :mod:`._viewer_actions`: the keys and their actions (modes, views, smoothing, files);
- :mod:`._viewer_measure`: landmarks on the 3D face and the distance measurement;
- :mod:`._viewer_render`: the frame rate (per-vertex lighting, shader warm-up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyvista as pv

from ._viewer_actions import (  # noqa: F401 - re-exported: the viewer's keys and files
    EXPORT_FORMATS,
    KEYS,
    ActionsMixin,
    help_text,
    write_image_atomic,
)
from ._viewer_measure import MeasureMixin
from ._viewer_panels import PanelsMixin
from ._viewer_render import RenderingMixin
from ._viewer_scene import SceneMixin
from .viewer import MODES  # noqa: F401 - re-exported

__all__ = ["FaceViewer", "KEYS", "MODES", "help_text", "write_image_atomic"]


class FaceViewer(ActionsMixin, MeasureMixin, PanelsMixin, SceneMixin, RenderingMixin):
    """Scene and key handling of the face3d_mesh viewer.

    Parameters
    ----------
    source : Reconstruction or pyvista.DataSet
        A reconstruction (3D view + photo + depth panels) or a bare mesh (3D view only).
    off_screen : bool
        Render off-screen.
    size : tuple of int
        Window size (width, height) in pixels.
    mode : str
        Initial display mode, one of :data:`MODES`.
    title : str or None
        Window title and caption of the 3D view.
    output_dir : str or Path or None
        Folder of screenshots and exports made with ``s`` and ``e`` (default: cwd).
    output_stem : str
        File-name stem of those files.
    panels : bool
        Show the photo and depth-map panels (reconstructions only).
    exaggeration : float
        Initial depth exaggeration of the displayed mesh.
    landmarks : bool
        Show the landmarks on the 3D face initially.
    verbose : bool
        Print a line for each key action (interactive use).
    """

    def __init__(
        self,
        source,
        *,
        off_screen=False,
        size=(1600, 900),
        mode="textured",
        title=None,
        output_dir=None,
        output_stem="face3d",
        panels=True,
        exaggeration=1.0,
        landmarks=False,
        verbose=False,
    ):
        if isinstance(source, pv.DataSet):
            self.rec = None
            mesh = source
        else:
            self.rec = source
            mesh = source.mesh
        self.base = self._prepare_mesh(mesh)
        self.title = title or "face3d_mesh"
        self.output_dir = Path(output_dir) if output_dir else Path.cwd()
        self.output_stem = output_stem
        self.verbose = verbose
        self.exaggeration = float(exaggeration)
        self.smooth_mm = float(self.rec.config.smooth_sigma_mm) if self.rec is not None else 0.0
        self.mode = mode
        self.surface_mode = mode if mode in ("shaded", "textured") else "textured"
        self.show_landmarks3d = bool(landmarks)
        self.help_visible = False
        self.picks: list[np.ndarray] = []
        self.last_message = ""
        self.has_panels = bool(panels) and self.rec is not None
        self._labels = []
        self._panels_dirty, self._panels_drawing, self._panels_size = True, False, None
        self._build_plotter(off_screen, size)
        self._update_geometry(reset_camera=True)
        self.set_mode(mode, render=False)

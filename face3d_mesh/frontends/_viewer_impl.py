"""Implementation of the interactive viewer (imports pyvista/vtk: load it lazily).

The public entry points live in :mod:`face3d_mesh.frontends.viewer`; this module holds the
:class:`FaceViewer` that builds the scene, keeps the state (mode, exaggeration,
smoothing, measurement) and handles the keys.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyvista as pv

from ..errors import OutputError
from ..presentation import annotate_photo, depth_preview, face_box

MODES = ("shaded", "textured", "wireframe", "points", "depth")

SKIN = (0.87, 0.80, 0.74)  # clay colour of the shaded surface
BG_TOP = (0.20, 0.22, 0.26)
BG_BOTTOM = (0.06, 0.06, 0.08)
PANEL_BG = (0.0, 0.0, 0.0)

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

# font sizes (points) of the caption, the status line and the panels' labels in a 1600×900
# window; they scale with the window's size
CAPTION_PT = 14
STATUS_PT = 11
PANEL_LABEL_PT = 12

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


def _pixel_to_mesh_affine(mesh, image_shape):
    """Least-squares map from photo pixels (u, v) to mesh (x, y), from the mesh's UVs.

    Returns a (3, 2) matrix ``A`` such that ``[u, v, 1] @ A = [x, y]``, or None when the
    mesh has no texture coordinates.
    """
    tc = mesh.point_data.active_texture_coordinates
    if tc is None or mesh.n_points < 3:
        return None
    h, w = image_shape[:2]
    tc = np.asarray(tc, dtype=np.float64)
    u = tc[:, 0] * w
    v = (1.0 - tc[:, 1]) * h
    sel = slice(None, None, max(1, mesh.n_points // 5000))
    design = np.stack([u[sel], v[sel], np.ones_like(u[sel])], axis=1)
    a, *_ = np.linalg.lstsq(design, np.asarray(mesh.points, np.float64)[sel, :2], rcond=None)
    return a


def _add_vertex_lighting(shader_property, n_lights):
    """Shader replacements that move VTK's lighting of a surface to the vertex shader.

    For ``n_lights`` directional lights (VTK's light complexity 2): the vertex shader
    computes, per vertex, VTK's own diffuse and specular sums (same formulas, same uniforms)
    for the front and the back side; the fragment shader takes the side it draws and
    finishes as VTK does (ambient + diffuse × colour + specular × specular colour, then
    the texture).
    """
    dec = ["out vec3 normalVCVSOutput;", "uniform float specularPowerUniform;"]
    for i in range(n_lights):
        dec += [f"uniform vec3 lightColor{i};", f"uniform vec3 lightDirectionVC{i};"]
    dec += ["out vec3 f3dDiffF;", "out vec3 f3dSpecF;", "out vec3 f3dDiffB;", "out vec3 f3dSpecB;"]
    body = [
        "{",
        "  vec3 n = normalize(normalVCVSOutput);",
        "  vec3 vdir = normalize(-vertexVCVSOutput.xyz);",
        "  f3dDiffF = vec3(0.0); f3dSpecF = vec3(0.0);",
        "  f3dDiffB = vec3(0.0); f3dSpecB = vec3(0.0);",
        "  float df; float sf;",
    ]
    for i in range(n_lights):
        light, colour = f"lightDirectionVC{i}", f"lightColor{i}"
        for side, nn in (("F", "n"), ("B", "-n")):
            body += [
                f"  df = max(0.0, dot({nn}, -{light}));",
                f"  f3dDiff{side} += df * {colour};",
                f"  sf = sign(df) * pow(max(1e-5, dot(reflect({light}, {nn}), vdir)),"
                " specularPowerUniform);",
                f"  f3dSpec{side} += sf * {colour};",
            ]
    body.append("}")
    sp = shader_property
    sp.AddVertexShaderReplacement("out vec3 normalVCVSOutput;", False, "\n".join(dec), False)
    sp.AddVertexShaderReplacement(
        "//VTK::Light::Impl", False, "\n".join(body) + "\n//VTK::Light::Impl", False
    )
    sp.AddFragmentShaderReplacement(
        "//VTK::Normal::Dec",
        True,
        "//VTK::Normal::Dec\nin vec3 f3dDiffF;\nin vec3 f3dSpecF;\n"
        "in vec3 f3dDiffB;\nin vec3 f3dSpecB;",
        False,
    )
    sp.AddFragmentShaderReplacement(
        "//VTK::Light::Impl",
        True,
        "\n".join(
            [
                "  vec3 diffuse = gl_FrontFacing ? f3dDiffF : f3dDiffB;",
                "  vec3 specular = gl_FrontFacing ? f3dSpecF : f3dSpecB;",
                "  diffuse = diffuse * diffuseColor;",
                "  specular = specular * specularColor;",
                "  fragOutput0 = vec4(ambientColor + diffuse + specular, opacity);",
            ]
        ),
        False,
    )


class FaceViewer:
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

    def renderer_name(self) -> str:
        """The OpenGL renderer string (e.g. ``"llvmpipe (LLVM 15.0.6, 256 bits)"``).

        Renders once if nothing was rendered yet (that opens the window when interactive).
        """
        rw = self.plotter.render_window
        if rw is None:
            return ""
        caps = rw.ReportCapabilities()
        if "OpenGL renderer string" not in caps:
            rw.Render()
            caps = rw.ReportCapabilities()
        for line in caps.splitlines():
            if line.startswith("OpenGL renderer string:"):
                return line.split(":", 1)[1].strip()
        return ""

    def tune_for_interaction(self) -> bool:
        """Get ready for interaction: multisampling and lighting, shaders built in advance.

        On a software OpenGL (llvmpipe, softpipe, SwiftShader), which fills pixels on the
        CPU, multisampling (which halves the frame rate there, while it is free on a GPU)
        is turned off and the surfaces are lit per vertex (:meth:`set_vertex_lighting`);
        screenshot files keep VTK's per-pixel lighting. Then every display mode is
        rendered once, unseen (:meth:`warm_up`), so that the first press of a key does not
        wait for shaders to compile.

        Returns
        -------
        bool
            True when the renderer is a software one (and multisampling was turned off).
        """
        name = self.renderer_name().lower()
        software = any(k in name for k in ("llvmpipe", "softpipe", "swiftshader", "swrast"))
        if software:
            self.plotter.render_window.SetMultiSamples(0)
        self.set_vertex_lighting(software)  # a GPU lights every pixel for free
        self.warm_up()
        return software

    def _lights_on(self):
        lights = self.main_renderer.GetLights()
        lights.InitTraversal()
        found = [lights.GetNextItem() for _ in range(lights.GetNumberOfItems())]
        return [light for light in found if light.GetSwitch()]

    def set_vertex_lighting(self, on):
        """Light the surfaces per vertex (interaction) or per pixel (VTK's; screenshots).

        VTK lights every pixel: on a software OpenGL the four lights are about 40% of a
        frame. The face mesh has ~5-pixel triangles, so lighting its vertices and
        interpolating the result looks the same (a few grey levels on ~0.1% of the pixels)
        for a quarter less time per frame. Shader replacements: the vertex shader
        computes VTK's diffuse and specular sums for both sides of the surface; the
        fragment shader picks the side and keeps VTK's colour and texture logic.

        Parameters
        ----------
        on : bool
            Per-vertex lighting on (True) or VTK's own per-pixel lighting (False).

        Returns
        -------
        bool
            Whether per-vertex lighting is now on (only with directional lights).
        """
        lights = self._lights_on()
        usable = bool(lights) and all(
            not light.GetPositional() and not light.LightTypeIsHeadlight() for light in lights
        )
        on = bool(on) and usable
        if on == getattr(self, "_vertex_lighting", False):
            return on
        surfaces = {id(self.actors[m]): self.actors[m] for m in ("shaded", "textured", "depth")}
        for actor in surfaces.values():
            sp = actor.GetShaderProperty()
            sp.ClearAllShaderReplacements()
            if on:
                _add_vertex_lighting(sp, len(lights))
        self._vertex_lighting = on
        return on

    def warm_up(self):
        """Render every display mode once, unseen, so that a key only flips visibility.

        The first frame that shows an actor compiles its shaders and uploads its buffers
        (~100 ms for a mode on a software OpenGL): done here for all of them in one frame,
        with buffer swapping off, so the window never shows that frame.
        """
        rw = self.plotter.render_window
        if rw is None:
            return
        actors = [self.actors[m] for m in MODES] + [
            self.actors[n] for n in ("landmarks", "picks", "pick_line")
        ]
        props = actors + [self.scalar_bar, self.help_actor]
        shown = [bool(a.GetVisibility()) for a in props]
        swap = rw.GetSwapBuffers()
        self._panels_dirty = True
        try:
            for a in props:
                a.SetVisibility(True)
            rw.SetSwapBuffers(False)
            rw.Render()
        finally:
            rw.SetSwapBuffers(swap)
            for a, vis in zip(props, shown, strict=True):
                a.SetVisibility(vis)
            self._panels_dirty = True

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def _prepare_mesh(mesh):
        """Triangulated PolyData copy with only what the viewer uses."""
        if not isinstance(mesh, pv.PolyData):
            mesh = mesh.extract_surface()
        m = mesh.triangulate() if not mesh.is_all_triangles else mesh.copy()
        return m

    def _texture_image(self):
        """The photo of a reconstruction, or the texture a mesh file came with, or None."""
        if self.rec is not None:
            return self.rec.image
        from ..readers import mesh_texture

        return mesh_texture(self.base)

    def _has_texture(self):
        tc = self.base.point_data.active_texture_coordinates
        return tc is not None and self._texture_image() is not None

    def _has_rgb(self):
        return "RGB" in self.base.point_data or "RGBA" in self.base.point_data

    def _make_display(self):
        """Display copies of the base mesh with the current exaggeration applied."""
        base = self.base
        pts = np.asarray(base.points, dtype=np.float32).copy()
        pts[:, 2] *= self.exaggeration
        surf = pv.PolyData(pts, base.faces)
        tc = base.point_data.active_texture_coordinates
        if tc is not None:
            surf.point_data["UV"] = np.asarray(tc, np.float32)
            surf.point_data.active_texture_coordinates_name = "UV"
        for name in ("RGB", "RGBA"):
            if name in base.point_data:
                surf.point_data["colors"] = np.asarray(base.point_data[name])[:, :3]
                break
        surf = surf.compute_normals(
            cell_normals=False,
            split_vertices=False,
            auto_orient_normals=False,
            consistent_normals=False,
        )
        if "UV" in surf.point_data:
            surf.point_data.active_texture_coordinates_name = "UV"
        z = np.asarray(base.points[:, 2], np.float32)
        surf.point_data["depth (mm)"] = (z.max() - z) if len(z) else z
        surf.point_data["closeness"] = z
        return surf

    @staticmethod
    def _with_array(surf, name):
        """Shallow copy of ``surf``'s geometry carrying only the point array ``name``.

        Each scalar-coloured actor gets its own dataset: actors sharing one dataset would
        fight over its active scalars.
        """
        out = pv.PolyData()
        out.shallow_copy(surf)
        for key in list(out.point_data.keys()):
            if key not in (name, "Normals"):
                out.point_data.remove(key)
        out.point_data.active_scalars_name = name
        return out

    def _make_cloud(self, surf):
        """The point cloud: the surface's points, each drawn once (one vertex cell each).

        Drawing the triangles' corners in ``points`` style would draw every point as many
        times as it has triangles (~6): the same picture at six times the cost.
        """
        cloud = pv.PolyData()
        cloud.SetPoints(surf.GetPoints())
        n = surf.n_points
        cloud.verts = np.c_[np.ones(n, np.int64), np.arange(n, dtype=np.int64)].ravel()
        cloud.point_data["closeness"] = surf.point_data["closeness"]
        cloud.point_data.active_scalars_name = "closeness"
        return cloud

    def _make_edges(self, surf):
        """The wireframe: each edge of the surface once, as a line cell.

        VTK's wireframe style draws every triangle's three edges, so each inner edge
        twice; the unique edges give the same picture with half the lines. The edges are
        worked out once per mesh (the exaggeration only moves the points).
        """
        if getattr(self, "_edges_of", None) is not self.base:
            faces = np.asarray(self.base.faces)
            if faces.size % 4 == 0 and (faces.size == 0 or np.all(faces[::4] == 3)):
                tri = faces.reshape(-1, 4)[:, 1:]
                pairs = tri[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
                pairs.sort(axis=1)
                n = max(1, self.base.n_points)
                key = np.unique(pairs[:, 0] * n + pairs[:, 1])
                lines = np.c_[np.full(len(key), 2), key // n, key % n].ravel()
            else:  # not all triangles: let VTK find the edges
                lines = np.asarray(self.base.extract_all_edges().lines)
            self._edge_lines, self._edges_of = lines, self.base
        edges = pv.PolyData()
        edges.SetPoints(surf.GetPoints())
        edges.lines = self._edge_lines
        return edges

    def _update_geometry(self, reset_camera=False):
        new = self._make_display()
        depth = self._with_array(new, "depth (mm)")
        if not hasattr(self, "surf"):
            self.surf, self.depth_surf = new, depth
            self.cloud, self.edges = self._make_cloud(new), self._make_edges(new)
            self._add_actors()
        else:
            self.surf.copy_from(new)
            self.depth_surf.copy_from(depth)
            self.cloud.copy_from(self._make_cloud(self.surf))
            self.edges.copy_from(self._make_edges(self.surf))
            self._update_scalar_ranges()
        self._update_landmarks3d()
        self._clear_measurement(render=False)
        if reset_camera:
            self.reset_view(render=False)

    def _depth_clim(self):
        d = np.asarray(self.depth_surf.point_data["depth (mm)"])
        return (0.0, float(np.percentile(d, 99.5)) if len(d) else 1.0)

    def _closeness_clim(self):
        z = np.asarray(self.cloud.point_data["closeness"])
        if not len(z):
            return (0.0, 1.0)
        lo, hi = float(np.percentile(z, 0.5)), float(z.max())
        return (lo - 0.35 * (hi - lo), hi)  # farthest points stay dark grey, not black

    def _update_scalar_ranges(self):
        self.actors["depth"].mapper.scalar_range = self._depth_clim()
        self.actors["points"].mapper.scalar_range = self._closeness_clim()

    # ------------------------------------------------------------------ scene
    def _build_plotter(self, off_screen, size):
        size = (int(size[0]), int(size[1]))
        if self.has_panels:
            self.plotter = pv.Plotter(
                off_screen=off_screen,
                window_size=size,
                shape=(2, 3),
                groups=[([0, 1], [0, 1])],
                border=False,
                title=self.title,
            )
        else:
            self.plotter = pv.Plotter(
                off_screen=off_screen, window_size=size, border=False, title=self.title
            )
        pv.set_new_attribute(self.plotter, "face3d_viewer", self)
        if self.plotter.render_window is not None:
            self.plotter.render_window.AddObserver("StartEvent", self._on_render_start)
            self.plotter.render_window.AddObserver("EndEvent", self._on_render_end)
        self.plotter.subplot(0, 0)
        self.plotter.set_background(BG_BOTTOM, top=BG_TOP)
        self.main_renderer = self.plotter.renderer
        if hasattr(self.main_renderer, "SetDitherGradient"):  # VTK >= 9.3
            # dithering noise in the background makes PNGs 2-3x larger; the banding it
            # hides is invisible on this dark, narrow gradient
            self.main_renderer.SetDitherGradient(False)
        self._setup_lights()
        if self.has_panels:
            self._add_panels()
        self._install_keys()

    def _setup_lights(self):
        r = self.main_renderer
        r.remove_all_lights()
        # camera lights follow the view: key from upper left, fill from the right, a low
        # raking light from below-left that brings out the relief, and a soft headlight.
        for pos, intensity in (
            ((-1.0, 1.2, 1.0), 0.75),
            ((1.2, 0.2, 0.8), 0.30),
            ((-0.8, -1.0, 0.5), 0.15),
            ((0.0, 0.0, 1.0), 0.20),
        ):
            light = pv.Light(
                position=pos, focal_point=(0, 0, 0), light_type="camera light", intensity=intensity
            )
            r.add_light(light)

    def _add_actors(self):
        p = self.plotter
        p.subplot(0, 0)
        surf = self.surf
        common = dict(smooth_shading=False, reset_camera=False, show_scalar_bar=False)
        self.actors = {}
        self.actors["shaded"] = p.add_mesh(
            surf, color=SKIN, specular=0.25, specular_power=20, ambient=0.12, diffuse=0.9, **common
        )
        if self._has_texture():
            self.texture = pv.Texture(np.ascontiguousarray(self._texture_image()[..., :3]))
            self.actors["textured"] = p.add_mesh(
                surf, texture=self.texture, ambient=0.25, diffuse=0.8, specular=0.05, **common
            )
        elif self._has_rgb():
            self.actors["textured"] = p.add_mesh(
                surf, scalars="colors", rgb=True, ambient=0.25, diffuse=0.8, **common
            )
        else:
            self.actors["textured"] = self.actors["shaded"]
        # opaque lines: a translucent wireframe costs a depth-sorting pass per frame
        self.actors["wireframe"] = p.add_mesh(
            self.edges,
            style="wireframe",
            color=(0.45, 0.62, 0.85),
            line_width=1,
            lighting=False,
            **common,
        )
        self.actors["points"] = p.add_mesh(
            self.cloud,
            style="points",
            scalars="closeness",
            cmap="gray",
            clim=self._closeness_clim(),
            point_size=2,
            lighting=False,
            **common,
        )
        self.actors["depth"] = p.add_mesh(
            self.depth_surf,
            scalars="depth (mm)",
            cmap="viridis_r",
            clim=self._depth_clim(),
            specular=0.2,
            specular_power=20,
            **common,
        )
        self.scalar_bar = p.add_scalar_bar(
            "depth (mm)",
            mapper=self.actors["depth"].mapper,
            vertical=True,
            position_x=0.86,
            position_y=0.2,
            height=0.6,
            width=0.06,
            n_labels=5,
            fmt="%.0f",
            title_font_size=14,
            label_font_size=12,
            color="white",
        )
        for a in self.actors.values():
            a.prop.interpolation = "phong" if a.prop.style == "Surface" else a.prop.interpolation
        self.landmarks3d = pv.PolyData(np.zeros((1, 3), np.float32))
        self.actors["landmarks"] = p.add_mesh(
            self.landmarks3d,
            color=(0.1, 1.0, 0.6),
            point_size=6,
            render_points_as_spheres=True,
            lighting=False,
            reset_camera=False,
        )
        self.pick_cloud = pv.PolyData(np.zeros((1, 3), np.float32))
        self.actors["picks"] = p.add_mesh(
            self.pick_cloud,
            color=(1.0, 0.25, 0.2),
            point_size=12,
            render_points_as_spheres=True,
            lighting=False,
            reset_camera=False,
        )
        self.pick_line = pv.Line((0, 0, 0), (0, 0, 1))
        self.actors["pick_line"] = p.add_mesh(
            self.pick_line, color=(1.0, 0.25, 0.2), line_width=3, lighting=False, reset_camera=False
        )
        for name in ("landmarks", "picks", "pick_line"):
            self.actors[name].visibility = False
        # texts
        cap = self.title
        if self.rec is not None and getattr(self.rec, "scale", None) is not None:
            try:
                cap += "   |   scale " + self.rec.scale.describe()
            except Exception:  # a caption must never break the viewer
                pass
        self.caption = self._add_label(cap, "upper_left", CAPTION_PT, (1.0, 1.0, 1.0), "caption")
        self.status = self._add_label("", "lower_left", STATUS_PT, (0.85,) * 3, "status")
        self.help_actor = p.add_text(
            help_text(),
            position=(0.01, 0.94),
            viewport=True,
            font_size=8,
            color="white",
            font="courier",
            name="help",
        )
        tp = self.help_actor.GetTextProperty()
        tp.SetVerticalJustificationToTop()
        tp.SetJustificationToLeft()
        tp.SetBackgroundColor(0.0, 0.0, 0.0)
        tp.SetBackgroundOpacity(0.7)
        tp.SetFrame(False)
        self.help_actor.SetVisibility(False)

    def _add_label(self, text, corner, points, color, name):
        """A text line in a corner of the current subplot, at a fixed font size.

        A plain ``vtkTextActor``, not pyvista's ``add_text(position="upper_left")``: that
        makes a ``vtkCornerAnnotation``, which searches for a font size that fits the
        viewport each time its text changes (laying the text out again and again), and
        costs several hundred milliseconds on a software OpenGL for each new status line.
        The sizes (:data:`CAPTION_PT`...) match what the annotations chose in a 1600×900
        window; :meth:`_scale_labels` scales them with the window.
        """
        import vtk

        actor = vtk.vtkTextActor()
        actor.SetInput(text)
        tp = actor.GetTextProperty()
        tp.SetFontFamilyToArial()
        tp.SetColor(*color)
        tp.SetJustificationToLeft()
        if corner == "upper_left":
            tp.SetVerticalJustificationToTop()
            pos = (0.004, 0.993)
        else:
            tp.SetVerticalJustificationToBottom()
            pos = (0.004, 0.008)
        coord = actor.GetPositionCoordinate()
        coord.SetCoordinateSystemToNormalizedViewport()
        coord.SetValue(*pos)
        self._labels.append((actor, points))
        self._scale_labels(force=True)
        self.plotter.add_actor(actor, reset_camera=False, name=name, pickable=False, render=False)
        return actor

    def _on_render_start(self, *_):
        self._scale_labels()
        self._panels_draw_if_needed()

    def _on_render_end(self, *_):
        if self.has_panels and self._panels_drawing:
            # drawn: their pixels stay in VTK's render framebuffer, which no other
            # renderer touches, so the next frames keep them without drawing them again
            for ren in self.panel_renderers:
                ren.SetDraw(False)
            self._panels_drawing = False

    def _panels_draw_if_needed(self):
        """Draw the photo and depth panels in this frame only if they (may have) changed.

        The panels are static while the face turns: drawing them (two textured quads over
        a third of the window) is ~7 ms of a ~60 ms frame on a software OpenGL. They are
        drawn again when their content changed, when the window's framebuffer may have been
        made anew (size, multisampling), or when asked for with ``_panels_dirty`` (a
        screenshot does).
        """
        if not self.has_panels:
            return
        rw = self.plotter.render_window
        # what makes VTK allocate a new render framebuffer (losing the panels' pixels)
        size = (*rw.GetSize(), rw.GetMultiSamples(), rw.GetOffScreenRendering())
        if self._panels_dirty or size != self._panels_size:
            self._panels_size = size
            self._panels_dirty = False
            self._panels_drawing = True
            for ren in self.panel_renderers:
                ren.SetDraw(True)

    def _scale_labels(self, *_, force=False):
        """Font sizes of the labels follow the window's size (reference 1600×900)."""
        rw = self.plotter.render_window
        size = tuple(rw.GetSize()) if rw is not None else tuple(self.plotter.window_size)
        if not force and size == getattr(self, "_label_window_size", None):
            return
        self._label_window_size = size
        f = math.sqrt(max(1, size[0]) * max(1, size[1]) / (1600.0 * 900.0))
        f = min(max(f, 0.6), 2.5)
        for actor, points in self._labels:
            actor.GetTextProperty().SetFontSize(max(7, round(points * f)))

    def _panel_camera(self, renderer, box):
        """Parallel camera showing the photo-pixel box (u0, v0, u1, v1) of a panel."""
        u0, v0, u1, v1 = box
        w, h = u1 - u0, v1 - v0
        cx, cy = 0.5 * (u0 + u1), self._img_h - 0.5 * (v0 + v1)
        cam = renderer.camera
        cam.parallel_projection = True
        cam.focal_point = (cx, cy, 0)
        cam.position = (cx, cy, 10 * max(w, h))
        cam.up = (0, 1, 0)
        vx0, vy0, vx1, vy1 = renderer.GetViewport()
        ww, wh = self.plotter.window_size
        aspect = ((vx1 - vx0) * ww) / max(1.0, (vy1 - vy0) * wh)
        scale = 1.14 * max(h / 2, w / (2 * aspect))
        cy += 0.07 * scale  # room for the panel's caption above the image
        cam.focal_point = (cx, cy, 0)
        cam.position = (cx, cy, 10 * max(w, h))
        cam.parallel_scale = scale
        renderer.ResetCameraClippingRange()
        return dict(
            position=cam.position, focal_point=cam.focal_point, up=cam.up, scale=cam.parallel_scale
        )

    def _image_plane(self, img, box):
        """A plane textured with ``img`` covering the photo-pixel box (u0, v0, u1, v1).

        World coordinates of the panels are photo pixels: x = u, y = H - v.
        """
        u0, v0, u1, v1 = box
        plane = pv.Plane(
            center=(0.5 * (u0 + u1), self._img_h - 0.5 * (v0 + v1), 0),
            direction=(0, 0, 1),
            i_size=u1 - u0,
            j_size=v1 - v0,
            i_resolution=1,
            j_resolution=1,
        )
        tex = pv.Texture(np.ascontiguousarray(img))
        tex.interpolate = True
        return plane, tex

    def _depth_panel_image(self):
        u0, v0, u1, v1 = self.panel_box
        mask = getattr(self.rec, "mask", None)
        gray, span = depth_preview(
            self.rec.depth_mm[v0:v1, u0:u1],
            mask=None if mask is None else np.asarray(mask)[v0:v1, u0:u1],
        )
        label = f"depth map: lighter = closer (white = nearest, darkest = {span:.0f} mm behind)"
        return gray, label

    def _add_panels(self):
        p = self.plotter
        rec = self.rec
        self._img_h = rec.image.shape[0]
        self.panel_box = face_box(
            rec.image.shape, getattr(rec, "mask", None), getattr(rec, "landmarks", None)
        )
        self.panel_cams = {}
        self.panel_renderers = []
        photo = annotate_photo(
            rec.image,
            getattr(rec, "landmarks", None),
            getattr(rec, "mask", None),
            box=self.panel_box,
        )
        depth, depth_label = self._depth_panel_image()
        for row, img, label in (
            (0, photo, "photo: landmarks + face mask"),
            (1, depth, depth_label),
        ):
            p.subplot(row, 2)
            p.set_background(PANEL_BG)
            plane, tex = self._image_plane(img, self.panel_box)
            actor = p.add_mesh(
                plane, texture=tex, lighting=False, reset_camera=False, name=f"panel{row}"
            )
            text = self._add_label(
                label, "upper_left", PANEL_LABEL_PT, (1.0, 1.0, 1.0), f"panel_label{row}"
            )
            self.panel_cams[row] = self._panel_camera(p.renderer, self.panel_box)
            self.panel_renderers.append(p.renderer)
            if row == 1:
                self.depth_panel_actor, self.depth_panel_label = actor, text
        p.subplot(0, 0)

    def _refresh_depth_panel(self):
        if not self.has_panels:
            return
        gray, label = self._depth_panel_image()
        tex = pv.Texture(np.ascontiguousarray(gray))
        tex.interpolate = True
        self.depth_panel_actor.texture = tex
        self.depth_panel_label.SetInput(label)
        self._panels_dirty = True

    def _restore_panel_cameras(self, *_):
        """Keep the photo and depth panels fixed: undo any camera change made there."""
        if not self.has_panels:
            return
        for row, ren in zip(sorted(self.panel_cams), self.panel_renderers, strict=True):
            c = self.panel_cams[row]
            cam = ren.camera
            if (
                cam.position != c["position"]
                or cam.focal_point != c["focal_point"]
                or cam.up != c["up"]
                or cam.parallel_scale != c["scale"]
            ):
                self._panels_dirty = True
            cam.position, cam.focal_point, cam.up = c["position"], c["focal_point"], c["up"]
            cam.parallel_scale = c["scale"]
            ren.ResetCameraClippingRange()

    def _update_landmarks3d(self):
        act = self.actors.get("landmarks")
        lm = getattr(self.rec, "landmarks", None) if self.rec is not None else None
        affine = _pixel_to_mesh_affine(self.base, self.rec.image.shape) if lm is not None else None
        if affine is None:
            if act is not None:
                act.visibility = False
            self._landmarks_available = False
            return
        lm_mesh = getattr(self.rec, "landmarks_mesh", None)
        if lm_mesh is not None:
            pts = np.array(lm_mesh, np.float64)  # the reconstruction's own camera model
        else:
            lm = np.asarray(lm, np.float64)
            # landmark z shares depth_mm's offset (nose tip ~ 0), the mesh's origin
            pts = np.c_[np.c_[lm[:, :2], np.ones(len(lm))] @ affine, -lm[:, 2]]
        pts[:, 2] = pts[:, 2] * self.exaggeration + 0.5  # a hair in front of the surface
        pts = pts.astype(np.float32)
        self.landmarks3d.copy_from(pv.PolyData(pts))
        self._landmarks_available = True
        act.visibility = self.show_landmarks3d

    # ------------------------------------------------------------------ keys
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

    # ------------------------------------------------------------------ actions
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

    def toggle_landmarks(self):
        """Show or hide the landmarks on the 3D face."""
        if not getattr(self, "_landmarks_available", False):
            self._message("no landmarks: this is a bare mesh")
            return
        self.show_landmarks3d = not self.show_landmarks3d
        self.actors["landmarks"].visibility = self.show_landmarks3d
        self._message(f"landmarks {'on' if self.show_landmarks3d else 'off'}")

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

    def measure_at_cursor(self):
        """Pick the surface point under the mouse; two picks give a distance in mm."""
        iren = self.plotter.iren
        if iren is None:
            return None
        x, y = iren.interactor.GetEventPosition()
        return self.pick(x, y)

    def pick(self, x, y):
        """Pick the surface point at display position (x, y) for the measurement.

        Parameters
        ----------
        x, y : int
            Display coordinates (pixels, origin bottom-left).

        Returns
        -------
        float or None
            The distance in mm once two points are picked.
        """
        import vtk

        picker = vtk.vtkCellPicker()
        picker.SetTolerance(0.0005)
        # pick the surface whatever the mode (the point cloud and the wireframe are not
        # triangles): the shaded actor, visible for the pick only (a pick draws nothing)
        surface = self.actors["shaded"]
        shown = surface.GetVisibility()
        for name, act in self.actors.items():
            act.SetPickable(name in ("shaded", "textured", "depth"))
        if self.mode not in ("shaded", "textured", "depth"):
            surface.SetVisibility(True)
        try:
            hit = picker.Pick(x, y, 0, self.main_renderer) and picker.GetCellId() >= 0
        finally:
            surface.SetVisibility(shown)
        if not hit:
            self._message("measure: no surface under the cursor")
            return None
        p = np.array(picker.GetPickPosition(), float)
        p[2] /= self.exaggeration  # real mm
        if len(self.picks) >= 2:
            self.picks = []
        self.picks.append(p)
        self._draw_picks()
        if len(self.picks) == 2:
            d = self.distance_mm()
            self._message(f"distance: {d:.1f} mm")
            return d
        self._message("measure: first point picked; press m over a second point")
        return None

    def distance_mm(self):
        """Distance between the two picked points in mm (NaN if fewer than two)."""
        if len(self.picks) < 2:
            return float("nan")
        return float(np.linalg.norm(self.picks[1] - self.picks[0]))

    def _draw_picks(self):
        pts = np.array(self.picks, float).reshape(-1, 3)
        pts[:, 2] *= self.exaggeration
        self.pick_cloud.copy_from(pv.PolyData(pts.astype(np.float32)))
        self.actors["picks"].visibility = len(pts) > 0
        if len(pts) == 2:
            self.pick_line.copy_from(pv.Line(pts[0], pts[1]))
        self.actors["pick_line"].visibility = len(pts) == 2

    def _clear_measurement(self, render=False):
        self.picks = []
        if "picks" in getattr(self, "actors", {}):
            self.actors["picks"].visibility = False
            self.actors["pick_line"].visibility = False

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

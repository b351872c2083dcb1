"""The viewer's 3D scene: display copies of the mesh, the plotter, lights, actors, labels.

Part of :class:`~face3d_mesh.frontends._viewer_impl.FaceViewer` (a mixin).
"""

from __future__ import annotations

import numpy as np
import pyvista as pv

__all__ = ["SceneMixin", "SKIN", "BG_TOP", "BG_BOTTOM", "PANEL_BG", "PANEL_LABEL_PT"]

SKIN = (0.87, 0.80, 0.74)  # clay colour of the shaded surface
BG_TOP = (0.20, 0.22, 0.26)
BG_BOTTOM = (0.06, 0.06, 0.08)
PANEL_BG = (0.0, 0.0, 0.0)
SOLID_FLAT_TOL = 1e-4  # |normal z| of a solid's vertical walls (0) and back plate (-1)

# font sizes (points) of the caption, the status line and the panels' labels in a 1600×900
# window; they scale with the window's size
CAPTION_PT = 14
STATUS_PT = 11
PANEL_LABEL_PT = 12


class SceneMixin:
    """The mesh as displayed (exaggerated copies per mode) and the actors that draw it."""

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
        closed = "base_z_mm" in base.field_data or (base.n_cells and base.n_open_edges == 0)
        surf = self._solid_pieces(surf) if closed else self._smooth_normals(surf)
        if "UV" in surf.point_data:
            surf.point_data.active_texture_coordinates_name = "UV"
        z = np.asarray(surf.points[:, 2], np.float32) / np.float32(self.exaggeration)
        surf.point_data["depth (mm)"] = (z.max() - z) if len(z) else z
        surf.point_data["closeness"] = z
        return surf

    @staticmethod
    def _smooth_normals(surf):
        return surf.compute_normals(
            cell_normals=False,
            split_vertices=False,
            auto_orient_normals=False,
            consistent_normals=False,
        )

    @classmethod
    def _solid_pieces(cls, surf):
        """A closed solid for display: relief, side walls and back plate each with their
        own smooth normals (vertices duplicated where they meet), so that the shading does
        not smear across the sharp edges between them and streak the walls."""
        normals = surf.compute_normals(
            cell_normals=True, point_normals=False, split_vertices=False,
            auto_orient_normals=False, consistent_normals=False,
        ).cell_data["Normals"]  # fmt: skip
        nz = np.asarray(normals)[:, 2]
        kind = np.where(nz < -1 + SOLID_FLAT_TOL, 2, np.where(np.abs(nz) < SOLID_FLAT_TOL, 1, 0))
        faces = np.asarray(surf.regular_faces)
        pieces = []
        for k in range(3):
            if not np.any(kind == k):
                continue
            used, local = np.unique(faces[kind == k], return_inverse=True)
            piece = pv.PolyData.from_regular_faces(surf.points[used], local.reshape(-1, 3))
            for name in surf.point_data.keys():
                piece.point_data[name] = np.asarray(surf.point_data[name])[used]
            pieces.append(cls._smooth_normals(piece))
        return pieces[0] if len(pieces) == 1 else pieces[0].merge(pieces[1:], merge_points=False)

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
            # Linear filtering: a face is often ~100 photo pixels wide, and nearest-pixel
            # sampling showed each as a square on the turned head.
            self.texture.interpolate = True
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
        self._add_overlays()

    def _add_overlays(self):
        """Landmarks, picked points and the measured segment: hidden until asked for."""
        p = self.plotter
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
        self._add_texts()

    def _add_texts(self):
        """The caption (title and scale), the status line and the (hidden) key help."""
        p = self.plotter
        cap = self.title
        if self.rec is not None and getattr(self.rec, "scale", None) is not None:
            try:
                cap += "   |   scale " + self.rec.scale.describe()
            except Exception:  # a caption must never break the viewer
                pass
        self.caption = self._add_label(cap, "upper_left", CAPTION_PT, (1.0, 1.0, 1.0), "caption")
        self.status = self._add_label("", "lower_left", STATUS_PT, (0.85,) * 3, "status")
        self.help_actor = p.add_text(
            self.help_text(),
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

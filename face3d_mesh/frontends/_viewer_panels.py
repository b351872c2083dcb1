"""The viewer's side panels: the photo with landmarks and mask, the depth map (pyvista).

Part of :class:`~face3d_mesh.frontends._viewer_impl.FaceViewer` (a mixin). The panels are
static pictures: drawn once into their own renderers, again only when their content changes.
"""

from __future__ import annotations

import numpy as np
import pyvista as pv

from ..presentation import annotate_photo, depth_preview, face_box
from ._viewer_scene import PANEL_BG, PANEL_LABEL_PT

__all__ = ["PanelsMixin"]


class PanelsMixin:
    """Photo and depth-map panels beside the 3D view (reconstructions only)."""

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

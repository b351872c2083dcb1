"""The viewer's frame rate: per-vertex lighting, shader warm-up, label sizes (pyvista/vtk).

Part of :class:`~face3d_mesh.frontends._viewer_impl.FaceViewer` (a mixin: it uses the
viewer's ``plotter``, ``main_renderer``, ``actors`` and panel state).
"""

from __future__ import annotations

import math

from .viewer import MODES

__all__ = ["RenderingMixin"]


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


class RenderingMixin:
    """Renderer detection, lighting per vertex or per pixel, warm-up, label sizes."""

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

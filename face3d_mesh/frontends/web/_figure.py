"""The web app's 3D view: a Plotly figure of a face mesh, in one of four display modes.

The figure holds the (decimated) mesh in millimetres, origin at the nose tip, turned so
that Plotly's vertical axis is the face's: Plotly ``(x, y, z)`` = mesh ``(x, -z, y)`` (a
rotation, no mirror), so Plotly's turntable drag turns the head left and right. The camera
looks at the face from the front. Arrays are float32 / int32 numpy arrays, which Plotly
sends to the browser as compact binary (base64), not as lists of numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MODES", "face_figure", "figure_bytes"]

#: Display modes: key -> label shown in the page.
MODES = {
    "textured": "Photo colours",
    "shaded": "Shaded",
    "points": "Point cloud",
    "depth": "Depth colours (mm)",
}

BACKGROUND = "#1e222a"
_SKIN = "#d8cfc6"
_LIGHT = dict(x=400.0, y=-2000.0, z=800.0)  # Plotly's frame: right, in front, above
_DEPTH_SCALE = "Turbo"


def _arrays(mesh):
    points = np.asarray(mesh.points, dtype=np.float32)
    faces = np.asarray(mesh.regular_faces, dtype=np.int32)
    rgb = mesh.point_data.get("RGB")
    return points, faces, None if rgb is None else np.asarray(rgb, dtype=np.uint8)


def _mesh_trace(points, faces, behind, **style):
    import plotly.graph_objects as go

    return go.Mesh3d(
        x=points[:, 0],
        y=behind,
        z=points[:, 1],
        i=faces[:, 0],
        j=faces[:, 1],
        k=faces[:, 2],
        hoverinfo="skip",
        flatshading=False,
        lightposition=_LIGHT,
        # our own arrays of known types: skip plotly's per-element validation (0.1-0.2 s
        # for the ~13k vertex colours of a view)
        _validate=False,
        **style,
    )


def _trace(mode, points, faces, rgb, behind):
    import plotly.graph_objects as go

    depth = -points[:, 2]  # mm behind the nose tip (the real depth, not exaggerated)
    if mode == "textured" and rgb is not None:
        colours = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.tolist()]
        lighting = dict(ambient=0.72, diffuse=0.38, specular=0.04, roughness=0.9, fresnel=0.0)
        return _mesh_trace(points, faces, behind, vertexcolor=colours, lighting=lighting)
    if mode in ("textured", "shaded"):
        lighting = dict(ambient=0.32, diffuse=0.78, specular=0.22, roughness=0.55, fresnel=0.1)
        return _mesh_trace(points, faces, behind, color=_SKIN, lighting=lighting)
    if mode == "points":
        near, far = float(depth.min()), float(depth.max())
        closeness = (far - depth) / max(far - near, 1e-6)  # 1 = nearest
        return go.Scatter3d(
            x=points[:, 0],
            y=behind,
            z=points[:, 1],
            mode="markers",
            hoverinfo="skip",
            _validate=False,
            marker=dict(
                size=1.8,
                color=closeness.astype(np.float32),
                colorscale="gray",
                cmin=0.0,
                cmax=1.0,
                line=dict(width=0),
            ),
        )
    if mode == "depth":
        lighting = dict(ambient=0.6, diffuse=0.5, specular=0.05, roughness=0.9, fresnel=0.0)
        return _mesh_trace(
            points,
            faces,
            behind,
            intensity=depth.astype(np.float32),
            colorscale=_DEPTH_SCALE,
            reversescale=True,
            lighting=lighting,
            colorbar=dict(
                title=dict(text="depth, mm<br>behind the nose", font=dict(color="#e8e8e8")),
                tickfont=dict(color="#e8e8e8"),
                thickness=14,
                len=0.75,
            ),
        )
    raise ValueError(f"unknown display mode {mode!r}; use one of {', '.join(MODES)}")


def face_figure(mesh, *, mode: str = "textured", exaggeration: float = 1.0,
                height: int = 560, revision=None, meta=None):  # fmt: skip
    """A Plotly figure of a face mesh seen from the front.

    Parameters
    ----------
    mesh : pyvista.PolyData
        Triangle mesh in mm (x right, y up, z toward the camera, as the pipeline makes
        it); point data ``"RGB"`` (uint8) gives the photo's colours.
    mode : str, keyword-only
        One of :data:`MODES`: ``"textured"`` (photo colours, or shaded when there are
        none), ``"shaded"``, ``"points"`` (grey by depth, lighter = closer) or ``"depth"``
        (coloured by depth, with a colour bar in mm).
    exaggeration : float, keyword-only
        Factor applied to the depth for display only (1 = true shape); the colour bar
        keeps real millimetres.
    height : int, keyword-only
        Height of the view, pixels.
    revision : object, keyword-only
        Plotly ``uirevision``: while it stays the same, the camera the user has turned
        to is kept when the figure changes (new smoothing, other mode).
    meta : object, keyword-only
        Stored in the layout's ``meta`` (lets tests see which figure the page shows).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    if not exaggeration > 0:
        raise ValueError("exaggeration must be > 0")
    points, faces, rgb = _arrays(mesh)
    behind = (points[:, 2] * np.float32(-exaggeration)).astype(np.float32)
    fig = go.Figure(_trace(mode, points, faces, rgb, behind))
    hidden = dict(visible=False, showspikes=False)
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=0, b=0),
        paper_bgcolor=BACKGROUND,
        showlegend=False,
        uirevision=revision,
        meta=meta,
        scene=dict(
            xaxis=hidden,
            yaxis=hidden,
            zaxis=hidden,
            aspectmode="data",
            bgcolor=BACKGROUND,
            dragmode="turntable",
            camera=dict(
                up=dict(x=0, y=0, z=1), eye=dict(x=0.0, y=-2.3, z=0.0), center=dict(x=0, y=0, z=0)
            ),  # fmt: skip
            uirevision=revision,
        ),
    )
    return fig


def figure_bytes(fig) -> int:
    """Size in bytes of the figure as sent to the browser (its JSON)."""
    import plotly.io as pio

    return len(pio.to_json(fig, validate=False).encode())

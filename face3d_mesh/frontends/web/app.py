"""face3d_mesh web app (Streamlit): a photo in, a 3D face and printable files out.

Run it with ``face3d-mesh web`` (or ``python -m face3d_mesh web``), or host it with
``streamlit run <this file>``: the ``.streamlit/config.toml`` beside this file then gives
the same safe defaults (127.0.0.1, 25 MB uploads, XSRF protection, no usage statistics).

The page is a thin front-end: the work is done by :mod:`face3d_mesh.pipeline` (through
:class:`~face3d_mesh.frontends.web._session.WebSession`), the files by
:mod:`face3d_mesh.exporters`, the pictures by :mod:`face3d_mesh.presentation`.
"""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from face3d_mesh.config import ReconstructionConfig
from face3d_mesh.frontends.web._downloads import depth_downloads, mesh_downloads, safe_stem
from face3d_mesh.frontends.web._figure import MODES, face_figure
from face3d_mesh.frontends.web._session import UPLOAD_LIMIT_MB, Engine, WebSession
from face3d_mesh.presentation import (
    annotate_photo,
    depth_preview,
    describe_camera,
    face_box,
    fit_size,
)

PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "mpo"]
#: Triangles of the mesh drawn in the browser (the downloads keep the full mesh).
VIEW_TRIANGLES = 12_000
PICTURE_SIDE = 640
VIEW_HEIGHT = 520
DEPTH_CHOICES = {
    "auto": "Automatic (best available)",
    "hybrid": "Face model + landmarks (offline default)",
    "model": "Fitted face model",
    "landmarks": "Landmarks (fast, always available)",
    "midas": "MiDaS neural network",
    "fused": "MiDaS + landmarks (fused)",
}
DEFAULTS = ReconstructionConfig()


@st.cache_resource(show_spinner="Loading the face models (once per server)…")
def engine() -> Engine:
    """Models and locks shared by every visitor of this server process."""
    return Engine()


def _session() -> WebSession:
    if "face3d" not in st.session_state:
        st.session_state["face3d"] = WebSession()
    return st.session_state["face3d"]


def _choose(source: str) -> None:
    st.session_state["source"] = source


def _header() -> None:
    st.title("A 3D face from one photo")
    st.markdown(
        "Drop a photo of a face: you get its **depth map**, a **3D model** you can turn "
        "around, and files for a **3D printer** or a 3D program. Photos are processed on "
        "this server, in memory, and forgotten when you leave."
    )


def _inputs():
    """The photo chooser; returns (key, name, size, read) of the current photo, or None."""
    left, right = st.columns([3, 2], vertical_alignment="center")
    with left:
        st.file_uploader(
            "Upload a photo (JPEG, PNG, WebP, BMP or TIFF)",
            type=PHOTO_TYPES,
            key="upload",
            on_change=_choose,
            args=("upload",),
            max_upload_size=UPLOAD_LIMIT_MB,
            help=f"At most {UPLOAD_LIMIT_MB} MB. One face, looking at the camera, works best.",
        )
    with right:
        st.button("Try the sample photo", on_click=_choose, args=("sample",), type="primary",
                  icon=":material/face:")  # fmt: skip
        camera = st.toggle("Take a photo with my camera", key="use_camera")
    if camera:
        st.camera_input("Camera", key="camera", on_change=_choose, args=("camera",))
    source = st.session_state.get("source")
    upload, shot = st.session_state.get("upload"), st.session_state.get("camera")
    if source == "sample":
        return "sample", "astronaut.png (sample)", 0, None
    if source == "camera" and shot is not None and camera:
        return f"camera:{shot.file_id}", "camera photo", shot.size, shot.getvalue
    if upload is not None:
        return f"upload:{upload.file_id}", upload.name, upload.size, upload.getvalue
    return None


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#~|$"})


def _plain(text: str) -> str:
    """``text`` (which may hold a user's file name) shown literally by Streamlit's Markdown."""
    return text.translate(_MARKDOWN)


def _weights_line(cached: dict) -> str:
    have = [name for name, path in cached.items() if path is not None]
    if not have:
        return (
            "No neural depth weights on this server: the depth comes from the fitted face "
            "model and the landmarks (hybrid)."
        )
    return "Neural depth weights on this server: " + ", ".join(have) + "."


def _settings() -> dict:
    """The sidebar: reconstruction settings, with the command line's defaults."""
    from face3d_mesh.pipeline import cached_depth_weights

    sb = st.sidebar
    sb.header("Settings")
    cached = cached_depth_weights()
    depth = sb.selectbox("Depth from", list(DEPTH_CHOICES), format_func=DEPTH_CHOICES.get,
                         index=list(DEPTH_CHOICES).index(DEFAULTS.depth), key="depth")  # fmt: skip
    sb.caption(_weights_line(cached))
    smooth = sb.slider("Smoothing (mm)", 0.0, 5.0, float(DEFAULTS.smooth_sigma_mm), 0.25,
                       key="smooth", help="Extra Gaussian smoothing of the depth.")  # fmt: skip
    with sb.expander("Advanced"):
        models = list(cached)
        model = st.selectbox(
            "Neural depth model", models, index=models.index(DEFAULTS.depth_model),
            format_func=lambda m: f"{m} ({'downloaded' if cached[m] else 'not downloaded'})",
            key="depth_model",
        )  # fmt: skip
        space = st.slider("Bilateral filter: spatial sigma (mm)", 0.0, 8.0,
                          float(DEFAULTS.bilateral_sigma_space_mm), 0.5, key="bil_space",
                          help="0 switches the edge-preserving filter off.")  # fmt: skip
        rng = st.slider("Bilateral filter: depth sigma (mm)", 0.5, 8.0,
                        float(DEFAULTS.bilateral_sigma_depth_mm), 0.5, key="bil_depth")  # fmt: skip
        outlier = st.slider("Outlier threshold (robust std. dev.)", 0.0, 10.0,
                            float(DEFAULTS.outlier_threshold), 0.5, key="outlier",
                            help="0 keeps every depth value.")  # fmt: skip
        fill = st.checkbox("Fill holes", value=DEFAULTS.fill_holes, key="fill")
        margin = st.slider("Grow the face outline (mm)", 0.0, 10.0,
                           float(DEFAULTS.mask_margin_mm), 0.5, key="margin",
                           help="Outward margin of the face oval, on the face.")  # fmt: skip
        erode = st.slider("Then shrink it (photo pixels)", 0, 40,
                          int(DEFAULTS.mask_erode_px), 1, key="erode")  # fmt: skip
        triangles = st.select_slider(
            "Triangles in the downloaded mesh",
            [10_000, 20_000, 40_000, 80_000, 160_000, 320_000],
            value=DEFAULTS.target_triangles, key="triangles",
            format_func=lambda n: f"{n // 1000}k",
        )  # fmt: skip
    return {
        "depth": depth,
        "depth_model": model,
        "smooth_sigma_mm": float(smooth),
        "bilateral_sigma_space_mm": float(space),
        "bilateral_sigma_depth_mm": float(rng),
        "outlier_threshold": float(outlier),
        "fill_holes": bool(fill),
        "mask_margin_mm": float(margin),
        "mask_erode_px": float(erode),
        "target_triangles": int(triangles),
    }


def _face_picker(session: WebSession, found) -> int:
    """With several faces: the photo with the faces numbered, and a choice of one."""
    if len(found) < 2:
        return 0
    st.info(f"{len(found)} faces were found in this photo: choose the one to turn into 3D.")
    left, right = st.columns([3, 2], vertical_alignment="center")
    face = right.radio(
        "Which face?", list(range(len(found))), key=f"face-{session.photo_key}",
        format_func=lambda i: f"Face {i + 1}" + (" (largest)" if i == 0 else ""),
    )  # fmt: skip
    boxes = [f.box for f in found.faces]
    overview = session.cached(
        ("faces", session.photo_key, face),
        lambda: annotate_photo(found.image, max_side=900, faces=boxes, selected=face),
    )
    left.image(overview, output_format="JPEG", width="stretch",
               caption="The faces found, numbered; the chosen one framed in yellow.")  # fmt: skip
    return face


def _pictures(session: WebSession, rec) -> None:
    """The photo with landmarks and outline, and the depth map, cropped to the face."""
    box = face_box(rec.image.shape, rec.mask, rec.landmarks)
    u0, v0, u1, v1 = box
    photo = session.cached(
        ("photo", session.depth_version, rec.config.mask_erode_px),
        lambda: annotate_photo(rec.image, rec.landmarks, rec.mask, max_side=PICTURE_SIDE,
                               box=box),
    )  # fmt: skip

    def depth_picture():
        # Every k-th pixel first: the picture is shown at most PICTURE_SIDE pixels wide.
        k = max(1, (max(u1 - u0, v1 - v0) - 1) // (2 * PICTURE_SIDE) + 1)
        gray, span = depth_preview(rec.depth_mm[v0:v1:k, u0:u1:k], mask=rec.mask[v0:v1:k, u0:u1:k])
        return fit_size(gray, PICTURE_SIDE), span

    gray, span = session.cached(("depth", session.rec_version), depth_picture)
    left, right = st.columns(2)
    left.image(photo, caption="Landmarks (green) and face outline (yellow)",
               output_format="JPEG", width="stretch")  # fmt: skip
    right.image(gray, output_format="PNG", width="stretch",
                caption=f"Depth map: lighter = closer (darkest: {span:.0f} mm behind)")  # fmt: skip
    _buttons(depth_downloads(session.current, safe_stem(session.photo_name)), columns=2)


def _buttons(downloads, *, columns: int) -> None:
    cols = st.columns(columns)
    for index, item in enumerate(downloads):
        with cols[index % columns]:
            st.download_button(item.label, data=item.make, file_name=item.file_name,
                               mime=item.mime, help=item.help, on_click="ignore",
                               icon=":material/download:", width="stretch",
                               key=f"download-{item.label}")  # fmt: skip


def _view(session: WebSession, rec) -> None:
    """The interactive 3D face."""
    mode = st.segmented_control("Show the face as", list(MODES), format_func=MODES.get,
                                default="textured", required=True, key="mode")  # fmt: skip
    exaggeration = float(st.session_state.get("exaggeration", 1.0))
    version = session.rec_version
    preview = session.cached(("preview", version),
                             lambda: rec.preview_mesh(max_triangles=VIEW_TRIANGLES))  # fmt: skip
    view = f"{session.photo_key}-{version}-{mode}-{exaggeration}"
    fig = session.cached(
        ("figure", view),
        lambda: face_figure(preview, mode=mode, exaggeration=exaggeration, height=VIEW_HEIGHT,
                            revision=str(session.photo_key), meta={"view": view}),
    )  # fmt: skip
    st.plotly_chart(fig, key="face3d", config={"displaylogo": False, "scrollZoom": True},
                    theme=None)  # fmt: skip
    left, right = st.columns(2, vertical_alignment="center")
    left.caption("Drag to turn the face, scroll or pinch to zoom, right-drag to move it.")
    right.slider("Depth exaggeration (display only)", 1.0, 3.0, 1.0, 0.25, key="exaggeration")


def _mesh_downloads(session: WebSession, rec) -> None:
    st.subheader("Download the 3D model")
    a, b, _ = st.columns([1, 1, 2])
    width = a.number_input("Solid STL width (mm)", min_value=10.0, max_value=1000.0,
                           value=None, step=5.0, placeholder="real size", key="width_mm",
                           help="Empty: real size. The solid is scaled evenly.")  # fmt: skip
    base = b.number_input("Solid STL back plate (mm)", min_value=0.5, max_value=50.0,
                          value=3.0, step=0.5, key="base_mm")  # fmt: skip
    downloads = mesh_downloads(session.current, safe_stem(session.photo_name), width_mm=width,
                               base_mm=float(base))  # fmt: skip
    _buttons(downloads, columns=len(downloads))


_BACKEND_WORDS = {
    "landmarks": "landmarks (MediaPipe's 3D landmarks)",
    "model": "model (the fitted ICT face model)",
    "hybrid": "hybrid (the fitted face model blended with MediaPipe's 3D landmarks)",
}


def _backend_words(backend: str, model: str | None = None) -> str:
    """The depth backend that ran, in words for the facts table."""
    return _BACKEND_WORDS.get(backend, f"{backend} with {model or 'a neural network'}")


def _facts(session: WebSession, rec) -> None:
    """What the reconstruction knows, in a small table."""
    lo, hi = np.array(rec.mesh_arrays.bounds[0::2]), np.array(rec.mesh_arrays.bounds[1::2])
    w, h, d = hi - lo
    info = rec.depth_info
    depth = _backend_words(info.get("backend", ""), info.get("model"))
    if "residual_mm" in info:
        depth += f", fit residual {info['residual_mm']:.2f} mm"
    # The sample's faces were found when the server started, not for this visitor.
    found = {} if session.photo_key == "sample" else session.found.timings
    timings = {**found, **rec.timings}
    total = sum(timings.values())
    steps = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in timings.items())
    size_mb = session.photo_bytes / 1e6
    rows = [
        ("File", session.photo_name + (f" ({size_mb:.1f} MB)" if session.photo_bytes else "")),
        ("Photo", f"{rec.image.shape[1]} × {rec.image.shape[0]} pixels, "
                  f"{rec.faces_found} face{'s' if rec.faces_found > 1 else ''} found"),
        ("Face size", f"{w:.0f} mm wide × {h:.0f} mm high × {d:.0f} mm deep"),
        ("Scale", f"{rec.mm_per_px:.3g} mm per pixel, from {rec.scale.detail} "
                  f"(uncertainty ±{100 * rec.scale.uncertainty:.0f} %)"),
        ("Depth", depth),
        ("Camera", describe_camera(rec.camera)),
        ("Mesh", f"{rec.mesh_arrays.n_cells:,} triangles (the 3D view shows a lighter copy)"),
        ("Time", f"{total:.2f} s: {steps}"),
    ]  # fmt: skip
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    st.markdown(f'<table class="face3d-facts">{body}</table>', unsafe_allow_html=True)


_STYLE = """
<style>
.face3d-facts {border-collapse: collapse; font-size: 0.9rem; width: 100%;}
.face3d-facts th {text-align: left; padding: 0.25rem 1rem 0.25rem 0; white-space: nowrap;
  vertical-align: top; font-weight: 600;}
.face3d-facts td {padding: 0.25rem 0;}
.face3d-facts tr {border-bottom: 1px solid rgba(128, 128, 128, 0.2);}
.block-container {padding-top: 2.2rem; padding-bottom: 2rem;}
h1 {font-size: 2.1rem !important; padding-top: 0 !important;}
</style>
"""


def main() -> None:
    st.set_page_config(page_title="face3d_mesh: a 3D face from one photo", page_icon="🙂",
                       layout="wide", initial_sidebar_state="auto")  # fmt: skip
    st.set_option("client.showErrorDetails", "none")
    st.set_option("client.toolbarMode", "minimal")
    st.markdown(_STYLE, unsafe_allow_html=True)
    shared = engine()
    session = _session()
    _header()
    settings = _settings()
    chosen = _inputs()
    if chosen is None:
        session.clear()
        st.info("Upload a photo, take one with your camera, or try the sample photo. "
                "Best: one face looking at the camera, evenly lit.")  # fmt: skip
        return
    with st.spinner("Finding the face…"):
        session.set_photo(*chosen, engine=shared)
    rec = None
    if session.found is not None:
        face = _face_picker(session, session.found)
        with st.spinner("Making the 3D face…"):
            rec = session.reconstruction({**settings, "face": face}, engine=shared)
    if rec is None:
        problem = session.problem
        st.error(_plain(problem.message), icon=":material/error:")
        if problem.detail:
            st.caption("Details: " + _plain(problem.detail))
        return
    for note in (session.note, *rec.notes):
        if note:
            st.warning(_plain(note[:1].upper() + note[1:]))
    # The 3D view first: on a phone the columns stack, and the face is what people came for.
    left, right = st.columns([5, 4], gap="large")
    with left:
        _view(session, rec)
    with right:
        _pictures(session, rec)
        st.markdown("**About this reconstruction**")
        _facts(session, rec)
    _mesh_downloads(session, rec)


main()

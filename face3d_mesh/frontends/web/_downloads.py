"""The web app's downloads: file names and file contents, made in memory.

Meshes go through the exporter table of :mod:`face3d_mesh.exporters` (by extension), depth
maps through :func:`face3d_mesh.depth_io.encode_depth`, so a download holds the same bytes
the command line would write. Nothing here touches the disk, and no name a user supplied
is ever used as a path: :func:`safe_stem` turns it into a plain file-name stem.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

__all__ = ["Download", "depth_downloads", "mesh_downloads", "mesh_file_bytes", "safe_stem"]

_MAX_STEM = 60
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(filename: str | None, *, default: str = "face") -> str:
    """A harmless file-name stem made from a user's file name.

    Parameters
    ----------
    filename : str or None
        What the browser said the file was called (any text, possibly with folders).
    default : str, keyword-only
        Used when nothing usable is left.

    Returns
    -------
    str
        The last path component without its extension, accents removed, every run of
        characters other than ASCII letters, digits, ``.``, ``_`` and ``-`` replaced by one
        ``_``, no leading dots, at most 60 characters; e.g. ``"../Ma photo (1).JPG"`` →
        ``"Ma_photo_1"``.
    """
    name = str(filename or "").replace("\\", "/").split("/")[-1]
    stem = PurePath(name).stem if "." in name.strip(".") else name
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("_", stem).strip("._-")[:_MAX_STEM].strip("._-")
    return stem or default


@dataclass(frozen=True)
class Download:
    """One download button: its label, file name, MIME type and how to make its bytes."""

    label: str
    file_name: str
    mime: str
    make: object  # callable () -> bytes, run when the button is pressed
    help: str = ""


def mesh_file_bytes(mesh, file_name: str, *, texture=None) -> dict:
    """The files the exporter for ``file_name``'s extension writes, as ``{name: bytes}``.

    Parameters
    ----------
    mesh : pyvista.PolyData
        Triangle mesh in mm.
    file_name : str
        A plain file name (from :func:`safe_stem`), e.g. ``"face.obj"``; its extension,
        one of :func:`face3d_mesh.exporters.supported_extensions`, picks the exporter,
        and the files that come with it (an OBJ's MTL and texture) are named after it.
    texture : numpy.ndarray or None, keyword-only
        The H×W×3 uint8 photo the mesh's UVs refer to (textured formats).

    Returns
    -------
    dict of str to bytes
        The main file last. Nothing is written to disk.
    """
    from ...exporters import EXPORTERS, supported_extension

    path = PurePath(PurePath(file_name).name)
    files = EXPORTERS[supported_extension(path)](mesh, path, texture=texture)
    return {PurePath(p).name: data for p, data in files.items()}


def _zip(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def mesh_downloads(current, stem: str, *, width_mm=None, base_mm: float = 3.0) -> list[Download]:
    """The mesh downloads of a reconstruction, full resolution, in the order shown.

    Parameters
    ----------
    current : callable
        Returns the :class:`~face3d_mesh.pipeline.Reconstruction` to export; called when a
        button is pressed. (The buttons hold this callable, not the reconstruction, so that
        a page's old buttons never keep an old reconstruction's arrays alive.)
    stem : str
        File-name stem (from :func:`safe_stem`).
    width_mm : float or None, keyword-only
        Width the printable solid is scaled to (None: real size).
    base_mm : float, keyword-only
        Thickness of the solid's back plate behind the deepest point, mm.

    Returns
    -------
    list of Download
        STL, Solid STL, OBJ (zip), PLY, GLB.
    """

    def file(name, *, solid=False, texture=False):
        rec = current()
        mesh = rec.solid_arrays(base_mm=base_mm, width_mm=width_mm) if solid else rec.mesh_arrays
        return mesh_file_bytes(mesh, name, texture=rec.image if texture else None)

    def single(name, **options):
        return lambda: file(name, **options)[name]

    size = "real size" if width_mm is None else f"{width_mm:g} mm wide"
    solid = f"{stem}_solid.stl"
    return [
        Download("STL", f"{stem}.stl", "model/stl", single(f"{stem}.stl"),
                 "The face surface (open at the back), in millimetres."),
        Download("Solid STL", solid, "model/stl", single(solid, solid=True),
                 f"Ready to 3D print: closed, with a flat back {base_mm:g} mm thick; {size}."),
        Download("OBJ (zip)", f"{stem}_obj.zip", "application/zip",
                 lambda: _zip(file(f"{stem}.obj", texture=True)),
                 "OBJ + MTL + texture picture in one zip, for 3D programs (Blender...)."),
        Download("PLY", f"{stem}.ply", "application/octet-stream", single(f"{stem}.ply"),
                 "The surface with the photo's colours per point."),
        Download("GLB", f"{stem}.glb", "model/gltf-binary", single(f"{stem}.glb", texture=True),
                 "Textured glTF binary (true size; glTF's unit is the metre), for the web, "
                 "phones and AR viewers."),
    ]  # fmt: skip


def depth_downloads(current, stem: str) -> list[Download]:
    """The depth map downloads: the grayscale PNG (lighter = closer) and the .npy in mm.

    ``current`` returns the reconstruction when a button is pressed (as for
    :func:`mesh_downloads`).
    """
    from ...depth_io import encode_depth

    return [
        Download("Depth PNG", f"{stem}_depth.png", "image/png",
                 lambda: encode_depth(current().depth_mm, "depth.png"),
                 "Grayscale, lighter = closer, black background (as `face3d-mesh depth`)."),
        Download("Depth .npy (mm)", f"{stem}_depth.npy", "application/octet-stream",
                 lambda: encode_depth(current().depth_mm, "depth.npy"),
                 "NumPy array, float32 millimetres, larger = farther, NaN outside the face."),
    ]  # fmt: skip

"""Write meshes to STL, OBJ (+ MTL + texture PNG), PLY, GLB (glTF binary) and 3MF.

One writer per extension, in :data:`EXPORTERS`; each builds the bytes of every file it
produces in memory from the mesh's arrays (:class:`~face3d_mesh.mesharrays.MeshArrays`, or a
``pyvista.PolyData``); :func:`export_mesh` then writes them atomically: each to a temporary
file in the destination folder, then ``os.replace``.  On any failure the temporary files are
removed and files that existed before are left intact.

STL, OBJ and PLY are plain numpy serialisers; GLB and 3MF, container formats (glTF JSON +
binary buffer, a zip of XML parts), are written with trimesh.

Units: STL, OBJ, PLY and 3MF in millimetres (3MF says so: ``unit="millimeter"``); GLB in
metres, glTF's unit, so that Blender and web viewers show the true size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._atomic import check_writable, write_atomically
from .errors import OutputError, UsageError
from .mesharrays import MeshArrays, as_mesh_arrays
from .readers import load_mesh, mesh_texture  # noqa: F401 - the readers of these formats

if TYPE_CHECKING:  # pragma: no cover
    import pyvista as pv

__all__ = [
    "EXPORTERS",
    "encode_mesh",
    "export",
    "export_mesh",
    "load_mesh",
    "mesh_texture",
    "supported_extension",
    "supported_extensions",
]

#: Margin, in photo pixels, kept around the UV bounding box when cutting the texture.
TEXTURE_MARGIN_PX = 4

#: glTF's unit is the metre; our meshes are in millimetres.
GLB_METRES_PER_MM = 1e-3

_Files = dict  # Path -> bytes, in the order they should be put in place (main file last)


def _triangles(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) float32 and triangles (M, 3) int64 of a mesh; raise on bad input."""
    m = as_mesh_arrays(mesh)
    if m.n_points == 0 or m.n_cells == 0:
        raise UsageError("mesh is empty: nothing to export")
    points = np.asarray(m.points, dtype=np.float32)
    if not np.all(np.isfinite(points)):
        raise UsageError("mesh has non-finite point coordinates")
    return points, np.asarray(m.faces, dtype=np.int64)


def _face_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    p = points.astype(np.float64)
    fn = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    norm = np.linalg.norm(fn, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return (fn / norm).astype(np.float32)


def _checked_texture(m: MeshArrays, texture) -> np.ndarray:
    """``texture`` as an (H, W, 3) uint8 array matching the photo ``m`` was made from."""
    texture = np.asarray(texture)
    if texture.ndim != 3 or texture.shape[2] != 3 or texture.dtype != np.uint8:
        raise UsageError(
            f"texture must be an (H, W, 3) uint8 RGB image, got {texture.shape} {texture.dtype}"
        )
    if m.uv is None:
        raise UsageError("a texture was given but the mesh has no UV coordinates")
    if "image_size_px" in m.field_data:
        w, h = (int(x) for x in np.asarray(m.field_data["image_size_px"])[:2])
        if texture.shape[:2] != (h, w):
            raise UsageError(
                f"texture is {texture.shape[1]}x{texture.shape[0]} px but the mesh was "
                f"made from a {w}x{h} px photo"
            )
    return texture


def write_stl(mesh, path: Path, *, texture: np.ndarray | None = None) -> _Files:
    """Binary STL: 80-byte header, uint32 count, 50 bytes per triangle (``84 + 50 n``)."""
    points, faces = _triangles(mesh)
    rec = np.zeros(
        faces.shape[0],
        dtype=np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")]),
    )
    rec["n"] = _face_normals(points, faces)
    rec["v"] = points[faces]
    header = b"face3d_mesh binary STL, units: mm".ljust(80, b" ")
    data = header + np.uint32(faces.shape[0]).astype("<u4").tobytes() + rec.tobytes()
    return {path: data}


def write_ply(mesh, path: Path, *, texture: np.ndarray | None = None) -> _Files:
    """Binary little-endian PLY: float x y z, uchar red green blue (when point_data "RGB")."""
    points, faces = _triangles(mesh)
    rgb = as_mesh_arrays(mesh).rgb
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vert = np.empty(points.shape[0], dtype=np.dtype(fields))
    vert["x"], vert["y"], vert["z"] = points[:, 0], points[:, 1], points[:, 2]
    if rgb is not None:
        vert["red"], vert["green"], vert["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    face = np.empty(faces.shape[0], dtype=np.dtype([("n", "u1"), ("i", "<i4", (3,))]))
    face["n"] = 3
    face["i"] = faces
    lines = [
        "ply",
        "format binary_little_endian 1.0",
        "comment face3d_mesh, units: mm",
        f"element vertex {points.shape[0]}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if rgb is not None:
        lines += ["property uchar red", "property uchar green", "property uchar blue"]
    lines += [
        f"element face {faces.shape[0]}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    header = ("\n".join(lines) + "\n").encode("ascii")
    return {path: header + vert.tobytes() + face.tobytes()}


def write_obj(mesh, path: Path, *, texture: np.ndarray | None = None) -> _Files:
    """Wavefront OBJ.

    With ``texture`` (the photo, H x W x 3 uint8 RGB) and UVs on the mesh, also writes
    ``<stem>.mtl`` and ``<stem>_texture.png``: the photo cropped to the UVs' bounding box plus
    a margin, with UVs remapped into the crop; ``mtllib``/``map_Kd`` are relative names (the
    stem's white space made ``_`` in them: readers split ``mtllib`` at spaces; the file is
    UTF-8, for names beyond ASCII).
    Without a texture, vertex colours (point_data "RGB") are written as ``v x y z r g b``
    (values in 0..1, a common extension read by MeshLab, Blender and trimesh).
    """
    points, faces = _triangles(mesh)
    m = as_mesh_arrays(mesh)
    uv = None if m.uv is None else np.asarray(m.uv, np.float64)
    files: _Files = {}
    head = ["# face3d_mesh OBJ, units: mm"]
    if texture is not None:
        crop, uv = _cut_texture(_checked_texture(m, texture), uv)
        png_path, mtl_path = _obj_companions(path)
        files[png_path] = _png(crop)
        files[mtl_path] = (
            "# face3d_mesh material\n"
            "newmtl face\n"
            "Ka 1.000 1.000 1.000\n"
            "Kd 1.000 1.000 1.000\n"
            "Ks 0.000 0.000 0.000\n"
            "d 1.0\n"
            "illum 1\n"
            f"map_Kd {png_path.name}\n"
        ).encode()
        head += [f"mtllib {mtl_path.name}", "usemtl face"]

    parts = ["\n".join(head) + "\n"]
    rgb = m.rgb if texture is None else None
    if rgb is not None:
        vdata = np.hstack([points.astype(np.float64), rgb / 255.0])
        parts.append(_rows("v %.5f %.5f %.5f %.4f %.4f %.4f", vdata))
    else:
        parts.append(_rows("v %.5f %.5f %.5f", points.astype(np.float64)))
    f1 = faces + 1
    if uv is not None:
        parts.append(_rows("vt %.6f %.6f", uv))
        parts.append(_rows("f %d/%d %d/%d %d/%d", np.repeat(f1, 2, axis=1)))
    else:
        parts.append(_rows("f %d %d %d", f1))
    files[path] = "".join(parts).encode("utf-8")
    return files


def _obj_companions(path: Path) -> tuple[Path, Path]:
    """The texture PNG and MTL files written beside the OBJ ``path`` (the stem's white space
    made ``_``)."""
    stem = "_".join(path.stem.split()) or "face"
    return path.with_name(stem + "_texture.png"), path.with_name(stem + ".mtl")


def output_paths(path, *, textured: bool = True) -> list[Path]:
    """The files :func:`export_mesh` writes for ``path``, ``path`` last: an OBJ with a
    texture (``textured``) has its texture PNG and MTL beside it. :class:`OutputError` for
    an extension no exporter has."""
    path = Path(path)
    if supported_extension(path) == ".obj" and textured:
        return [*_obj_companions(path), path]
    return [path]


def _rows(fmt: str, arr: np.ndarray) -> str:
    """Format each row of a 2-D array with ``fmt`` (one line each)."""
    return ((fmt + "\n") * arr.shape[0]) % tuple(arr.ravel().tolist())


def _png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB image."""
    import cv2

    ok, enc = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise OutputError("could not encode the texture as PNG")
    return enc.tobytes()


def _cut_texture(photo: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``photo`` to the UV bounding box (+ margin); the crop and the UVs in it.

    UVs follow the surface convention ``s = (u + 0.5) / W``, ``t = 1 - (v + 0.5) / H``.
    """
    uv = np.asarray(uv, np.float64)
    h, w = photo.shape[:2]
    u = uv[:, 0] * w - 0.5
    v = (1.0 - uv[:, 1]) * h - 0.5
    x0 = int(np.clip(np.floor(u.min()) - TEXTURE_MARGIN_PX, 0, w - 1))
    x1 = int(np.clip(np.ceil(u.max()) + TEXTURE_MARGIN_PX + 1, x0 + 1, w))
    y0 = int(np.clip(np.floor(v.min()) - TEXTURE_MARGIN_PX, 0, h - 1))
    y1 = int(np.clip(np.ceil(v.max()) + TEXTURE_MARGIN_PX + 1, y0 + 1, h))
    crop = photo[y0:y1, x0:x1]
    cw, ch = x1 - x0, y1 - y0
    new_uv = np.empty_like(uv)
    new_uv[:, 0] = (u - x0 + 0.5) / cw
    new_uv[:, 1] = 1.0 - (v - y0 + 0.5) / ch
    return crop, new_uv


def _trimesh(mesh, *, scale: float = 1.0, texture: np.ndarray | None = None):
    """The mesh as a ``trimesh.Trimesh`` (vertex order kept), points multiplied by ``scale``.

    With ``texture`` the visual is the photo cropped to the UVs (a PBR base-colour texture,
    not metallic, fully rough); else the vertex colours, if any.  Vertex normals are the
    mesh's own ("Normals") when it has them, else trimesh's area-weighted ones.
    """
    import trimesh
    from trimesh.visual.material import PBRMaterial

    points, faces = _triangles(mesh)
    m = as_mesh_arrays(mesh)
    if texture is not None:
        from PIL import Image

        crop, uv = _cut_texture(_checked_texture(m, texture), m.uv)
        material = PBRMaterial(
            name="face",
            baseColorTexture=Image.fromarray(np.ascontiguousarray(crop)),
            metallicFactor=0.0,
            roughnessFactor=1.0,
        )
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    elif m.rgb is not None:
        visual = trimesh.visual.ColorVisuals(vertex_colors=m.rgb)
    else:
        visual = None
    tm = trimesh.Trimesh(
        vertices=points.astype(np.float64) * scale,
        faces=faces,
        vertex_normals=None if m.normals is None else np.asarray(m.normals, np.float64),
        visual=visual,
        process=False,
        validate=False,
    )
    tm.metadata["name"] = "face"
    return tm


def write_glb(mesh, path: Path, *, texture: np.ndarray | None = None) -> _Files:
    """glTF 2.0 binary (GLB), in metres (glTF's unit), y up, +z toward the viewer.

    One mesh with vertex normals; with ``texture`` (the photo) its face crop is embedded as
    the PNG base-colour texture of a non-metallic material and the UVs map into it; without
    it the vertex colours (point_data "RGB") are written as ``COLOR_0``, if any.  The
    mesh's frame (x right, y up, z toward the camera) is glTF's, so only the unit changes:
    coordinates are multiplied by :data:`GLB_METRES_PER_MM`.
    """
    from trimesh.exchange.gltf import export_glb

    tm = _trimesh(mesh, scale=GLB_METRES_PER_MM, texture=texture)
    data = export_glb(tm.scene(), include_normals=True, tree_postprocessor=_finish_gltf_tree)
    return {path: bytes(data)}


def _finish_gltf_tree(tree: dict) -> None:
    """Name the generator; mark vertex and index buffer views as such (glTF's ``target``)."""
    tree["asset"]["generator"] = "face3d_mesh (trimesh)"
    views, accessors = tree.get("bufferViews", []), tree.get("accessors", [])
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            uses = [(i, 34962) for i in prim.get("attributes", {}).values()]  # ARRAY_BUFFER
            if "indices" in prim:
                uses.append((prim["indices"], 34963))  # ELEMENT_ARRAY_BUFFER
            for index, target in uses:
                view = accessors[index].get("bufferView")
                if view is not None:
                    views[view]["target"] = target


def write_3mf(mesh, path: Path, *, texture: np.ndarray | None = None) -> _Files:
    """3D Manufacturing Format (a zip of XML parts), ``unit="millimeter"``: one object.

    What PrusaSlicer, Bambu Studio and Cura prefer to STL: indexed vertices (no cracks
    from rounding) and an explicit unit.  Geometry only (the texture is not written).
    """
    import hashlib
    import zipfile

    from trimesh.exchange.threemf import export_3MF

    tm = _trimesh(mesh)
    # trimesh packs the parts uncompressed; they are compressed once, after the UUID fix
    package = export_3MF(tm, compression=zipfile.ZIP_STORED)
    digest = hashlib.sha256(
        np.ascontiguousarray(tm.vertices).tobytes() + np.ascontiguousarray(tm.faces).tobytes()
    ).hexdigest()
    return {path: _deterministic_uuids(bytes(package), digest)}


# trimesh's UUIDs are attribute values (p:UUID="..."); the literal prefix keeps the search
# fast over the megabytes of vertex data
_UUID = re.compile(rb'UUID="[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"')


def _deterministic_uuids(package: bytes, digest: str) -> bytes:
    """The 3MF package with its random object/build UUIDs replaced by ones derived from
    ``digest`` (of the mesh), so that the same mesh always gives the same bytes (like the
    other formats); its parts deflated.
    """
    import io
    import uuid
    import zipfile

    with zipfile.ZipFile(io.BytesIO(package)) as src:
        parts = [(info, src.read(info)) for info in src.infolist()]
    count = iter(range(1 << 30))

    def stable(_match):
        value = uuid.uuid5(uuid.NAMESPACE_OID, f"{digest}/{next(count)}")
        return f'UUID="{value}"'.encode()

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info, data in parts:
            if info.filename.endswith(".model"):
                data = _UUID.sub(stable, data)
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data, compresslevel=5)
    return out.getvalue()


Exporter = Callable[..., _Files]

#: Exporters keyed by lower-case file extension.  Each takes ``(mesh, path, *, texture)`` and
#: returns ``{path: bytes}`` for every file it makes (written by :func:`export_mesh`).
EXPORTERS: dict[str, Exporter] = {
    ".stl": write_stl,
    ".obj": write_obj,
    ".ply": write_ply,
    ".glb": write_glb,
    ".3mf": write_3mf,
}

#: Formats that carry the photo as a texture (given the ``texture`` argument).
TEXTURED_FORMATS = (".obj", ".glb")


def supported_extensions() -> list[str]:
    """File extensions :func:`export_mesh` can write, e.g. ``[".obj", ".ply", ".stl"]``."""
    return sorted(EXPORTERS)


def supported_extension(path) -> str:
    """The lower-case extension of ``path``; :class:`OutputError` if no exporter has it."""
    ext = Path(path).suffix.lower()
    if ext not in EXPORTERS:
        raise OutputError(
            f"unsupported output extension {Path(path).suffix or '(none)'!r} for {path}; "
            f"supported: {', '.join(supported_extensions())}"
        )
    return ext


def export(
    obj,
    path: str | os.PathLike,
    *,
    solid: bool = False,
    base_mm: float = 3.0,
    width_mm: float | None = None,
) -> list[Path]:
    """Write a reconstruction or a mesh to ``path`` (format from the extension).

    Parameters
    ----------
    obj : Reconstruction, pyvista.PolyData or MeshArrays
        What to write. A reconstruction's OBJ and GLB get its photo as texture.
    path : str or path-like
        ``.stl``, ``.obj``, ``.ply``, ``.glb`` or ``.3mf`` (see :func:`export_mesh`).
    solid : bool, keyword-only
        Write a watertight printable solid (see :func:`face3d_mesh.make_solid`).
    base_mm : float, keyword-only
        Back plate thickness of the solid, mm.
    width_mm : float or None, keyword-only
        Scale the solid uniformly to this x extent, mm.

    Returns
    -------
    list of pathlib.Path
        The files written, ``path`` last.
    """
    if hasattr(obj, "save") and hasattr(obj, "mesh"):
        return obj.save(path, solid=solid, base_mm=base_mm, width_mm=width_mm)
    if solid:
        from .solid import make_solid

        if isinstance(obj, MeshArrays):
            obj = obj.to_polydata()
        obj = make_solid(obj, base_mm=base_mm, width_mm=width_mm)
    elif width_mm is not None:
        raise UsageError("width_mm applies to solids only (use solid=True)")
    return export_mesh(obj, path)


def export_mesh(
    mesh: pv.PolyData | MeshArrays,
    path: str | os.PathLike,
    *,
    texture: np.ndarray | None = None,
) -> list[Path]:
    """Write ``mesh`` to ``path``; the format follows the extension (see :data:`EXPORTERS`).

    Parameters
    ----------
    mesh : pyvista.PolyData or MeshArrays
        Triangle mesh, coordinates in mm.  Optional point data: ``"RGB"`` (N x 3 uint8,
        written to PLY, and to OBJ and GLB without texture), texture coordinates ``"UV"``
        (OBJ, GLB), ``"Normals"`` (GLB).
    path : str or path-like
        Output file, format by extension (case-insensitive):

        ======  ===========================================================================
        .stl    binary STL, mm
        .obj    Wavefront OBJ, mm (+ ``.mtl`` and ``_texture.png`` when ``texture`` is given)
        .ply    binary PLY with vertex colours, mm
        .glb    glTF 2.0 binary, **metres** (glTF's unit), normals, the photo as texture
        .3mf    3D Manufacturing Format, ``unit="millimeter"`` (for slicers)
        ======  ===========================================================================
    texture : ndarray, shape (H, W, 3), uint8, optional, keyword-only
        The RGB photo the mesh's UVs refer to; used by OBJ and GLB (ignored by the others).

    Returns
    -------
    list of pathlib.Path
        The files written, the requested ``path`` last.

    Raises
    ------
    OutputError
        Unknown extension, missing or unwritable folder, or any write failure.  Nothing
        partial is left behind and existing files keep their content.
    UsageError
        ``mesh`` or ``texture`` is not valid.
    """
    path = Path(path)
    supported_extension(path)
    check_writable(path)
    files = encode_mesh(mesh, path, texture=texture)
    for p in files:
        check_writable(p)
    write_atomically(files)
    return list(files)


def encode_mesh(
    mesh, path: str | os.PathLike, *, texture: np.ndarray | None = None
) -> dict[Path, bytes]:
    """The files :func:`export_mesh` would write, as bytes in memory; nothing is written.

    Parameters
    ----------
    mesh, texture
        As for :func:`export_mesh`.
    path : str or path-like
        The main file's name; its extension picks the format, and the names of an OBJ's
        ``.mtl`` and texture follow from it. Its folder need not exist.

    Returns
    -------
    dict of pathlib.Path to bytes
        Every file's contents, in the order to put them in place (``path`` last).
    """
    path = Path(path)
    exporter = EXPORTERS[supported_extension(path)]
    return exporter(as_mesh_arrays(mesh), path, texture=texture)  # the arrays, once

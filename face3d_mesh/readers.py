"""Read mesh files back as they were written: geometry, UVs, texture, vertex colours.

:func:`load_mesh` returns a ``pyvista.PolyData`` in millimetres.  What the file carries
beyond the triangles comes with it:

- **texture coordinates**: the mesh's active texture coordinates (OBJ, GLB);
- **the texture image**: in the mesh's field data, ``"texture"`` ((H·W, 3) uint8, rows top
  first) and ``"texture_size_px"`` ((W, H)); :func:`mesh_texture` returns it as an
  (H, W, 3) array, or None.  For an OBJ it is the image its MTL file names (``map_Kd``),
  for a GLB the base-colour texture embedded in it;
- **vertex colours**: point data ``"RGB"`` (N × 3 uint8; PLY, GLB ``COLOR_0``, OBJ
  ``v x y z r g b``);
- **vertex normals**: point data ``"Normals"`` when the file has them (GLB).

STL, OBJ and PLY are read by VTK, GLB and 3MF by trimesh.  A GLB is in metres (glTF's
unit) and is converted to millimetres; a 3MF is converted from the unit it declares.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .errors import ImageError

__all__ = ["MESH_EXTENSIONS", "load_mesh", "mesh_texture"]

#: The extensions :func:`load_mesh` reads (every format the exporters write).
MESH_EXTENSIONS = (".stl", ".obj", ".ply", ".glb", ".3mf")

_VTK_READ = (".stl", ".obj", ".ply")


def load_mesh(path: str | os.PathLike):
    """Read a mesh file (.stl, .obj, .ply, .glb, .3mf) as a ``pyvista.PolyData``, mm.

    Parameters
    ----------
    path : str or path-like
        The file.  An OBJ's MTL file and texture image are looked for beside it (the
        names it gives, relative to its folder); when they are missing the mesh loads
        without a texture.

    Returns
    -------
    pyvista.PolyData
        The triangles, points in mm; UVs, texture, vertex colours and normals when the
        file has them (see the module's documentation; :func:`mesh_texture` gets the
        texture back as an image).

    Raises
    ------
    ImageError
        Missing file, unsupported extension or unreadable content.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext not in MESH_EXTENSIONS:
        raise ImageError(f"{path}: not a mesh file (use {', '.join(MESH_EXTENSIONS)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # readers warn before failing; we raise instead
            mesh = _read_vtk(path) if ext in _VTK_READ else _read_trimesh(path)
    except ImageError:
        raise
    except Exception as exc:  # VTK and trimesh raise many kinds of errors
        raise ImageError(f"{path}: cannot read mesh ({type(exc).__name__})") from None
    if mesh is None or mesh.n_cells == 0:
        raise ImageError(f"{path}: the file holds no triangles")
    return mesh


def mesh_texture(mesh) -> np.ndarray | None:
    """The texture image a mesh read by :func:`load_mesh` carries, or None.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8, or None
        RGB, rows top first, as the mesh's texture coordinates expect it.
    """
    fd = mesh.field_data
    if "texture" not in fd or "texture_size_px" not in fd:
        return None
    w, h = (int(x) for x in np.asarray(fd["texture_size_px"])[:2])
    return np.asarray(fd["texture"], dtype=np.uint8).reshape(h, w, 3)


def _attach_texture(mesh, image) -> None:
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    mesh.field_data["texture"] = rgb.reshape(-1, 3)
    mesh.field_data["texture_size_px"] = np.array([rgb.shape[1], rgb.shape[0]], np.int64)


def _read_vtk(path: Path):
    import pyvista as pv
    from vtkmodules.vtkCommonCore import vtkObject

    # VTK's readers print their failures (a dozen lines for a truncated STL or PLY) before
    # handing back an empty mesh; the caller says it in one line instead.
    shown = vtkObject.GetGlobalWarningDisplay()
    vtkObject.GlobalWarningDisplayOff()
    try:
        mesh = pv.read(path)
    finally:
        vtkObject.SetGlobalWarningDisplay(shown)
    if not isinstance(mesh, pv.PolyData):
        mesh = mesh.extract_surface()
    if path.suffix.lower() == ".obj" and mesh.point_data.active_texture_coordinates is not None:
        image = _obj_texture(path)
        if image is not None:
            _attach_texture(mesh, image)
    for name in ("MaterialNames", "MaterialLibraries"):  # VTK's notes; the texture says it
        if name in mesh.field_data:
            mesh.field_data.remove(name)
    return mesh


def _obj_texture(path: Path):
    """The image named by ``map_Kd`` in the OBJ's MTL file (one textured material), or None."""
    from PIL import Image

    libs = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("mtllib"):
                libs += [path.parent / name for name in line.split()[1:]]
            elif line.startswith(("v ", "f ")) and libs:
                break
    maps = []
    for lib in libs:
        if lib.is_file():
            for line in lib.read_text(encoding="utf-8", errors="replace").splitlines():
                words = line.split()
                if words[:1] == ["map_Kd"] and len(words) > 1:
                    maps.append(path.parent / words[-1])  # options (-s, -o...) come first
    if len(set(maps)) != 1 or not maps[0].is_file():
        return None
    try:
        with Image.open(maps[0]) as image:
            image.load()
            return image
    except (OSError, ValueError):
        return None


def _read_trimesh(path: Path):
    """GLB and 3MF through trimesh: one mesh (a scene's meshes joined, transforms applied)."""
    import pyvista as pv
    import trimesh

    ext = path.suffix.lower()
    tm = trimesh.load(path, force="mesh", process=False)
    if not isinstance(tm, trimesh.Trimesh) or len(tm.faces) == 0:
        return None
    scale = 1000.0  # glTF's unit is the metre
    if ext != ".glb":  # a 3MF says its unit (millimetre when it does not)
        try:
            scale = trimesh.units.unit_conversion(tm.units or "millimeters", "millimeters")
        except ValueError:
            scale = 1.0
    mesh = pv.PolyData.from_regular_faces(
        np.asarray(tm.vertices, np.float64) * scale, np.asarray(tm.faces, np.int64)
    )
    if ext == ".glb":  # the file's normals (or trimesh's, if it has none)
        mesh.point_data["Normals"] = np.asarray(tm.vertex_normals, np.float32)
    visual = tm.visual
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.uv is not None:
        mesh.point_data["UV"] = np.asarray(visual.uv, np.float32)
        mesh.point_data.active_texture_coordinates_name = "UV"
        material = visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        if image is not None:
            _attach_texture(mesh, image)
    elif isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex":
        mesh.point_data["RGB"] = np.asarray(visual.vertex_colors[:, :3], np.uint8)
    mesh.point_data.active_scalars_name = None
    return mesh

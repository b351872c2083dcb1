"""face3d_mesh: one photo of a face to a real 3D mesh.

>>> import face3d_mesh
>>> rec = face3d_mesh.reconstruct("photo.jpg")       # doctest: +SKIP
>>> rec.save("face.stl", solid=True)                 # doctest: +SKIP

Importing the package is light: MediaPipe, torch and VTK are imported when first used.

Coordinates and units (documented once, here and in the README):

- Pixels: ``(u, v) = (column, row)`` of the EXIF-oriented photo, centre of the top-left
  pixel at (0, 0).
- ``depth_mm``: millimetres along the optical axis, larger = farther, nose tip at 0,
  NaN outside the face mask.
- Meshes: millimetres; x right, y up, z toward the camera; origin at the nose tip.
  A photo pixel maps to a vertex by the photo's pinhole camera (``rec.camera``,
  ``rec.pixel_to_mesh``; its focal length known or guessed), the scale
  ``rec.scale.mm_per_px`` holding at the outer eye corners.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it; loaded on first access (PEP 562).
_LAZY = {
    "reconstruct": "pipeline",
    "Reconstruction": "pipeline",
    "find_faces": "pipeline",
    "face_scale": "pipeline",
    "FoundFaces": "pipeline",
    "ReconstructionConfig": "config",
    "load_image": "image",
    "LandmarkDetector": "landmarks",
    "FaceLandmarks": "landmarks",
    "detect_faces": "landmarks",
    "ScaleEstimate": "scale",
    "ScaleCue": "scale",
    "estimate_scale": "scale",
    "combine_cues": "scale",
    "face_mask": "mask",
    "filter_depth": "filtering",
    "depth_to_mesh": "surface",
    "make_solid": "solid",
    "solid_arrays": "solid",
    "surface_arrays": "surface",
    "export_mesh": "exporters",
    "MeshArrays": "mesharrays",
    "export": "exporters",
    "load_mesh": "readers",
    "mesh_texture": "readers",
    "save_depth": "depth_io",
    "depth_to_gray": "presentation",
    "show": "frontends.viewer",
    "Face3DError": "errors",
    "ImageError": "errors",
    "NoFaceError": "errors",
    "ModelError": "errors",
    "OutputError": "errors",
    "UsageError": "errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'face3d_mesh' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__

"""face3d_mesh: one photo of a face to a 3D mesh."""
__version__ = "0.1.0"

# the viewer pulls in pyvista/vtk: expose it lazily so that `import face3d_mesh` stays light
_LAZY = {"show": "viewer", "load_mesh": "viewer"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

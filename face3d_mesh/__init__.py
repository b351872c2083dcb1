"""face3d_mesh: one photo of a face to a 3D mesh."""

__version__ = "0.1.0"

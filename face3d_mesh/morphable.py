"""The morphable face model: the face part of ICT-FaceKit's light model, with MediaPipe's
478 landmarks registered on its surface.

Package data (``face3d_mesh/data/ict_face_model.npz``, built by
``scripts/build_face_model.py``; ICT-FaceKit, MIT licence, ``ICT-FaceKit-LICENSE.txt``;
landmark order from MediaPipe's canonical face mesh, Apache-2.0, ``MediaPipe-LICENSE.txt``).

A face is ``neutral + Σ_k identity[k] · mode_k + Σ_j expression[j] · blendshape_j``:
100 identity modes (principal components of Light Stage scans; coefficients ~ N(0, 1)) and
53 expression blendshapes (ARKit names; weights in [0, 1]).

**Model frame**: millimetres, x toward the subject's left, y up, z out of the face (toward a
camera that sees the face frontally); the origin is ICT's (about the head's centre, behind
the nose by ~130 mm). Vertices: the face part of the ICT mesh around the MediaPipe face
oval (no ears, scalp or neck) plus one vertex at the centre of each eye opening and of the
mouth, closing them (fans); ``source_vertex`` maps each vertex to the original ICT mesh
(``-1`` for the three centres).

Landmark ``i`` is the surface point ``Σ_k bary[i, k] · vertex[triangles[tri[i], k]]``; the
10 iris landmarks (468-477) sit on the eye-opening fans (the light model has no eyeballs)
and are not used by the fit.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

__all__ = ["FaceModel", "face_model", "DATA_FILE"]

#: The package's face-model data file.
DATA_FILE = Path(__file__).with_name("data") / "ict_face_model.npz"


class FaceModel:
    """The ICT face model's face part, in mm, with the landmark registration.

    Use :func:`face_model` for the shared, cached instance.

    Attributes
    ----------
    neutral : numpy.ndarray
        (V, 3) float32 neutral face, mm, model frame.
    triangles : numpy.ndarray
        (T, 3) int32 vertex indices (ICT's quads split, plus the fans closing the eyes and
        the mouth).
    uv : numpy.ndarray
        (V, 2) float32 ICT texture coordinates of each vertex.
    expression_names : tuple of str
        The 53 blendshape names, in coefficient order.
    n_identity, n_expression : int
    landmark_triangle : numpy.ndarray
        (478,) int32 triangle of each MediaPipe landmark.
    landmark_bary : numpy.ndarray
        (478, 3) float32 barycentric coordinates in that triangle.
    source_vertex : numpy.ndarray
        (V,) int32 index in the full ICT mesh (-1: an added centre vertex).
    ict_lm68 : numpy.ndarray
        (68,) int32 vertex of each of ICT's own 68-point (Multi-PIE) landmarks (-1 where
        it lies outside the kept part), an independent anatomical reference.
    """

    def __init__(self, path: Path | str = DATA_FILE):
        with np.load(path) as data:
            self.neutral = data["neutral"]
            self.triangles = data["triangles"]
            self.uv = data["uv"]
            self.source_vertex = data["source_vertex"]
            self.expression_names = tuple(str(n) for n in data["expr_names"])
            self.n_identity = int(data["n_identity"])
            self._modes_q = data["modes"]
            self._modes_scale = data["modes_scale"]
            self.landmark_triangle = data["lm_triangle"]
            self.landmark_bary = data["lm_bary"]
            self.ict_lm68 = data["ict_lm68"]
        self.n_expression = len(self.expression_names)

    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    @cached_property
    def modes(self) -> np.ndarray:
        """(K, V, 3) float32: identity modes then expression blendshapes, mm per unit."""
        return self._modes_q.astype(np.float32) * self._modes_scale[:, None, None]

    def _at(self, values: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
        corners = values[..., self.triangles[tri], :]  # (..., N, 3, 3)
        return np.einsum("...nkc,nk->...nc", corners, bary.astype(np.float64))

    def _at_landmarks(self, values: np.ndarray) -> np.ndarray:
        return self._at(values, self.landmark_triangle, self.landmark_bary)

    @cached_property
    def landmark_mean(self) -> np.ndarray:
        """(478, 3) float64: the neutral face's landmark positions, mm, model frame."""
        return self._at_landmarks(self.neutral.astype(np.float64))

    @cached_property
    def landmark_modes(self) -> np.ndarray:
        """(K, 478, 3) float64: each mode's displacement of the landmarks, mm per unit."""
        return self._at_landmarks(self.modes.astype(np.float64))

    def landmarks(self, identity=None, expression=None) -> np.ndarray:
        """(478, 3) float64 landmark positions of a face, mm, model frame."""
        coef = self._coefficients(identity, expression)
        return self.landmark_mean + np.tensordot(coef, self.landmark_modes, axes=1)

    def vertices(self, identity=None, expression=None) -> np.ndarray:
        """(V, 3) float32 vertices of a face, mm, model frame.

        Parameters
        ----------
        identity : array_like, optional
            Up to ``n_identity`` coefficients (missing ones are 0).
        expression : array_like, optional
            Up to ``n_expression`` weights.
        """
        coef = self._coefficients(identity, expression).astype(np.float32)
        used = np.flatnonzero(coef)
        out = self.neutral.copy()
        if used.size:
            out += np.tensordot(coef[used], self.modes[used], axes=1)
        return out

    def _coefficients(self, identity, expression) -> np.ndarray:
        coef = np.zeros(self.n_identity + self.n_expression)
        if identity is not None:
            ident = np.asarray(identity, np.float64).ravel()
            coef[: min(len(ident), self.n_identity)] = ident[: self.n_identity]
        if expression is not None:
            expr = np.asarray(expression, np.float64).ravel()
            coef[self.n_identity : self.n_identity + min(len(expr), self.n_expression)] = expr[
                : self.n_expression
            ]
        return coef

    def polydata(self, vertices: np.ndarray):
        """A ``pyvista.PolyData`` of these vertices (V, 3) with the model's triangles and
        its texture coordinates (``active_texture_coordinates``, ICT's UV layout)."""
        import pyvista as pv

        faces = np.column_stack([np.full(len(self.triangles), 3), self.triangles]).ravel()
        mesh = pv.PolyData(np.asarray(vertices, np.float32), faces)
        mesh.active_texture_coordinates = self.uv.copy()
        return mesh


@lru_cache(maxsize=1)
def face_model() -> FaceModel:
    """The package's face model, loaded once per process."""
    return FaceModel()

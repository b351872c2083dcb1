"""Fit the morphable face model (:mod:`face3d_mesh.morphable`) to MediaPipe's landmarks.

The fit finds the head's pose, the first :data:`IDENTITY_MODES` identity coefficients
(prior N(0, 1) each; the later modes stay 0) and the expression weights (in [0, 1], a weak
pull toward 0) that best explain

- the 468 face-mesh landmarks' image positions (pixels; noise :data:`LANDMARK_SIGMA_MM`
  on the face), the face-oval landmarks as **sliding** points: only their offset across
  the oval counts, since where along the jaw line a detector puts them is loosely defined;
- and, weighted less (:data:`DEPTH_SIGMA_MM`), MediaPipe's relative depths (freed of the
  curvature its ray-length depth adds, see :mod:`face3d_mesh.depth._landmark_depth`),
  which carry most of what is known about the head's pitch.

Cameras: **perspective** (a pinhole with known focal length and principal point) or
**weak perspective** (orthographic projection and one scale, when no focal length is
given; the pipeline always gives one, the photo's or a guess).
The fit alternates a linear least-squares solve of the coefficients given the pose (bounds
on the expression weights by an active-set method) with a few Gauss-Newton steps of the
pose given the shape: deterministic, ~20-25 ms on a 2-core CPU.

Frames and units of :class:`ModelFit`:

- **model frame**: mm, x toward the subject's left, y up, z out of the face (see
  :mod:`face3d_mesh.morphable`);
- **camera frame**: mm, OpenCV axes: x right, y down (image rows), z forward along the
  optical axis, origin at the camera centre. ``X_cam = rotation @ X_model + translation``.
  With a weak-perspective camera the distance is unknown: ``translation[2]`` is then
  ``focal / scale`` for the nominal focal length given (or 0 without one);
- **pixels**: ``(u, v) = (column, row)`` of the image the landmarks came from, centre of
  the top-left pixel at (0, 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._model_solver import (
    CONTOUR_SIGMA_MM,
    DEPTH_SIGMA_MM,
    IDENTITY_MODES,
    LANDMARK_SIGMA_MM,
    FitProblem,
)
from ._threads import single_threaded_blas

__all__ = [
    "ModelFit",
    "fit_face_model",
    "LANDMARK_SIGMA_MM",
    "DEPTH_SIGMA_MM",
    "CONTOUR_SIGMA_MM",
    "IDENTITY_MODES",
]

_N_MESH = 468


@dataclass(frozen=True)
class ModelFit:
    """The morphable model fitted to one face's landmarks.

    Attributes
    ----------
    identity : numpy.ndarray
        (100,) float64 identity coefficients (prior N(0, 1)); those past the fit's
        ``identity_modes`` (default :data:`IDENTITY_MODES`) are 0.
    expression : numpy.ndarray
        (53,) float64 expression weights in [0, 1] (names in ``expression_names``).
    expression_names : tuple of str
    camera : str
        ``"perspective"`` or ``"weak_perspective"``.
    rotation : numpy.ndarray
        (3, 3) float64, model frame to camera frame.
    translation : numpy.ndarray
        (3,) float64 mm, the model origin in the camera frame (see the module docstring
        for weak perspective).
    focal_px : float or None
        Focal length used (perspective), pixels.
    principal_point : tuple of float or None
        (cx, cy) pixels (perspective).
    scale_px_per_mm : float
        Pixels per mm at the face: the weak-perspective scale, or focal / depth of the
        nose tip for a perspective camera.
    offset_px : numpy.ndarray
        (2,) image position of the model origin (weak perspective: ``u = scale·x + offset``);
        for a perspective camera, the projection of the model origin.
    landmarks_model : numpy.ndarray
        (478, 3) float64 the fitted face's landmark positions, mm, model frame.
    landmarks_px : numpy.ndarray
        (478, 2) float64 their projections into the image.
    residuals_px : numpy.ndarray
        (478,) float64 image distance between each detected landmark and the fitted one
        (the irises are not fitted; their residuals are reported all the same).
    face_width_mm : float
        Outer-eye-corner distance (exocanthion to exocanthion, landmarks 33 and 263) of
        the fitted face in 3D, mm: the face size the identity implies.
    face_width_sd_mm : float
        Its standard uncertainty, mm (the fit's linearised posterior, scale included).
    info : dict
        Solver details: ``identity_modes`` (how many identity modes were fitted),
        ``depth_scale`` and ``depth_nuisance_px`` (MediaPipe's depth scale relative to the
        model's, and the offset and tilt fitted away from its depths).
    """

    identity: np.ndarray
    expression: np.ndarray
    expression_names: tuple
    camera: str
    rotation: np.ndarray
    translation: np.ndarray
    focal_px: float | None
    principal_point: tuple | None
    scale_px_per_mm: float
    offset_px: np.ndarray
    landmarks_model: np.ndarray
    landmarks_px: np.ndarray
    residuals_px: np.ndarray
    face_width_mm: float
    face_width_sd_mm: float
    info: dict = field(default_factory=dict, compare=False)

    @property
    def yaw_pitch_roll_deg(self) -> tuple[float, float, float]:
        """Head angles in degrees from the rotation (yaw: nose toward the image's right
        positive; pitch: chin up positive; roll: the head's top toward the image's right
        positive), for ``rotation = Rz(roll) Rx(-pitch) Ry(-yaw) diag(1, -1, -1)``."""
        return _angles(self.rotation)

    @property
    def mm_per_px(self) -> float:
        """Millimetres per image pixel at the nose tip that the fitted face's size implies:
        a metric-scale cue for :mod:`face3d_mesh.scale` (it is ``1 / scale_px_per_mm``)."""
        return 1.0 / self.scale_px_per_mm

    @property
    def eye_px_per_mm(self) -> float:
        """Image pixels per model mm at the depth of the outer eye corners (their mean, in
        the fit's camera: focal length over that depth; weak perspective:
        :attr:`scale_px_per_mm`), where the pipeline's ``mm_per_px`` holds. NaN for a fit
        with the eyes behind the camera."""
        from .landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

        if self.focal_px is None:
            return float(self.scale_px_per_mm)
        eyes = self.landmarks_model[[LEFT_EYE_OUTER, RIGHT_EYE_OUTER]].astype(np.float64)
        depth = float(np.mean(eyes @ self.rotation[2])) + float(self.translation[2])
        return float(self.focal_px) / depth if depth > 0 else math.nan

    @property
    def mm_per_px_uncertainty(self) -> float:
        """Relative standard uncertainty of :attr:`mm_per_px`: that of the face's size,
        ``face_width_sd_mm / face_width_mm`` (mostly the population prior's spread)."""
        return self.face_width_sd_mm / self.face_width_mm

    def vertices_model(self) -> np.ndarray:
        """(V, 3) float32 vertices of the fitted face, mm, model frame."""
        from .morphable import face_model

        return face_model().vertices(self.identity, self.expression)

    def vertices_camera(self) -> np.ndarray:
        """(V, 3) float64 vertices in the camera frame, mm."""
        return self.vertices_model().astype(np.float64) @ self.rotation.T + self.translation

    def project(self, points_model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image positions (N, 2) px and camera-frame depths (N,) mm of model-frame points.

        For weak perspective the depth is ``z`` of the rotated point plus
        ``translation[2]`` (a nominal distance)."""
        q = np.asarray(points_model, np.float64) @ self.rotation.T
        if self.camera == "perspective":
            cam = q + self.translation
            uv = self.focal_px * cam[:, :2] / cam[:, 2:3] + np.asarray(self.principal_point)
            return uv, cam[:, 2]
        return self.scale_px_per_mm * q[:, :2] + self.offset_px, q[:, 2] + self.translation[2]

    @cached_property
    def mesh(self):
        """The fitted face as ``pyvista.PolyData`` in mm, **model frame**, with the ICT
        topology (face part, eye and mouth openings closed) and ICT's texture coordinates;
        built on first access."""
        from .morphable import face_model

        return face_model().polydata(self.vertices_model())

    def to_dict(self) -> dict:
        """A JSON-serialisable summary (no arrays of vertices)."""
        yaw, pitch, roll = self.yaw_pitch_roll_deg
        return {
            "camera": self.camera,
            "yaw_deg": round(yaw, 2),
            "pitch_deg": round(pitch, 2),
            "roll_deg": round(roll, 2),
            "scale_px_per_mm": self.scale_px_per_mm,
            "face_width_mm": round(self.face_width_mm, 2),
            "face_width_sd_mm": round(self.face_width_sd_mm, 2),
            "mm_per_px": self.mm_per_px,
            "residual_median_px": float(np.median(self.residuals_px[:_N_MESH])),
            "identity_norm": float(np.linalg.norm(self.identity)),
            "identity_modes": self.info.get("identity_modes"),
        }


def _angles(rot: np.ndarray) -> tuple[float, float, float]:
    # rot = Rz(r) Rx(-p) Ry(-y) F, F = diag(1,-1,-1); M = rot F = Rz Rx Ry
    m = rot @ np.diag([1.0, -1.0, -1.0])
    # Rx(-p) Ry(-y): row 2 = (-sin y cos p ... ) — solve from M's third row, roll from col
    pitch = math.degrees(math.asin(float(np.clip(m[2, 1], -1, 1))))
    yaw = math.degrees(math.atan2(float(m[2, 0]), float(m[2, 2])))
    roll = math.degrees(math.atan2(float(-m[0, 1]), float(m[1, 1])))
    return yaw, -pitch, roll


def fit_face_model(
    points: np.ndarray,
    *,
    focal_px: float | None = None,
    principal_point: tuple[float, float] | None = None,
    iterations: int = 4,
    identity_modes: int = IDENTITY_MODES,
) -> ModelFit:
    """Fit the morphable model to one face's 478 MediaPipe landmarks.

    Parameters
    ----------
    points : numpy.ndarray
        (478, 3) float: ``u, v`` in pixels; ``z`` MediaPipe's relative depth in the same
        pixel units (larger = farther), as :class:`~face3d_mesh.landmarks.FaceLandmarks`.
    focal_px : float, optional, keyword-only
        The camera's focal length in pixels. Given: a perspective camera; None: weak
        perspective.
    principal_point : (float, float), optional, keyword-only
        (cx, cy) in pixels; default the centre of the landmarks' image is unknown, so the
        face's own centre (the face then sits on the optical axis).
    iterations : int, keyword-only
        Alternations of the shape and pose solves.
    identity_modes : int, keyword-only
        How many of the model's identity modes are fitted (the first, largest ones; the
        others stay 0): default :data:`IDENTITY_MODES` (15 of 100), since MediaPipe's
        landmarks follow a face's own shape only in part; 100 fits them all (e.g. to
        landmarks known to be exact).

    Returns
    -------
    ModelFit
    """
    from .morphable import face_model

    pts = np.asarray(points, np.float64)
    if pts.shape != (478, 3) or not np.isfinite(pts).all():
        raise ValueError(f"points must be finite, shape (478, 3), got {pts.shape}")
    model = face_model()
    if not 0 <= int(identity_modes) <= model.n_identity:
        raise ValueError(f"identity_modes must be 0-{model.n_identity}, got {identity_modes!r}")
    with single_threaded_blas():
        problem = FitProblem(model, pts, focal_px, principal_point, int(identity_modes))
        pose = problem.initial_pose()
        coef = np.zeros(problem.n_coef)
        for _ in range(iterations):
            shape = problem.shape_points(coef)
            pose = problem.pose_step(pose, shape, steps=3)
            coef = problem.shape_step(pose, coef)
            problem.update_robust_weights(pose, problem.shape_points(coef))
        shape = problem.shape_points(coef)
        pose = problem.pose_step(pose, shape, steps=4)
        return ModelFit(**problem.result(pose, coef))

"""Fit the morphable face model (:mod:`face3d_mesh.morphable`) to MediaPipe's landmarks.

The fit finds the head's pose, the identity coefficients (prior N(0, 1) each) and the
expression weights (in [0, 1], a weak pull toward 0) that best explain

- the 468 face-mesh landmarks' image positions (pixels; noise :data:`LANDMARK_SIGMA_MM`
  on the face), the face-oval landmarks as **sliding** points: only their offset across
  the oval counts, since where along the jaw line a detector puts them is loosely defined;
- and, weighted less (:data:`DEPTH_SIGMA_MM`), MediaPipe's relative depths (freed of the
  curvature its ray-length depth adds, see :mod:`face3d_mesh.depth._landmark_depth`),
  which carry most of what is known about the head's pitch.

Cameras: **perspective** (a pinhole with known focal length and principal point) or
**weak perspective** (orthographic projection and one scale, when the camera is unknown).
The fit alternates a linear least-squares solve of the coefficients given the pose (bounds
on the expression weights by an active-set method) with a few Gauss-Newton steps of the
pose given the shape: deterministic, ~10-30 ms.

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

from .landmarks import FACE_OVAL, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER

__all__ = [
    "ModelFit",
    "fit_face_model",
    "LANDMARK_SIGMA_MM",
    "DEPTH_SIGMA_MM",
    "CONTOUR_SIGMA_MM",
]

#: Standard deviation of a landmark's image position, mm on the face (MediaPipe's error and
#: the registration's together; larger than either alone since neighbouring landmarks'
#: errors are correlated).
LANDMARK_SIGMA_MM = 3.0
#: Standard deviation of the face-oval landmarks across the oval, mm.
CONTOUR_SIGMA_MM = 4.5
#: Standard deviation of MediaPipe's relative depth of a landmark, mm.
DEPTH_SIGMA_MM = 1e6
#: Prior standard deviation of the log of MediaPipe's depth scale relative to the model's.
DEPTH_SCALE_SIGMA = 0.2
#: Prior standard deviation of each expression weight (they are kept in [0, 1]).
EXPRESSION_SIGMA = 0.5

_N_MESH = 468
SLIDING_CONTOUR = True
_HUBER_K = 2.0  # robust weights: residuals beyond this many sigmas count linearly


@dataclass(frozen=True)
class ModelFit:
    """The morphable model fitted to one face's landmarks.

    Attributes
    ----------
    identity : numpy.ndarray
        (100,) float64 identity coefficients (prior N(0, 1)).
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
            "residual_median_px": float(np.median(self.residuals_px[:_N_MESH])),
            "identity_norm": float(np.linalg.norm(self.identity)),
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

    Returns
    -------
    ModelFit
    """
    from .morphable import face_model

    pts = np.asarray(points, np.float64)
    if pts.shape != (478, 3) or not np.isfinite(pts).all():
        raise ValueError(f"points must be finite, shape (478, 3), got {pts.shape}")
    model = face_model()
    problem = _Problem(model, pts, focal_px, principal_point)
    pose = problem.initial_pose()
    coef = np.zeros(model.n_identity + model.n_expression)
    for _ in range(iterations):
        shape = problem.shape_points(coef)
        pose = problem.pose_step(pose, shape, steps=4)
        coef = problem.shape_step(pose, coef)
        problem.update_robust_weights(pose, problem.shape_points(coef))
    shape = problem.shape_points(coef)
    pose = problem.pose_step(pose, shape, steps=4)
    return problem.result(pose, coef)


def _rodrigues(w: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


def _umeyama(src: np.ndarray, dst: np.ndarray):
    """Similarity (s, R, t) with dst ≈ s R src + t (least squares)."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ fix @ vt
    s = float(np.trace(np.diag(sig) @ fix) / (a**2).sum())
    return s, rot, md - s * rot @ ms


@dataclass
class _Pose:
    """rot: model -> camera; weak: s (px/mm), t = (tu, tv, 0) px; perspective: t = T (mm).
    oz, kz: offset (px) and scale of MediaPipe's depth relative to the model's."""

    rot: np.ndarray
    s: float
    t: np.ndarray
    oz: float
    kz: float = 1.0


class _Problem:
    """The landmarks of one face and the model's landmark basis: residuals, solves."""

    def __init__(self, model, pts, focal_px, principal_point):
        from .depth._landmark_depth import corrected_landmarks

        self.perspective = focal_px is not None
        self.f = float(focal_px) if focal_px is not None else None
        centre = pts[:_N_MESH, :2].mean(axis=0)
        self.c = np.asarray(principal_point if principal_point is not None else centre, float)
        self.uv = pts[:_N_MESH, :2]
        self._observed_irises = pts[_N_MESH:, :2]
        corrected = corrected_landmarks(
            pts, (1, 1), perspective=False, symmetric=False, ray_curvature=True
        )
        self.z = corrected[:_N_MESH, 2]
        self.mean = model.landmark_mean[:_N_MESH]
        modes = model.landmark_modes[:, :_N_MESH]  # (K, N, 3)
        self.modes_n3k = np.ascontiguousarray(modes.transpose(1, 2, 0))  # (N, 3, K)
        self.modes_flat = self.modes_n3k.reshape(-1, len(modes))  # (3N, K), a view
        self.all_mean, self.all_modes = model.landmark_mean, model.landmark_modes
        self.n_id, self.n_coef = model.n_identity, len(modes)
        self.names = model.expression_names
        oval = np.asarray(FACE_OVAL)
        self.contour = np.zeros(_N_MESH, bool)
        self.contour[oval] = True
        tangent = self.uv[np.roll(oval, -1)] - self.uv[np.roll(oval, 1)]
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        outward = ((self.uv[oval] - self.uv[oval].mean(axis=0)) * normal).sum(axis=1)
        normal *= np.sign(outward.mean())
        self.normal = np.zeros((_N_MESH, 2))
        self.normal[oval] = normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
        self.robust = np.ones(_N_MESH)
        self.active = None  # expression weights at a bound, carried between shape solves
        self.robust_z = np.ones(_N_MESH)

    # -- model and camera -------------------------------------------------------------
    def shape_points(self, coef):
        return self.mean + (self.modes_flat @ coef).reshape(-1, 3)

    def predict(self, pose: _Pose, shape: np.ndarray):
        """Image positions (N, 2) px and depths (N,) px of model points (N, 3) mm."""
        q = shape @ pose.rot.T
        if self.perspective:
            cam = q + pose.t
            uv = self.f * cam[:, :2] / cam[:, 2:3] + self.c
            return uv, pose.kz * self.f * q[:, 2] / pose.t[2] + pose.oz
        return pose.s * q[:, :2] + pose.t[:2], pose.kz * pose.s * q[:, 2] + pose.oz

    def px_per_mm(self, pose: _Pose) -> float:
        return self.f / float(pose.t[2]) if self.perspective else pose.s

    def initial_pose(self) -> _Pose:
        observed = np.column_stack([self.uv, self.z])
        s, rot, t = _umeyama(self.mean, observed)
        if self.perspective:
            distance = self.f / s
            return _Pose(rot, s, np.r_[(t[:2] - self.c) / s, distance], float(t[2]))
        return _Pose(rot, s, np.r_[t[:2], 0.0], float(t[2]))

    # -- residuals ----------------------------------------------------------------------
    def _sigmas(self, pose):
        scale = self.px_per_mm(pose)
        return LANDMARK_SIGMA_MM * scale, CONTOUR_SIGMA_MM * scale, DEPTH_SIGMA_MM * scale

    def _stack(self, d_uv: np.ndarray, d_z: np.ndarray, sigmas) -> np.ndarray:
        """Whitened residual rows from per-landmark image terms (N, 2, ...) and depth
        terms (N, ...): interior u and v, contour across the oval, depths."""
        s2d, sc, sz = sigmas
        tail = d_uv.shape[2:]
        w = np.sqrt(self.robust).reshape((-1,) + (1,) * len(tail))
        inner = ~self.contour
        normal = self.normal[self.contour].reshape((-1, 2) + (1,) * len(tail))
        across = (d_uv[self.contour] * normal).sum(axis=1)
        wz = np.sqrt(self.robust_z).reshape((-1,) + (1,) * len(tail)) / sz
        return np.concatenate(
            [(d_uv[inner] * w[inner, None] / s2d).reshape((-1,) + tail),
             across * w[self.contour] / sc, d_z * wz]
        )  # fmt: skip

    def residuals(self, pose: _Pose, shape: np.ndarray, sigmas=None) -> np.ndarray:
        """Whitened residuals (observed minus predicted), rows as :meth:`_stack`."""
        uv, z = self.predict(pose, shape)
        return self._stack(self.uv - uv, self.z - z, sigmas or self._sigmas(pose))

    def update_robust_weights(self, pose, shape):
        s2d, sc, sz = self._sigmas(pose)
        uv, z = self.predict(pose, shape)
        d = self.uv - uv
        r = np.where(self.contour, np.abs((d * self.normal).sum(axis=1)) / sc,
                     np.linalg.norm(d, axis=1) / s2d)  # fmt: skip
        self.robust = np.minimum(1.0, _HUBER_K / np.maximum(r, 1e-12))
        self.robust_z = np.minimum(1.0, _HUBER_K / np.maximum(np.abs(self.z - z) / sz, 1e-12))

    # -- pose ---------------------------------------------------------------------------
    def _moved(self, pose: _Pose, delta: np.ndarray) -> _Pose:
        rot = _rodrigues(delta[:3]) @ pose.rot
        if self.perspective:
            t = pose.t + np.r_[delta[4:6], pose.t[2] * (math.exp(delta[3]) - 1.0)]
            return _Pose(rot, pose.s, t, pose.oz + delta[6], pose.kz * math.exp(delta[7]))
        return _Pose(rot, pose.s * math.exp(delta[3]), pose.t + np.r_[delta[4:6], 0.0],
                     pose.oz + delta[6], pose.kz * math.exp(delta[7]))  # fmt: skip

    def _pose_jacobian(self, pose, shape, sigmas):
        """Whitened d(residual)/d(pose update) (rows as :meth:`_stack`, 7 columns as
        :meth:`_moved`): analytic."""
        q = shape @ pose.rot.T
        n = len(q)
        dq = np.zeros((n, 3, 3))  # d(R P)/d(rotation vector) = -[Q]x
        dq[:, 0, 1], dq[:, 0, 2] = q[:, 2], -q[:, 1]
        dq[:, 1, 0], dq[:, 1, 2] = -q[:, 2], q[:, 0]
        dq[:, 2, 0], dq[:, 2, 1] = q[:, 1], -q[:, 0]
        j_uv = np.zeros((n, 2, 8))
        j_z = np.zeros((n, 8))
        if self.perspective:
            cam = q + pose.t
            inv_z = 1.0 / cam[:, 2]
            proj = np.zeros((n, 2, 3))  # d(u, v)/d(camera point)
            proj[:, 0, 0] = proj[:, 1, 1] = self.f * inv_z
            proj[:, :, 2] = -self.f * cam[:, :2] * (inv_z**2)[:, None]
            j_uv[:, :, :3] = proj @ dq
            j_uv[:, :, 3] = proj[:, :, 2] * pose.t[2]
            j_uv[:, :, 4:6] = proj[:, :, :2]
            k = self.f / pose.t[2]
            j_z[:, :3] = k * dq[:, 2]
            j_z[:, 3] = -k * q[:, 2]
            j_z[:, 7] = k * q[:, 2]
        else:
            j_uv[:, :, :3] = pose.s * dq[:, :2]
            j_uv[:, :, 3] = pose.s * q[:, :2]
            j_uv[:, 0, 4] = j_uv[:, 1, 5] = 1.0
            j_z[:, :3] = pose.s * dq[:, 2]
            j_z[:, 3] = pose.s * q[:, 2]
            j_z[:, 7] = pose.s * q[:, 2]
        j_z *= pose.kz
        j_z[:, 6] = 1.0
        return -self._stack(j_uv, j_z, sigmas)

    def _pose_residuals(self, pose, shape, sigmas):
        return np.r_[self.residuals(pose, shape, sigmas), math.log(pose.kz) / DEPTH_SCALE_SIGMA]

    def pose_step(self, pose: _Pose, shape: np.ndarray, *, steps: int) -> _Pose:
        """Gauss-Newton (damped) on the pose, the shape fixed."""
        sigmas = self._sigmas(pose)
        r = self._pose_residuals(pose, shape, sigmas)
        cost = float(r @ r)
        prior_row = np.zeros((1, 8))
        prior_row[0, 7] = 1.0 / DEPTH_SCALE_SIGMA
        for _ in range(steps):
            jac = np.vstack([self._pose_jacobian(pose, shape, sigmas), prior_row])
            h = jac.T @ jac
            g = jac.T @ r
            delta = np.linalg.solve(h + 1e-6 * np.diag(np.diag(h)) + 1e-9 * np.eye(8), g)
            for _ in range(6):  # halve the step until the cost decreases
                trial = self._moved(pose, -delta)
                r_trial = self._pose_residuals(trial, shape, sigmas)
                if float(r_trial @ r_trial) < cost:
                    pose, r, cost = trial, r_trial, float(r_trial @ r_trial)
                    break
                delta = 0.5 * delta
            else:
                break
        return pose

    # -- shape --------------------------------------------------------------------------
    def _shape_gradients(self, pose, shape):
        """d(u, v)/dP (N, 2, 3) and d(depth)/dP (N, 3) at the current points."""
        rot = pose.rot
        if not self.perspective:
            g_uv = np.broadcast_to(pose.s * rot[:2], (_N_MESH, 2, 3))
            return g_uv, np.broadcast_to(pose.kz * pose.s * rot[2], (_N_MESH, 3))
        cam = shape @ rot.T + pose.t
        inv_z = 1.0 / cam[:, 2]
        g_uv = self.f * inv_z[:, None, None] * (
            rot[None, :2, :] - (cam[:, :2] * inv_z[:, None])[:, :, None] * rot[None, 2:3, :]
        )
        return g_uv, np.broadcast_to(pose.kz * self.f / pose.t[2] * rot[2], (_N_MESH, 3))

    def _shape_system(self, pose, coef):
        """Whitened d(prediction)/d(coefficients, depth offset) (rows as :meth:`_stack`)
        and the current whitened residuals."""
        shape = self.shape_points(coef)
        sigmas = self._sigmas(pose)
        g_uv, g_z = self._shape_gradients(pose, shape)
        ga = np.matmul(g_uv, self.modes_n3k)  # (N, 2, K)
        gz = np.matmul(g_z[:, None, :], self.modes_n3k)[:, 0]  # (N, K)
        gz = np.column_stack([gz, np.ones(len(gz))])
        ga = np.concatenate([ga, np.zeros(ga.shape[:2] + (1,))], axis=2)
        return self._stack(ga, gz, sigmas), self.residuals(pose, shape, sigmas)

    def shape_step(self, pose: _Pose, coef: np.ndarray) -> np.ndarray:
        """Coefficients minimising the whitened residuals plus the priors (a Gauss-Newton
        step; exact for weak perspective), expression weights kept in [0, 1]."""
        jac, r = self._shape_system(pose, coef)
        x0 = np.r_[coef, pose.oz]
        y = r + jac @ x0
        prior = np.r_[np.ones(self.n_id), np.full(self.n_coef - self.n_id, EXPRESSION_SIGMA**-2), 0]
        h = jac.T @ jac + np.diag(prior)
        g = jac.T @ y
        lower = np.r_[np.full(self.n_id, -np.inf), np.zeros(self.n_coef - self.n_id), -np.inf]
        upper = np.r_[np.full(self.n_id, np.inf), np.ones(self.n_coef - self.n_id), np.inf]
        x, self.active = _box_qp(h, g, lower, upper, x0, self.active)
        pose.oz = float(x[-1])
        return x[:-1]

    # -- result -------------------------------------------------------------------------
    def result(self, pose: _Pose, coef: np.ndarray) -> ModelFit:
        shape_all = self.all_mean + np.tensordot(coef, self.all_modes, axes=1)
        uv_all, _ = self.predict(pose, shape_all)
        residuals = np.linalg.norm(
            np.vstack([self.uv, self._observed_irises]) - uv_all, axis=1
        )
        width, width_sd = self._face_width(pose, coef, shape_all)
        if self.perspective:
            translation = pose.t.copy()
            offset = self.f * translation[:2] / translation[2] + self.c
            nose = shape_all[NOSE_TIP] @ pose.rot.T + translation
            scale = self.f / float(nose[2])
        else:
            translation = np.zeros(3)
            offset = pose.t[:2].copy()
            scale = pose.s
        return ModelFit(
            identity=coef[: self.n_id].copy(),
            expression=coef[self.n_id :].copy(),
            expression_names=self.names,
            camera="perspective" if self.perspective else "weak_perspective",
            rotation=pose.rot.copy(),
            translation=translation,
            focal_px=self.f,
            principal_point=tuple(self.c) if self.perspective else None,
            scale_px_per_mm=float(scale),
            offset_px=offset,
            landmarks_model=shape_all,
            landmarks_px=uv_all,
            residuals_px=residuals,
            face_width_mm=width,
            face_width_sd_mm=width_sd,
            info={"depth_offset_px": pose.oz, "depth_scale": pose.kz},
        )

    def _face_width(self, pose, coef, shape_all) -> tuple[float, float]:
        """Outer-eye-corner distance (mm) and its linearised posterior standard deviation,
        with the pose's scale free (the size of a face and its distance trade off)."""
        d = shape_all[LEFT_EYE_OUTER] - shape_all[RIGHT_EYE_OUTER]
        width = float(np.linalg.norm(d))
        grad = (d / width) @ (
            self.all_modes[:, LEFT_EYE_OUTER] - self.all_modes[:, RIGHT_EYE_OUTER]
        ).T  # (K,)
        jac, _ = self._shape_system(pose, coef)
        pose_jac = self._pose_jacobian(pose, self.shape_points(coef), self._sigmas(pose))
        full = np.column_stack([jac[:, :-1], -pose_jac])
        prior = np.r_[np.ones(self.n_id), np.full(self.n_coef - self.n_id, EXPRESSION_SIGMA**-2),
                      np.zeros(pose_jac.shape[1])]  # fmt: skip
        info = full.T @ full + np.diag(prior) + 1e-9 * np.eye(full.shape[1])
        # expression weights at a bound are held there
        expr = coef[self.n_id :]
        free = np.r_[np.ones(self.n_id, bool), (expr > 1e-9) & (expr < 1 - 1e-9),
                     np.ones(pose_jac.shape[1], bool)]  # fmt: skip
        g = np.r_[grad, np.zeros(pose_jac.shape[1])][free]
        var = float(g @ np.linalg.solve(info[np.ix_(free, free)], g))
        return width, math.sqrt(max(var, 0.0))


def _box_qp(h, g, lower, upper, x0=None, active=None):
    """argmin ½ xᵀHx − gᵀx subject to lower ≤ x ≤ upper (H positive definite): an
    active-set method (clamp the violated bounds, release those whose gradient points
    inward), warm-started from a previous solution ``x0`` and its active set ``active``
    (bool, True at a bound); deterministic, exact at convergence.

    Returns
    -------
    x, active : numpy.ndarray
    """
    n = len(g)
    x = np.clip(np.zeros(n) if x0 is None else np.asarray(x0, float), lower, upper)
    at_bound = np.zeros(n, bool) if active is None else active.copy()
    for _ in range(2 * n):
        free = ~at_bound
        if free.any():
            rhs = g[free] - h[np.ix_(free, at_bound)] @ x[at_bound]
            x[free] = np.linalg.solve(h[np.ix_(free, free)], rhs)
        violated = free & ((x < lower) | (x > upper))
        grad = h @ x - g
        release = at_bound & (((x <= lower) & (grad < 0)) | ((x >= upper) & (grad > 0)))
        if not violated.any() and not release.any():
            break
        at_bound = (at_bound | violated) & ~release
        x = np.clip(x, lower, upper)
    return np.clip(x, lower, upper), at_bound

"""The solver behind :func:`face3d_mesh.model_fit.fit_face_model`: residuals, Jacobians,
the linear solve of the coefficients and the Gauss-Newton steps of the pose.

Pose parameters (updates, in :meth:`FitProblem._moved` order): rotation vector (3, applied
on the left), log scale (weak perspective) or log distance (perspective), image shift (px)
or lateral translation (mm) (2), log depth scale, depth nuisance (3: offset, tilt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .landmarks import LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER

__all__ = [
    "FitProblem",
    "umeyama",
    "LANDMARK_SIGMA_MM",
    "CONTOUR_SIGMA_MM",
    "DEPTH_SIGMA_MM",
    "IDENTITY_MODES",
]

#: Standard deviation of a landmark's image position, mm on the face (MediaPipe's error and
#: the registration's together; larger than either alone since neighbouring landmarks'
#: errors are correlated: on renders of a head scan given other faces' shapes, MediaPipe's
#: landmarks followed the change of shape only in part, 1-1.6 mm rms off). 4 mm (the face
#: oval 1.5 times that) gave a smaller NoW-like error than 3 on every render set, for the
#: scan and four morphed faces, with and without the focal length; 5 was better still on
#: the scan, whose face is close to the model's mean, but not on the other faces.
LANDMARK_SIGMA_MM = 4.0
#: Standard deviation of the face-oval landmarks across the oval, mm.
CONTOUR_SIGMA_MM = 6.0
#: Standard deviation of MediaPipe's relative depth of a landmark, mm (after its offset,
#: tilt and scale are fitted away).
DEPTH_SIGMA_MM = 5.0
#: Prior standard deviation of the log of MediaPipe's depth scale relative to the model's.
DEPTH_SCALE_SIGMA = 0.2
#: Prior standard deviation of each expression weight (they are kept in [0, 1]).
EXPRESSION_SIGMA = 0.5
#: Identity modes the fit solves for (the model's first, largest ones; the others stay 0).
#: MediaPipe's landmarks follow a face's own shape only in part, and the later modes fitted
#: to them mostly followed their errors: with the first 15 of 100 the NoW-like error fell on
#: 9 renders in 10 of a head scan and 7 in 10 of faces morphed from it (0 modes: worse
#: everywhere; 5, 30, 40: in between).
IDENTITY_MODES = 15

_N_MESH = 468
_N_POSE = 10
_HUBER_K = 2.0  # robust weights: residuals beyond this many sigmas count linearly


def _rodrigues(w: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * kx + (1 - math.cos(theta)) * kx @ kx


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None):
    """Similarity (s, R, t) minimising Σ w |s R src + t − dst|² (Umeyama 1991).

    Parameters
    ----------
    src, dst : numpy.ndarray
        (N, 3) corresponding points.
    weights : numpy.ndarray, optional
        (N,) non-negative weights (default all 1).

    Returns
    -------
    s : float
    rot : numpy.ndarray
        (3, 3) rotation (det +1).
    t : numpy.ndarray
        (3,)
    """
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    ms, md = w @ src, w @ dst
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd((b * w[:, None]).T @ a)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ fix @ vt
    s = float(np.trace(np.diag(sig) @ fix) / (w * (a**2).sum(axis=1)).sum())
    return s, rot, md - s * rot @ ms


@dataclass
class _Pose:
    """rot: model -> camera; weak: s (px/mm), t = (tu, tv, 0) px; perspective: t = T (mm).
    dz: MediaPipe's depth minus the model's is dz[0] + dz[1:] · (landmark position): an
    offset and a tilt (px; px per face size), nuisances; kz: its scale to the model's."""

    rot: np.ndarray
    s: float
    t: np.ndarray
    dz: np.ndarray
    kz: float = 1.0


class FitProblem:
    """The landmarks of one face and the model's landmark basis: residuals and solves.

    Residual rows (whitened: divided by their standard deviation): the u and v of the
    interior landmarks, the offset across the oval of the face-oval landmarks, the depths.
    """

    def __init__(self, model, pts, focal_px, principal_point, identity_modes=IDENTITY_MODES):
        from .depth._landmark_depth import corrected_landmarks
        from .landmarks import FACE_OVAL

        self.perspective = focal_px is not None
        self.f = float(focal_px) if focal_px is not None else None
        centre = pts[:_N_MESH, :2].mean(axis=0)
        self.c = np.asarray(principal_point if principal_point is not None else centre, float)
        self.uv = pts[:_N_MESH, :2]
        self.irises = pts[_N_MESH:, :2]
        corrected = corrected_landmarks(
            pts, (1, 1), perspective=False, symmetric=False, ray_curvature=True
        )
        self.z = corrected[:_N_MESH, 2]
        # depth nuisance: an offset and a tilt plane (MediaPipe's depth says little about
        # the head's tilt), in units of the face's size
        size = float(np.sqrt(np.prod(np.ptp(self.uv, axis=0))))
        centred = (self.uv - self.uv.mean(axis=0)) / size
        self.depth_design = np.column_stack([np.ones(_N_MESH), centred])
        self.mean = model.landmark_mean[:_N_MESH]
        # the coefficients solved for: the first identity modes, then every expression
        self.n_id = int(identity_modes)  # 0..n_identity, checked by fit_face_model
        self.n_id_model = model.n_identity
        used = np.r_[: self.n_id, model.n_identity : model.n_identity + model.n_expression]
        self.all_mean, self.all_modes = model.landmark_mean, model.landmark_modes[used]
        modes = self.all_modes[:, :_N_MESH]  # (K, N, 3)
        self.modes_n3k = np.ascontiguousarray(modes.transpose(1, 2, 0))  # (N, 3, K)
        self.modes_flat = self.modes_n3k.reshape(-1, len(modes))  # (3N, K), a view
        self.n_coef = len(modes)
        self.names = model.expression_names
        oval = np.asarray(FACE_OVAL)
        self.oval = oval
        self.contour = np.zeros(_N_MESH, bool)
        self.contour[oval] = True
        self.inner_weight = (~self.contour).astype(np.float64)
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
            return uv, pose.kz * self.f * q[:, 2] / pose.t[2] + self._nuisance(pose, len(q))
        uv = pose.s * q[:, :2] + pose.t[:2]
        return uv, pose.kz * pose.s * q[:, 2] + self._nuisance(pose, len(q))

    def _nuisance(self, pose: _Pose, n: int):
        """The depth nuisance (offset and tilt) at the mesh landmarks, or its offset."""
        return self.depth_design @ pose.dz if n == _N_MESH else pose.dz[0]

    def px_per_mm(self, pose: _Pose) -> float:
        return self.f / float(pose.t[2]) if self.perspective else pose.s

    def initial_pose(self) -> _Pose:
        observed = np.column_stack([self.uv, self.z])
        s, rot, t = umeyama(self.mean, observed)
        if self.perspective:
            distance = self.f / s
            return _Pose(rot, s, np.r_[(t[:2] - self.c) / s, distance], np.r_[t[2], 0.0, 0.0])
        return _Pose(rot, s, np.r_[t[:2], 0.0], np.r_[t[2], 0.0, 0.0])

    # -- residuals ----------------------------------------------------------------------
    def _sigmas(self, pose):
        scale = self.px_per_mm(pose)
        return LANDMARK_SIGMA_MM * scale, CONTOUR_SIGMA_MM * scale, DEPTH_SIGMA_MM * scale

    def _stack(self, d_uv: np.ndarray, d_z: np.ndarray, sigmas) -> np.ndarray:
        """Whitened residual rows from per-landmark image terms (N, 2, ...) and depth
        terms (N, ...): u and v (zero weight on the face oval), the face oval's offsets
        across the oval, depths."""
        s2d, sc, sz = sigmas
        tail = (1,) * (d_uv.ndim - 2)
        w_uv = (self.inner_weight * np.sqrt(self.robust) / s2d).reshape((-1, 1) + tail)
        oval = self.oval
        normal = self.normal[oval].reshape((-1, 2) + tail)
        w_c = (np.sqrt(self.robust[oval]) / sc).reshape((-1,) + tail)
        across = (d_uv[oval] * normal).sum(axis=1) * w_c
        wz = (np.sqrt(self.robust_z) / sz).reshape((-1,) + tail)
        rows = d_uv.shape[2:]
        return np.concatenate([(d_uv * w_uv).reshape((-1,) + rows), across, d_z * wz])

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
            return _Pose(rot, pose.s, t, pose.dz + delta[7:10], pose.kz * math.exp(delta[6]))
        return _Pose(rot, pose.s * math.exp(delta[3]), pose.t + np.r_[delta[4:6], 0.0],
                     pose.dz + delta[7:10], pose.kz * math.exp(delta[6]))  # fmt: skip

    def _pose_jacobian(self, pose, shape, sigmas):
        """Whitened d(residual)/d(pose update) (rows as :meth:`_stack`, columns as
        :meth:`_moved`): analytic."""
        q = shape @ pose.rot.T
        n = len(q)
        dq = np.zeros((n, 3, 3))  # d(R P)/d(rotation vector) = -[Q]x
        dq[:, 0, 1], dq[:, 0, 2] = q[:, 2], -q[:, 1]
        dq[:, 1, 0], dq[:, 1, 2] = -q[:, 2], q[:, 0]
        dq[:, 2, 0], dq[:, 2, 1] = q[:, 1], -q[:, 0]
        j_uv = np.zeros((n, 2, _N_POSE))
        j_z = np.zeros((n, _N_POSE))
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
            j_z[:, 6] = k * q[:, 2]
        else:
            j_uv[:, :, :3] = pose.s * dq[:, :2]
            j_uv[:, :, 3] = pose.s * q[:, :2]
            j_uv[:, 0, 4] = j_uv[:, 1, 5] = 1.0
            j_z[:, :3] = pose.s * dq[:, 2]
            j_z[:, 3] = pose.s * q[:, 2]
            j_z[:, 6] = pose.s * q[:, 2]
        j_z *= pose.kz
        j_z[:, 7:] = self.depth_design
        return -self._stack(j_uv, j_z, sigmas)

    def _pose_residuals(self, pose, shape, sigmas):
        return np.r_[self.residuals(pose, shape, sigmas), math.log(pose.kz) / DEPTH_SCALE_SIGMA]

    def pose_step(self, pose: _Pose, shape: np.ndarray, *, steps: int) -> _Pose:
        """Gauss-Newton (damped) on the pose, the shape fixed."""
        sigmas = self._sigmas(pose)
        r = self._pose_residuals(pose, shape, sigmas)
        cost = float(r @ r)
        prior_row = np.zeros((1, _N_POSE))
        prior_row[0, 6] = 1.0 / DEPTH_SCALE_SIGMA
        for _ in range(steps):
            jac = np.vstack([self._pose_jacobian(pose, shape, sigmas), prior_row])
            h = jac.T @ jac
            g = jac.T @ r
            delta = np.linalg.solve(h + 1e-6 * np.diag(np.diag(h)) + 1e-9 * np.eye(_N_POSE), g)
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
        g_uv = (
            self.f
            * inv_z[:, None, None]
            * (rot[None, :2, :] - (cam[:, :2] * inv_z[:, None])[:, :, None] * rot[None, 2:3, :])
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
        gz = np.column_stack([gz, self.depth_design])
        ga = np.concatenate([ga, np.zeros(ga.shape[:2] + (3,))], axis=2)
        return self._stack(ga, gz, sigmas), self.residuals(pose, shape, sigmas)

    def shape_step(self, pose: _Pose, coef: np.ndarray) -> np.ndarray:
        """Coefficients minimising the whitened residuals plus the priors (a Gauss-Newton
        step; exact for weak perspective), expression weights kept in [0, 1]."""
        jac, r = self._shape_system(pose, coef)
        x0 = np.r_[coef, pose.dz]
        y = r + jac @ x0
        prior = np.r_[np.ones(self.n_id), np.full(self.n_coef - self.n_id, EXPRESSION_SIGMA**-2),
                      np.zeros(3)]  # fmt: skip
        h = jac.T @ jac + np.diag(prior)
        g = jac.T @ y
        n_expr = self.n_coef - self.n_id
        lower = np.r_[np.full(self.n_id, -np.inf), np.zeros(n_expr), np.full(3, -np.inf)]
        upper = np.r_[np.full(self.n_id, np.inf), np.ones(n_expr), np.full(3, np.inf)]
        x, self.active = _box_qp(h, g, lower, upper, x0, self.active)
        pose.dz = x[self.n_coef :]
        return x[: self.n_coef]

    # -- result -------------------------------------------------------------------------
    def result(self, pose: _Pose, coef: np.ndarray) -> dict:
        """The fields of a :class:`~face3d_mesh.model_fit.ModelFit`."""
        shape_all = self.all_mean + np.tensordot(coef, self.all_modes, axes=1)
        uv_all, _ = self.predict(pose, shape_all)
        residuals = np.linalg.norm(np.vstack([self.uv, self.irises]) - uv_all, axis=1)
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
        return dict(
            identity=np.r_[coef[: self.n_id], np.zeros(self.n_id_model - self.n_id)],
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
            info={
                "depth_nuisance_px": pose.dz.tolist(),
                "depth_scale": pose.kz,
                "identity_modes": self.n_id,
            },
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
        full = np.column_stack([jac[:, : self.n_coef], -pose_jac])
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

"""Depth backends: how the pipeline gets a depth map of the aligned face crop.

Every backend returns depth in millimetres on the crop's grid (larger = farther, with the
landmarks' depth offset) and a dict of diagnostics. Offline: ``landmarks`` (MediaPipe's
landmark depths, interpolated), ``model`` (the fitted morphable face, z-buffered) and
``hybrid`` (their mean; the offline default, see :data:`OFFLINE_DEFAULT`). ``midas`` and
``fused`` run a neural network; ``fused`` fits it to the offline default's dense depth.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["estimate_depth", "DEPTH_BACKENDS", "OFFLINE_DEFAULT"]

DEPTH_BACKENDS = ("landmarks", "model", "hybrid", "midas", "fused", "auto")
#: What ``auto`` uses without network weights, and the prior ``fused`` fits the network to:
#: the backend with the smallest shape error on renders of a real head scan at many poses
#: (``scripts/bench_fidelity.py``; see README, Accuracy).
OFFLINE_DEFAULT = "hybrid"


def landmark_depth_mm(
    aligned, mask: np.ndarray, *, mm_per_px: float, focal_px: float, principal_point
) -> tuple[np.ndarray, np.ndarray]:
    """Dense depth from the landmarks on the crop's grid (mm, NaN outside ``mask``), and
    the corrected depth of each landmark (478,) in mm, with the same offset."""
    from ._landmark_depth import corrected_landmarks, rasterize_landmark_depth

    points = corrected_landmarks(
        aligned.landmarks.points, mask.shape, focal_px=focal_px, principal_point=principal_point
    )
    depth = rasterize_landmark_depth(
        points, mask.shape, perspective=False, symmetric=False, ray_curvature=False
    )
    depth *= np.float32(mm_per_px)
    depth[~mask] = np.nan
    return depth, points[:, 2] * mm_per_px


def estimate_depth(
    aligned,
    mask: np.ndarray,
    *,
    mm_per_px: float,
    focal_px: float,
    principal_point,
    config,
    relative: np.ndarray | None = None,
    model_fit=None,
    focal_known: bool = True,
) -> tuple[np.ndarray, dict, np.ndarray]:
    """Run the depth backend chosen by ``config.depth`` on an aligned face.

    Parameters
    ----------
    aligned : AlignedFace
        The upright face crop and its landmarks.
    mask : numpy.ndarray
        h×w bool face mask on the crop's grid.
    mm_per_px : float
        Millimetres per crop pixel.
    focal_px : float
        The camera's focal length in crop pixels.
    principal_point : tuple of float
        The photo's principal point (its centre) in crop pixels.
    config : ReconstructionConfig
    relative : numpy.ndarray, optional
        The network's output for this crop when it was computed already (batches).
    model_fit : ModelFit, optional
        The morphable model fitted to the photo's landmarks (needed by ``model``,
        ``hybrid`` and ``fused``).
    focal_known : bool
        Whether ``focal_px`` is the photo's (given or from EXIF) rather than a guess;
        with a guess ``hybrid`` keeps the landmark depth's tilt (:func:`blend_depths`).

    Returns
    -------
    depth_mm : numpy.ndarray
        h×w float32, mm, larger = farther, NaN outside ``mask``.
    info : dict
        ``backend`` (the one used) and its diagnostics.
    landmark_z_mm : numpy.ndarray
        (478,) float64 depth of each landmark in mm (perspective-corrected, symmetric),
        with the same offset as ``depth_mm``.
    """
    reference, landmark_z = landmark_depth_mm(
        aligned, mask, mm_per_px=mm_per_px, focal_px=focal_px, principal_point=principal_point
    )
    backend, note = resolve_backend(config)
    info = {"backend": backend}
    if note:
        info["note"] = note
    if backend == "landmarks":
        return reference, info, landmark_z
    prior, prior_z, prior_info = _offline_prior(
        "model" if backend == "model" else OFFLINE_DEFAULT,
        reference, landmark_z, aligned, mask, mm_per_px, model_fit, focal_known,
    )  # fmt: skip
    if backend in ("model", "hybrid"):
        return prior, {**info, **prior_info}, prior_z
    if relative is None:
        relative = _estimator(config.depth_model, config.weights, config.device).predict(
            aligned.image
        )
    depth, fusion = _fuse(relative, prior, mask, backend=backend, config=config)
    return depth, {**fusion, "prior": prior_info["backend"]}, prior_z


def _offline_prior(
    backend, reference, landmark_z, aligned, mask, mm_per_px, model_fit, focal_known
):
    """The ``model`` or ``hybrid`` depth (crop grid, mm), its landmark depths and info."""
    from ._model_depth import blend_depths, model_depth_mm

    if model_fit is None:
        raise ValueError(f"the {backend!r} depth backend needs the fitted face model")
    # The model alone keeps its own proportions (relief at the eyes' pixel size); the
    # hybrid blends it at the nose tip's, 5-7 % deeper: measured better with the landmark
    # depth's mean (README, "The face model's relief").
    depth, z = model_depth_mm(
        model_fit, aligned.matrix, mask, mm_per_px=mm_per_px * aligned.scale,
        relief_at="eyes" if backend == "model" else "nose",
    )  # fmt: skip
    info = {"backend": backend, "model_fit_residual_px": model_fit.to_dict()["residual_median_px"]}
    if backend == "model":
        return depth, z, info
    blended, scale, offset = blend_depths(
        depth, reference, mask, tilt_from_landmarks=not focal_known
    )
    info.update(landmark_scale=scale)
    return blended, 0.5 * (z + scale * landmark_z + offset), info


def resolve_backend(config) -> tuple[str, str | None]:
    """The backend ``config.depth`` stands for, and a note when ``auto`` fell back."""
    if config.depth != "auto":
        return config.depth, None
    if _weights_available(config):
        return "fused", None
    return OFFLINE_DEFAULT, _midas_advice(config)


def crop_size_px(config) -> int:
    """The long side (pixels) of the face crop the depth stage needs: the config's
    ``working_size_px``, raised to the network's input size when a neural backend runs
    (``dpt_beit_large_512`` sees 512 pixels, ``depth_anything_v2_vits`` 518), so that the
    network is not fed an enlarged crop."""
    backend, _ = resolve_backend(config)
    if backend not in ("midas", "fused"):
        return int(config.working_size_px)
    from ._registry import get_spec

    return max(int(config.working_size_px), int(get_spec(config.depth_model).input_size))


def predict_relative_batch(images, config, *, batch_size: int) -> list[np.ndarray]:
    """The network's relative inverse depth for several face crops, in batches."""
    estimator = _estimator(config.depth_model, config.weights, config.device)
    return list(estimator.predict_batch(images, batch_size=batch_size))


def _weights_available(config) -> bool:
    if config.weights is not None:
        return True
    from . import cached_weights_path

    return cached_weights_path(config.depth_model) is not None


def _midas_advice(config) -> str:
    return (
        f"no weights for depth model {config.depth_model}: using {OFFLINE_DEFAULT} depth; for "
        f"neural depth run 'face3d-mesh models download {config.depth_model}' or pass "
        "--weights PATH"
    )


def _fuse(relative, reference, mask, *, backend, config):
    from . import fuse_relative_depth

    # "midas": the network's relative depth put on the prior's scale (affine fit only);
    # "fused": plus the smooth correction of the residual toward the prior.
    depth, fusion = fuse_relative_depth(
        relative, reference, mask, smooth_sigma_px=0.0 if backend == "midas" else None
    )
    info = fusion.to_dict()
    info.update(backend=backend, model=config.depth_model, residual_mm=fusion.residual_median_mm)
    return depth, info


@lru_cache(maxsize=2)
def _estimator(name, weights, device):
    # Weights are large: a model is loaded once per process and reused. An explicit request
    # downloads missing weights (with a progress bar); offline, that fails fast with advice.
    from . import load_estimator

    return load_estimator(name, weights=weights, device=device, precision="auto", download=True)

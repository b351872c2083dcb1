"""Depth backends: how the pipeline gets a depth map of the aligned face crop.

Every backend returns depth in millimetres on the crop's grid (larger = farther, with the
landmarks' depth offset) and a dict of diagnostics. ``landmarks`` needs nothing but the
MediaPipe landmarks and works offline; ``midas`` and ``fused`` run a neural network.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["estimate_depth", "DEPTH_BACKENDS"]

DEPTH_BACKENDS = ("landmarks", "midas", "fused", "auto")


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
    if backend == "landmarks":
        info = {"backend": "landmarks"}
        if note:
            info["note"] = note
        return reference, info, landmark_z
    if relative is None:
        relative = _estimator(config.depth_model, config.weights, config.device).predict(
            aligned.image
        )
    depth, info = _fuse(relative, reference, mask, backend=backend, config=config)
    return depth, info, landmark_z


def resolve_backend(config) -> tuple[str, str | None]:
    """The backend ``config.depth`` stands for, and a note when ``auto`` fell back."""
    if config.depth != "auto":
        return config.depth, None
    if _weights_available(config):
        return "fused", None
    return "landmarks", _midas_advice(config)


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
        f"no weights for depth model {config.depth_model}: using landmark depth; for neural "
        f"depth run 'face3d-mesh models download {config.depth_model}' or pass --weights PATH"
    )


def _fuse(relative, reference, mask, *, backend, config):
    from . import fuse_relative_depth

    # "midas": the network's relative depth put on the landmarks' scale (affine fit only);
    # "fused": plus the smooth correction of the residual toward the landmarks.
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

"""Depth backends: how the pipeline gets a depth map of the aligned face crop.

Every backend returns depth in millimetres on the crop's grid (larger = farther, with the
landmarks' depth offset) and a dict of diagnostics. ``landmarks`` needs nothing but the
MediaPipe landmarks and works offline; ``midas`` and ``fused`` run a neural network.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError

__all__ = ["estimate_depth", "DEPTH_BACKENDS"]

DEPTH_BACKENDS = ("landmarks", "midas", "fused", "auto")


def landmark_depth_mm(aligned, mask: np.ndarray, *, mm_per_px: float) -> np.ndarray:
    """Dense depth from the landmarks on the crop's grid, mm, NaN outside ``mask``."""
    from ._landmark_depth import rasterize_landmark_depth

    depth = rasterize_landmark_depth(aligned.landmarks.points, mask.shape) * np.float32(mm_per_px)
    depth[~mask] = np.nan
    return depth


def estimate_depth(
    aligned, mask: np.ndarray, *, mm_per_px: float, config
) -> tuple[np.ndarray, dict]:
    """Run the depth backend chosen by ``config.depth`` on an aligned face.

    Parameters
    ----------
    aligned : AlignedFace
        The upright face crop and its landmarks.
    mask : numpy.ndarray
        h×w bool face mask on the crop's grid.
    mm_per_px : float
        Millimetres per crop pixel.
    config : ReconstructionConfig

    Returns
    -------
    depth_mm : numpy.ndarray
        h×w float32, mm, larger = farther, NaN outside ``mask``.
    info : dict
        ``backend`` (the one used) and its diagnostics.
    """
    reference = landmark_depth_mm(aligned, mask, mm_per_px=mm_per_px)
    backend = config.depth
    if backend == "auto":
        backend = "fused" if _weights_available(config) else "landmarks"
        if backend == "landmarks":
            info = {"backend": "landmarks", "note": _midas_advice(config)}
            return reference, info
    if backend == "landmarks":
        return reference, {"backend": "landmarks"}
    return _neural_depth(aligned, mask, reference, backend=backend, config=config)


def _weights_available(config) -> bool:
    if config.weights is not None:
        return True
    try:
        from . import cached_weights_path
    except ImportError:
        return False
    try:
        return cached_weights_path(config.depth_model) is not None
    except ModelError:
        return False


def _midas_advice(config) -> str:
    return (
        f"depth model {config.depth_model} not available offline: using landmark depth; "
        f"run 'face3d-mesh models download {config.depth_model}' or pass --weights PATH "
        "for neural depth"
    )


def _neural_depth(aligned, mask, reference, *, backend, config):
    try:
        from . import fuse_relative_depth
    except ImportError as exc:
        raise ModelError(f"neural depth is not available in this build ({exc})") from None
    estimator = _cached_estimator(config.depth_model, config.weights, config.device)
    relative = estimator.predict(aligned.image)
    depth, info = fuse_relative_depth(
        relative, reference, mask, low_frequency_correction=(backend == "fused")
    )
    info = dict(info) if isinstance(info, dict) else dict(vars(info))
    info["backend"] = backend
    info["model"] = config.depth_model
    return depth, info


_ESTIMATORS: dict = {}


def _cached_estimator(name, weights, device):
    # A model is loaded once per process and reused (weights are large).
    from . import load_estimator

    key = (name, None if weights is None else str(weights), device)
    if key not in _ESTIMATORS:
        _ESTIMATORS[key] = load_estimator(name, weights=weights, device=device)
    return _ESTIMATORS[key]

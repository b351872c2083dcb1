"""Depth estimation: neural depth networks, their weights, and fusion with landmark depth.

Light module: importing it does not import torch or timm; the public functions are loaded
on first use.

Public API
----------
create_model(name, weights=None) -> torch.nn.Module
    A registered network, randomly initialised or with a checkpoint loaded strictly.
load_estimator(name, weights=None, device="cpu", *, precision="float32", download=False)
    An object whose ``predict(rgb)`` gives relative inverse depth (larger = closer) at the
    photo's size.
list_models() -> list of ModelInfo
download_weights(name, *, progress=True) -> pathlib.Path
cached_weights_path(name) -> pathlib.Path or None
fuse_relative_depth(relative_inverse_depth, reference_depth_mm, mask, ...) -> (depth_mm, info)
MODEL_NAMES
    The registry names.
"""

from __future__ import annotations

import importlib

__all__ = [
    "MODEL_NAMES",
    "create_model",
    "load_estimator",
    "list_models",
    "download_weights",
    "cached_weights_path",
    "fuse_relative_depth",
    "DepthEstimator",
    "ModelInfo",
    "FusionInfo",
]

_LAZY = {
    "MODEL_NAMES": "._registry",
    "create_model": "._estimator",
    "load_estimator": "._estimator",
    "list_models": "._weights",
    "download_weights": "._weights",
    "cached_weights_path": "._weights",
    "fuse_relative_depth": "._fusion",
    "DepthEstimator": "._estimator",
    "ModelInfo": "._weights",
    "FusionInfo": "._fusion",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

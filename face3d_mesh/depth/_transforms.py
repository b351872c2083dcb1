"""Pre- and post-processing exactly as the reference pipelines do it.

MiDaS (``midas/transforms.py`` + ``run.py``) and Depth-Anything-V2 (``util/transform.py``):
RGB uint8 -> float64 in [0, 1] -> resize keeping the aspect ratio to a multiple of 32
(14 for DINOv2) with ``cv2.INTER_CUBIC`` on the float image -> ``(x - mean) / std`` in
float64 -> CHW float32. The prediction goes back to the photo size with bicubic
(align_corners=False, MiDaS) or bilinear (align_corners=True, Depth-Anything-V2)
interpolation.

This module imports torch lazily (only :func:`resize_prediction` needs it).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import ImageError

__all__ = ["network_input_size", "preprocess", "resize_prediction", "check_rgb"]


def _constrain(x: float, multiple: int, *, min_val: int = 0, max_val: int | None = None) -> int:
    y = int(np.round(x / multiple) * multiple)
    if max_val is not None and y > max_val:
        y = int(math.floor(x / multiple) * multiple)
    if y < min_val:
        y = int(math.ceil(x / multiple) * multiple)
    return y


def network_input_size(
    width: int, height: int, *, target: int, multiple_of: int, mode: str
) -> tuple[int, int]:
    """Network input size for a ``width x height`` photo, as the reference ``Resize`` does it.

    Parameters
    ----------
    width, height : int
        Photo size in pixels.
    target : int
        The model's input size (256, 384, 512 or 518).
    multiple_of : int
        Sides are rounded to multiples of this (32, or 14 for DINOv2).
    mode : {"upper_bound", "minimal", "lower_bound"}
        ``upper_bound``: fit inside ``target x target``; ``lower_bound``: both sides at least
        ``target``; ``minimal``: scale by whichever of the two side ratios is closer to 1.

    Returns
    -------
    (int, int)
        ``(new_width, new_height)``; e.g. 640x480 -> 256x192 (upper_bound, 256),
        512x384 (minimal, 384), 672x512 (minimal, 512), 686x518 (lower_bound, 518, 14).
    """
    scale_h = target / height
    scale_w = target / width
    if mode == "lower_bound":
        scale_h = scale_w = max(scale_w, scale_h)
        new_h = _constrain(scale_h * height, multiple_of, min_val=target)
        new_w = _constrain(scale_w * width, multiple_of, min_val=target)
    elif mode == "upper_bound":
        scale_h = scale_w = min(scale_w, scale_h)
        new_h = _constrain(scale_h * height, multiple_of, max_val=target)
        new_w = _constrain(scale_w * width, multiple_of, max_val=target)
    elif mode == "minimal":
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
        new_h = _constrain(scale_h * height, multiple_of)
        new_w = _constrain(scale_w * width, multiple_of)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    return new_w, new_h


def check_rgb(rgb) -> np.ndarray:
    """Validate an ``H x W x 3`` uint8 RGB image; raises ImageError otherwise."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ImageError(
            f"expected an H x W x 3 uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ImageError(f"image too small: {arr.shape[1]}x{arr.shape[0]} pixels")
    return arr


def preprocess(rgb: np.ndarray, spec) -> np.ndarray:
    """Photo -> network input.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    spec : ModelSpec
        Gives ``input_size``, ``multiple_of``, ``resize_mode``, ``mean``, ``std``.

    Returns
    -------
    numpy.ndarray
        ``(3, h, w)`` float32, normalised, ``(w, h)`` from :func:`network_input_size`.
    """
    rgb = check_rgb(rgb)
    img = rgb / 255.0  # float64, as the references
    w, h = network_input_size(
        img.shape[1],
        img.shape[0],
        target=spec.input_size,
        multiple_of=spec.multiple_of,
        mode=spec.resize_mode,
    )
    if w < spec.multiple_of or h < spec.multiple_of:
        raise ImageError(
            f"image of {rgb.shape[1]}x{rgb.shape[0]} pixels has too extreme an aspect ratio "
            f"for {spec.name} (network input would be {w}x{h})"
        )
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    img = (img - np.asarray(spec.mean)) / np.asarray(spec.std)
    return np.ascontiguousarray(np.transpose(img, (2, 0, 1))).astype(np.float32)


def resize_prediction(pred, out_hw: tuple[int, int], mode: str):
    """Network output ``(B, h, w)`` tensor -> ``(B, H, W)`` float32 tensor at the photo size.

    ``mode`` is ``"bicubic"`` (align_corners=False, MiDaS) or ``"bilinear_ac"`` (bilinear,
    align_corners=True, Depth-Anything-V2).
    """
    import torch.nn.functional as F

    x = pred.float().unsqueeze(1)
    if mode == "bicubic":
        x = F.interpolate(x, size=tuple(out_hw), mode="bicubic", align_corners=False)
    elif mode == "bilinear_ac":
        x = F.interpolate(x, size=tuple(out_hw), mode="bilinear", align_corners=True)
    else:
        raise ValueError(f"unknown output resize mode {mode!r}")
    return x.squeeze(1)

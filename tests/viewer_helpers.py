"""Shared helpers of the viewer tests (imported by test_viewer*.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fake_reconstruction import make_fake_reconstruction  # noqa: E402

__all__ = ["make_fake_reconstruction", "luminance", "world_to_pixel", "headless_env"]


def luminance(img: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB uint8 image, float 0..255."""
    img = np.asarray(img, np.float64)[..., :3]
    return img @ np.array([0.299, 0.587, 0.114])


def world_to_pixel(renderer, point, window_height) -> tuple[int, int]:
    """Screenshot (row, col) of a world point seen by ``renderer``."""
    renderer.SetWorldPoint(float(point[0]), float(point[1]), float(point[2]), 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    return int(round(window_height - 1 - y)), int(round(x))


def headless_env():
    """Environment without any display, for the no-display tests."""
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env

"""Shared fixtures: the sample photos and one reconstruction of each, made once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"
ASTRONAUT = SAMPLES / "astronaut.png"
HEAD_SCAN = SAMPLES / "lps_head_scan_studio.png"
FIDELITY = ROOT.parent / "shared" / "fidelity"


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return ASTRONAUT


@pytest.fixture(scope="session")
def head_scan_path() -> Path:
    return HEAD_SCAN


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from face3d_mesh.image import load_image

    return load_image(ASTRONAUT)


@pytest.fixture(scope="session")
def astronaut_rec():
    import face3d_mesh

    return face3d_mesh.reconstruct(ASTRONAUT, depth="landmarks")


@pytest.fixture(scope="session")
def head_scan_rec():
    import face3d_mesh

    return face3d_mesh.reconstruct(HEAD_SCAN, depth="landmarks")


@pytest.fixture()
def clean_env(tmp_path):
    """Environment for CLI subprocesses: no weights cache, no display."""
    env = dict(os.environ)
    env["TORCH_HOME"] = str(tmp_path / "torch_home")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env

"""What must happen before VTK opens an OpenGL context in this process.

Mesa's software renderer (what off-screen VTK and Xvfb use without a GPU) loads its own
LLVM; triton, which torch imports with the neural depth models, bundles another. Loading
triton *after* Mesa's LLVM crashes the process (segmentation fault) the next time torch is
imported; loaded in the other order they coexist. Every place in this project that renders
with VTK (the viewer, the scan-render script) calls :func:`load_triton_before_opengl`
first.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["load_triton_before_opengl"]


def load_triton_before_opengl() -> None:
    """Import triton, if it is installed, so that a later ``import torch`` cannot crash.

    Costs ~0.25 s the first time; nothing without triton, or once it is loaded. A broken
    triton is ignored: rendering must not fail for it.
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    try:
        import triton  # noqa: F401
    except Exception:  # a broken triton must not stop rendering
        pass

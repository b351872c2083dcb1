"""Thread limits for small numerical work.

OpenBLAS splits even a 150×150 solve across its threads; on a busy machine the threads'
hand-offs cost more than the work (a face-model fit took 5× longer with two threads than
with one on the 2-core development machine). :func:`single_threaded_blas` runs a block
with one BLAS thread (``threadpoolctl``), leaving the rest of the process as it was.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

__all__ = ["single_threaded_blas"]


@lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return ThreadpoolController()


def single_threaded_blas():
    """A context manager: numpy's BLAS uses one thread inside it."""
    controller = _controller()
    if controller is None:  # pragma: no cover
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")

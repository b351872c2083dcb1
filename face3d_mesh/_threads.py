"""Thread limits for small numerical work.

OpenBLAS splits even a 150×150 solve across its threads; on a busy machine the threads'
hand-offs cost more than the work (a face-model fit took 5× longer with two threads than
with one on the 2-core development machine). Worse, after each such call its idle
threads spin for a while before they sleep, taking a core from whatever runs next: on
that machine a 1024² photo's stages after the landmarks spent 35–50 ms of system time
each in those spinning threads (rusage), against none with one BLAS thread.
:func:`single_threaded_blas` runs a block with one BLAS thread (``threadpoolctl``),
leaving the rest of the process as it was; :func:`one_blas_thread` does the same for a
function (the pipeline's stages). The setting is the process's: calls from several
threads at once (two web sessions) may restore it in another order than they set it, which
at worst leaves BLAS on one thread. torch's own threads (OpenMP, its bundled BLAS) are not
touched, so a depth network inside a stage keeps them.
"""

from __future__ import annotations

import functools
import sys

__all__ = ["one_blas_thread", "single_threaded_blas"]


@functools.lru_cache(maxsize=1)
def _controller(modules_loaded: int):
    # A declared dependency, imported here so that `import face3d_mesh` stays light. (It
    # once was missing from the dependencies and the limits silently did nothing.)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas():
    """A context manager: every BLAS library loaded (numpy's, SciPy's, OpenCV's...) uses
    one thread inside it."""
    # The controller knows the libraries loaded when it was made; SciPy and OpenCV each
    # bring their own OpenBLAS when first imported, so it is made again (~2 ms) after any
    # new import: a few times in a process's first reconstruction, then never.
    return _controller(len(sys.modules)).limit(limits=1, user_api="blas")


def one_blas_thread(func):
    """Decorator: ``func`` runs inside :func:`single_threaded_blas` (nested calls are fine)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return func(*args, **kwargs)

    return wrapper

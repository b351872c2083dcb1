"""Errors raised by face3d_mesh, each with the CLI exit code it maps to.

Every error the package raises on bad input is a :class:`Face3DError`; its message is one
line meant for a person, and the command-line interface prints it without a traceback.

Exit codes (also in the README):

==== ==========================================================
0    success
1    unexpected internal error (a bug: please report it)
2    bad command line (unknown option, invalid value)
3    input image unusable (missing, not an image, truncated, too large)
4    no face found (or ``--face N`` out of range)
5    depth model or weights unavailable
6    output could not be written
7    ``batch`` finished, but some inputs failed (see its summary)
130  interrupted (Ctrl-C)
==== ==========================================================
"""

from __future__ import annotations

__all__ = [
    "Face3DError",
    "UsageError",
    "ImageError",
    "NoFaceError",
    "ModelError",
    "OutputError",
]


class Face3DError(Exception):
    """Base class of the package's errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(Face3DError, ValueError):
    """An option or argument has an invalid value."""

    exit_code = 2


class ImageError(Face3DError):
    """The input is not a usable image (missing, unreadable, truncated, too large...)."""

    exit_code = 3


class NoFaceError(Face3DError):
    """No face was found in the image, or the requested face index does not exist."""

    exit_code = 4


class ModelError(Face3DError):
    """A depth model is unknown, or its weights are missing, corrupt or cannot be fetched."""

    exit_code = 5


class OutputError(Face3DError):
    """An output file could not be written (bad extension, unwritable folder...)."""

    exit_code = 6

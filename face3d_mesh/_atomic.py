"""Atomic file writing: a temporary file in the target folder, renamed into place.

A failure (an exception, a full disk, Ctrl-C) never leaves a partial file and never
clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_paths", "check_writable"]


def check_writable(path) -> Path:
    """Return ``path`` as a Path after checking its folder exists and is writable."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: folder {folder} is not writable")
    return path


@contextlib.contextmanager
def atomic_paths(*paths):
    """Yield temporary paths, one per target; on success rename each onto its target.

    Parameters
    ----------
    *paths : str or os.PathLike
        Final file names. Their folders must exist.

    Yields
    ------
    list of pathlib.Path
        Temporary files (same folders, hidden names) to write to.
    """
    targets = [check_writable(p) for p in paths]
    temps = []
    try:
        for target in targets:
            fd, name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".part", dir=target.parent or "."
            )
            os.close(fd)
            temps.append(Path(name))
        yield temps
        mode = 0o666 & ~_umask()
        for temp, target in zip(temps, targets, strict=True):
            os.chmod(temp, mode)  # mkstemp makes 0600 files; give them the usual mode
            os.replace(temp, target)
    except OSError as exc:
        raise OutputError(f"cannot write {targets[0]}: {exc.strerror or exc}") from None
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current

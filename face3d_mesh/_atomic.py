"""Atomic file writing: temporary files in the target folder, renamed into place.

A failure (an exception, a full disk, Ctrl-C) never leaves a partial file and never
clobbers an existing one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import OutputError

__all__ = ["write_atomically", "check_writable", "refuse_to_overwrite"]


def refuse_to_overwrite(source, outputs) -> None:
    """Raise :class:`OutputError` when one of ``outputs`` is the file ``source`` (the input
    photo): `depth photo.png -o photo.png` replaced the photo with its depth map."""
    source = Path(source)
    if not source.is_file():
        return
    for out in map(Path, outputs):
        if out.exists() and os.path.samefile(out, source):
            raise OutputError(f"{out}: is the input photo; choose another output name")


def check_writable(path) -> Path:
    """Return ``path`` as a Path after checking its folder exists and it is no folder."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        if folder.exists():
            raise OutputError(f"cannot write {path}: {folder} is a file, not a folder")
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    return path


def write_atomically(files: dict) -> None:
    """Write every ``{path: bytes}`` item via temp file + ``os.replace``; all or nothing.

    Parameters
    ----------
    files : dict of pathlib.Path to bytes
        Contents of each file, in the order they are put in place (main file last).

    All temporary files are written first; then they are moved in place in order.  If a move
    fails, files already replaced are restored from hard-link backups (where the file system
    allows them) and new ones removed.  Temporary files never outlive the call.
    """
    temps: dict[Path, Path] = {}
    backups: dict[Path, Path] = {}
    placed: list[Path] = []
    current = next(iter(files))
    try:
        for target, data in files.items():
            current = target
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            temps[target] = tmp
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        for target, tmp in temps.items():
            current = target
            if len(files) > 1 and target.exists():
                bak = target.with_name(f".{target.name}.{secrets.token_hex(6)}.bak")
                try:
                    os.link(target, bak)
                    backups[target] = bak
                except OSError:
                    pass
            os.replace(tmp, target)
            placed.append(target)
    except BaseException as err:
        for target in placed:
            try:
                if target in backups:
                    os.replace(backups.pop(target), target)
                else:
                    os.unlink(target)
            except OSError:
                pass
        if isinstance(err, OSError):
            reason = err.strerror or type(err).__name__
            raise OutputError(f"cannot write {current}: {reason}") from None
        raise
    finally:
        for tmp in temps.values():
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError:
                pass
        for bak in backups.values():
            try:
                os.unlink(bak)
            except OSError:
                pass

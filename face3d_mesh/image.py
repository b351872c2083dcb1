"""Loading photos safely.

:func:`load_image` turns a file (JPEG, PNG, WebP, BMP, TIFF) or an array into an
H×W×3 ``uint8`` RGB array with the EXIF orientation applied. Grayscale, RGBA, palette,
16-bit and CMYK inputs are converted; anything that is not a usable image raises
:class:`~face3d_mesh.errors.ImageError` with a one-line message. :func:`load_photo` also
returns the focal length the file's EXIF gives, read in the same pass (a PNG's EXIF may
follow its pixels, so reading it separately would decode the file a second time).

Pixel coordinates everywhere in the package are ``(u, v) = (column, row)`` of this array,
with the centre of the top-left pixel at ``(0, 0)``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import ImageError

__all__ = [
    "load_image",
    "load_photo",
    "Photo",
    "exif_focal_length_px",
    "SUPPORTED_FORMATS",
    "DEFAULT_MAX_PIXELS",
]

#: Pillow format names accepted by :func:`load_image`.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO")

#: Default pixel-count limit (decompression-bomb guard): 100 megapixels.
DEFAULT_MAX_PIXELS = 100_000_000

_MIN_SIDE_PX = 16


class Photo(NamedTuple):
    """A loaded photo: ``rgb`` (H×W×3 ``uint8``, EXIF orientation applied) and
    ``focal_length_px`` (float or None, see :func:`exif_focal_length_px`)."""

    rgb: np.ndarray
    focal_length_px: float | None


def load_photo(source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Load a photo as :func:`load_image` does, with its EXIF focal length in pixels.

    The file is opened and decoded once. An array source has no focal length (None).
    """
    if isinstance(source, np.ndarray):
        return Photo(_from_array(source, max_pixels=max_pixels), None)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(
            f"expected a file path or an H×W×3 uint8 array, got {type(source).__name__}"
        )
    return _from_file(Path(source), max_pixels=max_pixels)


def load_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load a photo as an RGB array, EXIF orientation applied.

    Parameters
    ----------
    source : str, os.PathLike or numpy.ndarray
        Path to a JPEG, PNG, WebP, BMP or TIFF file, or an array: H×W (gray),
        H×W×3 (RGB) or H×W×4 (RGBA), dtype ``uint8`` or ``uint16``.
    max_pixels : int, keyword-only
        Images with more pixels than this are refused before being decoded
        (protection against decompression bombs).

    Returns
    -------
    numpy.ndarray
        H×W×3 ``uint8`` RGB, C-contiguous; a new array (the input is never modified).
        Transparent pixels are composited onto white; 16-bit data is scaled to 8 bits.

    Raises
    ------
    ImageError
        Missing file, not an image, truncated or empty file, unsupported format,
        too many pixels, or an array of the wrong shape or dtype.
    """
    return load_photo(source, max_pixels=max_pixels).rgb


def _from_file(path: Path, *, max_pixels: int) -> Photo:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty")
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's own warning would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format or "unknown"
                if fmt not in SUPPORTED_FORMATS:
                    raise ImageError(
                        f"{path}: unsupported image format {fmt}; use JPEG, PNG, WebP, BMP or TIFF"
                    )
                width, height = img.size
                _check_size(path, width, height, max_pixels)
                img.load()
                exif = _exif_or_none(img)  # pixels decoded: a PNG's EXIF is read now
                rgb = _to_rgb(ImageOps.exif_transpose(img))
                focal = None if exif is None else _focal_from_exif(exif, rgb.shape[:2])
                return Photo(rgb, focal)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or an unknown format)") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"{path}: image has too many pixels (more than {max_pixels / 1e6:.0f} megapixels)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"{path}: cannot decode image ({reason})") from None


def _check_size(name, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: image has {width}×{height} = {width * height / 1e6:.0f} megapixels, "
            f"more than the limit of {max_pixels / 1e6:.0f}"
        )
    if min(width, height) < _MIN_SIDE_PX:
        raise ImageError(f"{name}: image is too small ({width}×{height} pixels)")


def _to_rgb(img) -> np.ndarray:
    """Convert any Pillow mode to H×W×3 uint8 RGB."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grayscale: Pillow's convert("L") clips instead of scaling.
        data = np.asarray(img, dtype=np.float64)
        top = 65535.0 if data.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(np.rint(data * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        rgb = rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _from_array(array: np.ndarray, *, max_pixels: int) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(f"image array must be H×W, H×W×3 or H×W×4, got shape {tuple(array.shape)}")
    height, width = array.shape[:2]
    _check_size("image array", width, height, max_pixels)
    if array.dtype == np.uint16:
        array = np.rint(array.astype(np.float32) / 257.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"image array must be uint8 (or uint16), got {array.dtype}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        rgb = array[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        array = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.array(array, dtype=np.uint8, order="C", copy=True)


_EXIF_IFD = 0x8769
_FOCAL_35MM_TAG = 0xA405
_PIXEL_X_TAG = 0xA002
_PIXEL_Y_TAG = 0xA003
#: The diagonal of a 36 × 24 mm frame: 35 mm-equivalent focal lengths match diagonals.
FULL_FRAME_DIAGONAL_MM = 43.267


def exif_focal_length_px(path, shape: tuple[int, int]) -> float | None:
    """Focal length in pixels from a photo's EXIF ``FocalLengthIn35mmFilm`` tag.

    Parameters
    ----------
    path : str or os.PathLike
        The photo file.
    shape : tuple of int
        (H, W) of the loaded (EXIF-oriented) image.

    Returns
    -------
    float or None
        ``f35 · diagonal_px / 43.27 mm`` (the 35 mm equivalent matches diagonals), or None
        when the tag is missing or unreadable, or when the EXIF pixel size shows the photo
        was cropped since it was taken (its centre is then no longer the optical axis). A
        photo that was only resized keeps its focal length, scaled.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            exif = _exif_or_none(img)
    except (OSError, ValueError, SyntaxError):
        return None
    return None if exif is None else _focal_from_exif(exif, shape)


def _exif_or_none(img):
    """The image's EXIF (Pillow ``Image.Exif``), or None when it cannot be read."""
    try:
        return img.getexif()
    except (OSError, ValueError, SyntaxError):
        return None


def _focal_from_exif(exif, shape: tuple[int, int]) -> float | None:
    """:func:`exif_focal_length_px` from already-read EXIF."""
    try:
        sub = exif.get_ifd(_EXIF_IFD)
        value = sub.get(_FOCAL_35MM_TAG) or exif.get(_FOCAL_35MM_TAG)
        original = (sub.get(_PIXEL_X_TAG), sub.get(_PIXEL_Y_TAG))
    except (OSError, ValueError, SyntaxError):
        return None
    try:
        f35 = float(value)
    except (TypeError, ValueError):
        return None
    if not 5.0 <= f35 <= 2000.0:
        return None
    height, width = int(shape[0]), int(shape[1])
    if all(isinstance(v, int) and v > 0 for v in original):
        long_side, short_side = max(original), min(original)
        if abs(long_side / short_side - max(width, height) / min(width, height)) > 0.01:
            return None  # cropped: the principal point is unknown
    return f35 * float(np.hypot(height, width)) / FULL_FRAME_DIAGONAL_MM

"""Pictures and words shared by the front-ends: the photo with landmarks and mask, the
depth map, the camera a reconstruction assumed.

The viewer, the web app and the ``depth`` command draw these from one place, so a depth
map looks the same wherever it is shown or saved (lighter = closer, black background).
Only numpy at import time; OpenCV is imported when a picture is drawn.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "annotate_photo",
    "describe_camera",
    "depth_preview",
    "depth_to_gray",
    "face_box",
    "fit_size",
    "png_bytes",
]

_OUTLINE = (255, 220, 0)  # the face-mask outline and the chosen face's frame (RGB)
_OTHER_FACE = (255, 255, 255)


def face_box(shape, mask=None, landmarks=None, margin=0.35):
    """Photo-pixel box (u0, v0, u1, v1) around the face, with ``margin`` of its size added.

    Parameters
    ----------
    shape : tuple
        Shape of the photo.
    mask : ndarray or None
        H×W bool face region (preferred).
    landmarks : ndarray or None
        (N, 2+) landmarks in pixels, used when there is no mask.
    margin : float
        Fraction of the face's size added on every side.

    Returns
    -------
    tuple of int
        The box, clipped to the photo; the whole photo when there is no face.
    """
    h, w = shape[:2]
    if mask is not None and np.any(mask):
        rows, cols = np.nonzero(mask)
        fu0, fu1, fv0, fv1 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
    elif landmarks is not None and len(landmarks):
        lm = np.asarray(landmarks)[:, :2]
        fu0, fv0 = np.floor(np.nanmin(lm, axis=0))
        fu1, fv1 = np.ceil(np.nanmax(lm, axis=0)) + 1
    else:
        return 0, 0, w, h
    side = max(fu1 - fu0, fv1 - fv0) * (1 + 2 * margin)
    cu, cv = 0.5 * (fu0 + fu1), 0.5 * (fv0 + fv1)
    u0, u1 = int(max(0, np.floor(cu - side / 2))), int(min(w, np.ceil(cu + side / 2)))
    v0, v1 = int(max(0, np.floor(cv - side / 2))), int(min(h, np.ceil(cv + side / 2)))
    return u0, v0, u1, v1


def annotate_photo(
    image, landmarks=None, mask=None, max_side=900, box=None, *, faces=None, selected=0
) -> np.ndarray:
    """The photo with the face-mask outline and the landmarks drawn on it.

    Parameters
    ----------
    image : ndarray
        H×W×3 uint8 RGB.
    landmarks : ndarray or None
        (N, 2+) landmark positions in pixels of ``image``.
    mask : ndarray or None
        H×W bool face region.
    max_side : int
        The result is resized (up or down) so that its long side is about this many pixels,
        so that the overlay stays crisp on small photos and light on large ones.
    box : tuple of int or None
        Crop (u0, v0, u1, v1) of the photo to draw; default the whole photo.
    faces : sequence of tuple or None, keyword-only
        Boxes (x0, y0, x1, y1) in pixels of ``image`` of every face found; when there are
        several, each gets a frame and its number (1 = the first box), so that a person
        can pick one.
    selected : int, keyword-only
        Index in ``faces`` of the chosen face, framed in the outline's colour.

    Returns
    -------
    ndarray
        RGB uint8 image.
    """
    import cv2

    u0, v0, u1, v1 = box if box is not None else (0, 0, image.shape[1], image.shape[0])
    img = np.ascontiguousarray(image[v0:v1, u0:u1, :3], dtype=np.uint8)
    if mask is not None:
        mask = np.asarray(mask)[v0:v1, u0:u1]
    if landmarks is not None:
        landmarks = np.asarray(landmarks, np.float64)[:, :2] - (u0, v0)
    h, w = img.shape[:2]
    f = max_side / max(h, w)
    if abs(f - 1) > 0.05:
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
        img = cv2.resize(img, (round(w * f), round(h * f)), interpolation=interp)
    else:
        f = 1.0
    thick = max(1, round(img.shape[0] / 450))
    if mask is not None and np.any(mask):
        m = cv2.resize(
            mask.astype(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST
        )
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, contours, -1, _OUTLINE, thick + 1, cv2.LINE_AA)
    if landmarks is not None and len(landmarks):
        r = max(1, round(img.shape[0] / 400))
        for x, y in np.asarray(landmarks)[:, :2] * f:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(
                    img,
                    (round(x * 4), round(y * 4)),
                    r * 4,
                    (0, 255, 160),
                    -1,
                    cv2.LINE_AA,
                    shift=2,
                )
    if faces is not None and len(faces) > 1:
        _number_faces(img, faces, selected, offset=(u0, v0), factor=f)
    return img


def _number_faces(img, faces, selected, *, offset, factor) -> None:
    """Draw a frame and a number label on each face box, in place (``img`` is RGB)."""
    import cv2

    thick = max(2, round(img.shape[0] / 300))
    font_scale = max(0.6, img.shape[0] / 700)
    for index, (x0, y0, x1, y1) in enumerate(faces):
        colour = _OUTLINE if index == selected else _OTHER_FACE
        p0 = (round((x0 - offset[0]) * factor), round((y0 - offset[1]) * factor))
        p1 = (round((x1 - offset[0]) * factor), round((y1 - offset[1]) * factor))
        cv2.rectangle(img, p0, p1, colour, thick, cv2.LINE_AA)
        label = str(index + 1)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        pad = thick * 2
        top = max(0, p0[1] - th - base - 2 * pad)
        cv2.rectangle(img, (p0[0], top), (p0[0] + tw + 2 * pad, top + th + base + 2 * pad),
                      colour, -1)  # fmt: skip
        cv2.putText(img, label, (p0[0] + pad, top + pad + th), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (0, 0, 0), thick, cv2.LINE_AA)  # fmt: skip


def fit_size(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` shrunk (area averaging) so that its long side is at most ``max_side`` px.

    Parameters
    ----------
    image : numpy.ndarray
        H×W or H×W×C uint8 image.
    max_side : int
        Largest side wanted, pixels.

    Returns
    -------
    numpy.ndarray
        ``image`` itself when it is small enough, otherwise a resized copy.
    """
    import cv2

    h, w = image.shape[:2]
    f = max_side / max(h, w)
    if f >= 1:
        return image
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)


def depth_to_gray(depth_mm: np.ndarray, *, bits: int = 8) -> np.ndarray:
    """Depth map as a grayscale image: lighter = closer, background black.

    Parameters
    ----------
    depth_mm : numpy.ndarray
        H×W float depth, mm, larger = farther, NaN outside the face.
    bits : {8, 16}, keyword-only
        Output depth.

    Returns
    -------
    numpy.ndarray
        H×W uint8 (or uint16): 0 where ``depth_mm`` is NaN; inside the face the farthest
        point maps to 1 and the nearest to the maximum (255 or 65535), linearly in depth.
    """
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    depth = np.asarray(depth_mm, dtype=np.float64)
    valid = np.isfinite(depth)
    out = np.zeros(depth.shape, dtype=dtype)
    if not valid.any():
        return out
    near, far = depth[valid].min(), depth[valid].max()
    span = far - near if far > near else 1.0
    out[valid] = np.rint(1 + (top - 1) * (far - depth[valid]) / span).astype(dtype)
    return out


def depth_preview(depth_mm, *, mask=None) -> tuple[np.ndarray, float]:
    """The depth map as an RGB picture (the ``depth`` command's PNG) and its depth span.

    Parameters
    ----------
    depth_mm : numpy.ndarray
        H×W float depth, mm, larger = farther, NaN outside the face.
    mask : numpy.ndarray or None, keyword-only
        H×W bool; pixels outside it are black too.

    Returns
    -------
    rgb : numpy.ndarray
        H×W×3 uint8, the grey levels of :func:`depth_to_gray` (8-bit) in three channels.
    span_mm : float
        Depth from the nearest (white) to the farthest (darkest) face pixel, mm.
    """
    depth = np.asarray(depth_mm, dtype=np.float64)
    if mask is not None:
        depth = np.where(np.asarray(mask, bool), depth, np.nan)
    gray = depth_to_gray(depth)
    valid = np.isfinite(depth)
    span = float(np.ptp(depth[valid])) if valid.any() else 0.0
    return np.repeat(gray[..., None], 3, axis=2), span


def png_bytes(image: np.ndarray) -> bytes:
    """PNG-encode an H×W (gray, uint8/uint16) or H×W×3 (RGB uint8) image.

    Raises
    ------
    OutputError
        If OpenCV cannot encode the image.
    """
    import cv2

    from .errors import OutputError

    img = np.ascontiguousarray(image)
    if img.ndim == 3:
        img = np.ascontiguousarray(img[..., 2::-1])  # OpenCV writes BGR
    ok, encoded = cv2.imencode(".png", img)
    if not ok:
        raise OutputError("PNG encoding failed")
    return encoded.tobytes()


def describe_camera(camera: dict) -> str:
    """One line on the camera a reconstruction assumed, for people.

    Parameters
    ----------
    camera : dict
        ``rec.camera``, or any dict with its keys ``focal_px`` (the photo's focal length in
        pixels; None: not known yet, it will be guessed), ``focal_source`` (``"exif"``,
        ``"user"`` or ``"default"``, a guess) and ``image_size_px`` (W, H).

    Returns
    -------
    str
        E.g. ``"26 mm-equivalent lens (1098 px), from the photo's EXIF"`` (equivalent as
        EXIF's FocalLengthIn35mmFilm: by the diagonal).
    """
    from .image import FULL_FRAME_DIAGONAL_MM

    focal_px, source = camera.get("focal_px"), camera.get("focal_source")
    if focal_px is None:
        return "no focal length in the photo's EXIF: a lens will be guessed"
    width, height = (int(v) for v in camera["image_size_px"])
    equivalent = float(focal_px) * FULL_FRAME_DIAGONAL_MM / float(np.hypot(width, height))
    lens = f"{equivalent:.0f} mm-equivalent lens ({float(focal_px):.0f} px)"
    if source == "exif":
        return f"{lens}, from the photo's EXIF"
    if source == "user":
        return f"{lens}, as given"
    return f"focal length guessed, {float(focal_px):.0f} px (no focal length in the photo's EXIF)"

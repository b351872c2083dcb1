"""Face landmarks with MediaPipe face mesh (478 points, irises included).

:class:`LandmarkDetector` finds every face in a photo and returns, for each, the 478
MediaPipe face-mesh landmarks in the photo's pixel grid. Faces that fill only a small part
of a large photo are found by detecting face boxes first (MediaPipe's full-range BlazeFace
on a downscaled copy) and then running the face mesh on a crop around each box.

The face mesh's answer depends on the crop it is given by several pixels, most on the
forehead of a head tilted up or rolled (the box crop is neither upright nor tight, and the
first pass then places the top of the face oval low) and on the chin of a turned head. So
the mesh runs twice more on upright crops made from the first landmarks (rotated by the eye
line; 1.4 and 1.7 landmark-box sizes wide, around the 1.5 from which MediaPipe's own
tracking builds its next region of interest), and the landmarks are the mean of the passes
that found the same face (about 7 ms per pass on a 2-core CPU; ``refine=False`` skips them).
On 169 renders of a head scan (yaw ±35°, pitch ±20°, roll ±15°, 24–85 mm lenses) this
brought the worst part of the face oval of independent MediaPipe runs left outside our own
oval from 20 % to 9 % of its area (``scripts/bench_scale_coverage.py``).

Landmark coordinates: ``x, y`` in pixels of the input image (column, row; centre of the
top-left pixel is (0, 0)); ``z`` relative depth in the same pixel units, **larger = farther**
(MediaPipe's own convention: smaller = closer, origin near the head's centre). The
pipeline turns ``z`` into millimetres with the metric scale.

MediaPipe (and its TensorFlow Lite runtime) is imported only when a detector is first used.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import NoFaceError, UsageError

__all__ = [
    "FaceLandmarks",
    "LandmarkDetector",
    "detect_faces",
    "NUM_LANDMARKS",
    "FACE_OVAL",
    "face_mesh_triangles",
    "face_mesh_holes",
    "NOSE_TIP",
    "RIGHT_EYE_OUTER",
    "LEFT_EYE_OUTER",
]

NUM_LANDMARKS = 478

#: Landmark indices (the subject's right eye is on the image's left).
NOSE_TIP = 1
RIGHT_EYE_OUTER = 33
RIGHT_EYE_INNER = 133
LEFT_EYE_OUTER = 263
LEFT_EYE_INNER = 362
RIGHT_EYE_UPPER = 159
RIGHT_EYE_LOWER = 145
LEFT_EYE_UPPER = 386
LEFT_EYE_LOWER = 374
#: Iris landmarks (refine_landmarks=True): centre, then 4 points on the iris boundary
#: (image-right, top, image-left, bottom).
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)

#: The face oval as one closed loop of landmark indices (the outer boundary of the mesh).
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
    377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip

# Box detection runs on a copy whose long side is at most this (BlazeFace works at 192 px).
_DETECT_MAX_SIDE = 1280
# Tile pyramid for small faces: whole photo, then tiles of 1/2 and 1/4 of its long side.
_TILE_LEVELS = 3
_MIN_TILE_PX = 256
# The face mesh runs on a square crop this many face-box sizes wide, resampled to this.
_CROP_FACTOR = 2.0
_CROP_SIDE = 512
# The refining passes: upright crops these many landmark-box sizes wide (MediaPipe's
# tracking uses 1.5), the second mirrored (the face mesh run on the flipped crop, its
# landmarks flipped back and their left/right indices swapped), so that the network's own
# left/right biases cancel in part; a pass counts when its box overlaps the first pass's
# this much (IoU).
_REFINE_PASSES = ((1.4, False), (1.7, True))
_REFINE_MIN_IOU = 0.6
# How many times the refinement may replace a first pass that every refining pass
# contradicts (see LandmarkDetector._refined).
_RESEED_MAX = 2
# A face whose refining passes stray this far from it (median landmark distance over the
# face's size; a pass that finds no face counts as 1) is doubted: the photo is also tried
# turned by quarter turns (a photo taken sideways or upside down, without the EXIF tag
# that would turn it). On 156 upright renders at yaw up to ±45°, pitch ±25° and roll 30°
# the passes strayed at most 0.073; on upside-down and sideways photos whose face the
# mesh misread, 0.25 to 1.
_DOUBT_MAX = 0.15
# A photo with no face found is searched again in a grey frame this share of its long side
# wide (a face cropped so tightly that its forehead or chin is cut), and the face kept when
# at least this share of its landmarks lies in the photo.
_WIDER_FRAME = 0.25
_WIDER_FRAME_INSIDE = 0.6


@dataclass(frozen=True)
class FaceLandmarks:
    """The 478 face-mesh landmarks of one face.

    Attributes
    ----------
    points : numpy.ndarray
        (478, 3) float64: ``x, y`` in pixels of the image; ``z`` relative depth in pixel
        units, larger = farther.
    image_shape : tuple of int
        (H, W) of the image the points refer to.
    """

    points: np.ndarray
    image_shape: tuple[int, int]

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Bounding box ``(x0, y0, x1, y1)`` of the landmarks, pixels."""
        xy = self.points[:, :2]
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def size_px(self) -> float:
        """Geometric mean of the box's width and height, pixels."""
        x0, y0, x1, y1 = self.box
        return math.sqrt(max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6))

    @property
    def roll_deg(self) -> float:
        """In-plane rotation from the outer eye corners, degrees (positive = clockwise
        in the image, i.e. the head's top tilts to the image's right)."""
        right, left = self.points[RIGHT_EYE_OUTER], self.points[LEFT_EYE_OUTER]
        return math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))

    @property
    def yaw_deg(self) -> float:
        """Rough head yaw from the eye corners' depths, degrees (positive = nose toward the
        image's right)."""
        right, left = self.points[RIGHT_EYE_OUTER], self.points[LEFT_EYE_OUTER]
        horizontal = math.hypot(left[0] - right[0], left[1] - right[1])
        return math.degrees(math.atan2(left[2] - right[2], horizontal))

    def transformed(self, matrix: np.ndarray, *, shape: tuple[int, int]) -> FaceLandmarks:
        """Landmarks mapped through a 2×3 similarity ``matrix`` (z scaled alike)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        xy = self.points[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
        points = np.column_stack([xy, self.points[:, 2] * scale])
        return FaceLandmarks(points=points, image_shape=tuple(shape))


class LandmarkDetector:
    """MediaPipe face detection + face mesh, created once and reused across images.

    Parameters
    ----------
    max_faces : int, keyword-only
        At most this many faces are returned per image.
    min_confidence : float, keyword-only
        Minimum detection confidence (0..1).
    refine : bool, keyword-only
        Average the first landmarks with two face-mesh runs on upright crops around them
        (steadier face oval; the two run side by side on their own graphs, ~10 ms more
        per face on the 2-core development machine); False keeps the first pass only.

    Notes
    -----
    Thread-safe: calls are serialised by a lock (MediaPipe graphs are not re-entrant).
    Use :func:`detect_faces` for a process-wide shared detector.
    """

    def __init__(self, *, max_faces: int = 8, min_confidence: float = 0.5, refine: bool = True):
        if max_faces < 1:
            raise UsageError("max_faces must be at least 1")
        self.max_faces = int(max_faces)
        self.min_confidence = float(min_confidence)
        self.refine = bool(refine)
        self._lock = threading.Lock()
        self._box_detector = None
        self._mesh_single = None
        self._mesh_multi = None
        # The refining passes after the first run side by side, each on its own graph in
        # its own thread (MediaPipe releases the GIL while a graph runs): two passes took
        # 17 ms one after the other on the 2-core development machine, 10 ms together.
        self._pass_pool = None
        self._pass_meshes = ()

    # MediaPipe objects are built on first use so that creating a detector is cheap.
    def _ensure(self):
        if self._mesh_single is not None:
            return
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        solutions = mediapipe_solutions()
        face_detection, face_mesh = solutions.face_detection, solutions.face_mesh

        self._box_detector = face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.min_confidence
        )
        self._mesh_single = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=self.min_confidence,
        )
        self._mesh_multi = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=self.max_faces,
            refine_landmarks=True,
            min_detection_confidence=self.min_confidence,
        )
        if self.refine:
            from concurrent.futures import ThreadPoolExecutor

            extra = len(_REFINE_PASSES) - 1
            self._pass_pool = ThreadPoolExecutor(extra, thread_name_prefix="face3d-mesh-pass")
            # Built in the pool's threads, beside the first pass of the first photo.
            self._pass_meshes = tuple(
                self._pass_pool.submit(
                    face_mesh.FaceMesh,
                    static_image_mode=True,
                    max_num_faces=1,
                    refine_landmarks=True,
                    min_detection_confidence=self.min_confidence,
                )
                for _ in range(extra)
            )

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        with self._lock:
            if self._pass_pool is not None:
                self._pass_pool.shutdown(wait=True)
            passes = [future.result() for future in self._pass_meshes]
            for obj in (self._box_detector, self._mesh_single, self._mesh_multi, *passes):
                if obj is not None:
                    obj.close()
            self._box_detector = self._mesh_single = self._mesh_multi = None
            self._pass_pool, self._pass_meshes = None, ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def detect(self, image: np.ndarray, *, thorough: bool = False) -> list[FaceLandmarks]:
        """Find the faces in ``image``, largest first.

        With ``refine`` (the default), a face its refining passes stray far from, or none
        at all, has the photo searched turned too (taken sideways or upside down:
        :meth:`_turned_if_better`), and when that finds none either, in a wider frame (a
        face cropped so tightly that it is cut: :meth:`_in_a_wider_frame`).

        Parameters
        ----------
        image : numpy.ndarray
            H×W×3 uint8 RGB.
        thorough : bool, keyword-only
            Look for small faces at every tile level even when bigger faces were found
            (slower on big photos). The default finds the largest face quickly.

        Returns
        -------
        list of FaceLandmarks
            Possibly empty; sorted by face size, largest first.
        """
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UsageError("detect() needs an H×W×3 uint8 RGB image")
        with self._lock, _quiet_native_stderr():
            self._ensure()
            faces, doubt = self._find(image, thorough=thorough)
            # (the fallbacks need the refining passes: their agreement is the only guard
            # against a "face" the mesh draws on a turned or framed photo)
            if self.refine and doubt > _DOUBT_MAX:
                faces = self._turned_if_better(image, faces, doubt, thorough=thorough)
            if self.refine and not faces:
                faces = self._in_a_wider_frame(image)
        faces = _deduplicate(sorted(faces, key=lambda f: f.size_px, reverse=True))
        return faces[: self.max_faces]

    def _find(
        self, image, *, thorough: bool, levels: int = _TILE_LEVELS
    ) -> tuple[list[FaceLandmarks], float]:
        """The faces of ``image`` as it is, and the doubt about the largest one: how far
        its refining passes strayed from it (see :data:`_DOUBT_MAX`; 0 without
        refinement, infinite when no face was found). ``levels``: see :meth:`_boxes`."""
        boxes = self._boxes(image, thorough=thorough, levels=levels)
        faces = [self._mesh_on_crop(image, box) for box in boxes]
        faces = [f for f in faces if f is not None]
        if not faces:
            # No box found (e.g. a face cut by the border): let the mesh's own
            # detector look at the whole image.
            faces = self._mesh_whole(image)
        if not faces:
            return [], math.inf
        if not self.refine:
            return faces, 0.0
        refined = self._refine_all(image, faces)
        largest = max(refined, key=lambda pair: pair[0].size_px)
        return [face for face, _ in refined], largest[1]

    def _in_a_wider_frame(self, image) -> list[FaceLandmarks]:
        """The faces of a photo cropped so tightly round a face that its forehead or chin
        is cut: BlazeFace and the face mesh's own detector find none there, and do with a
        grey border of a quarter of the photo's long side round it. Kept when their passes
        agree (:data:`_DOUBT_MAX`) and most of the face lies in the photo; the landmarks
        beyond its edge stay (as for any face cut by the border)."""
        import cv2

        height, width = image.shape[:2]
        # On a copy at most _DETECT_MAX_SIDE long (a face that fills the frame has pixels
        # to spare; a 12 MP photo without a face took 1.9 s to reject at full size).
        small, factor = _downscale(image, _DETECT_MAX_SIDE)
        pad = max(1, round(_WIDER_FRAME * max(small.shape[:2])))
        framed = cv2.copyMakeBorder(
            small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128)
        )
        found, doubt = self._find(framed, thorough=False, levels=1)
        if not found or doubt > _DOUBT_MAX:
            return []
        back = np.array([[1.0, 0.0, -pad], [0.0, 1.0, -pad]]) / factor
        faces = [f.transformed(back, shape=(height, width)) for f in found]
        return [f for f in faces if _inside_share(f, (height, width)) >= _WIDER_FRAME_INSIDE]

    def _any_box(self, small) -> bool:
        """Whether the face detector (BlazeFace) finds a face in ``small`` (a copy at most
        _DETECT_MAX_SIDE long). The face mesh's own search is not asked: on a head turned
        80-90° from the camera it found a "face" in the photo turned a quarter, where the
        photo as it is had none (BlazeFace found a box on every photo turned upright,
        0.73-0.91, and none on those)."""
        return bool(self._detect_boxes(small))

    def _turned_if_better(self, image, faces, doubt: float, *, thorough: bool):
        """The faces found in ``image`` turned by the first quarter turn (a half turn,
        then a quarter either way) whose largest face is doubted less than ``doubt`` and
        within :data:`_DOUBT_MAX`, mapped back to ``image``'s pixels; otherwise
        ``faces``. The turned photos are searched whole, without the tiles for small faces
        (with them, a 12 MP photo without a face took 3.2 s to reject, against 0.8 s
        without any turn; now 0.95 s)."""
        small, _ = _downscale(image, _DETECT_MAX_SIDE)
        for turns in (2, 1, 3):
            if not self._any_box(np.ascontiguousarray(np.rot90(small, turns))):
                continue  # (a cheap look first: a 12 MP photo is 36 MB to turn)
            found, turned_doubt = self._find(
                np.ascontiguousarray(np.rot90(image, turns)), thorough=thorough, levels=1
            )
            if found and turned_doubt < min(doubt, _DOUBT_MAX):
                back = _quarter_turns_back(turns, image.shape[:2])
                return [f.transformed(back, shape=image.shape[:2]) for f in found]
        return faces

    def _boxes(self, image, *, thorough: bool, levels: int = _TILE_LEVELS):
        """Face boxes (x0, y0, x1, y1) in photo pixels, coarse to fine.

        BlazeFace sees its input at 192 px and misses faces under ~6 % of that input's
        side, so small faces in big photos are looked for in half-overlapping tiles of
        1/2 and 1/4 of the photo's long side (never smaller than _MIN_TILE_PX; ``levels``
        1: the whole photo only). The search stops at the first level that finds a face
        unless ``thorough``.
        """
        height, width = image.shape[:2]
        boxes: list[tuple[float, float, float, float, float]] = []
        side = max(height, width)
        for level in range(levels):
            tile = side if level == 0 else side / 2**level
            if level and tile < _MIN_TILE_PX:
                break
            for x, y in _tile_origins(width, height, tile):
                window = image[int(y) : int(y + tile), int(x) : int(x + tile)]
                for box in self._detect_boxes(window):
                    boxes.append(
                        (box[0] + int(x), box[1] + int(y), box[2] + int(x), box[3] + int(y), box[4])
                    )
            if boxes and not thorough:
                break
        # Tiles overlap: keep the most confident of boxes that are the same face.
        kept: list[tuple[float, float, float, float, float]] = []
        for box in sorted(boxes, key=lambda b: b[4], reverse=True):
            if all(_iou(box[:4], other[:4]) < 0.3 for other in kept):
                kept.append(box)
        return [box[:4] for box in kept]

    def _detect_boxes(self, window):
        small, factor = _downscale(window, _DETECT_MAX_SIDE)
        result = self._box_detector.process(np.ascontiguousarray(small))
        boxes = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            x0, y0 = rel.xmin * small.shape[1] / factor, rel.ymin * small.shape[0] / factor
            w, h = rel.width * small.shape[1] / factor, rel.height * small.shape[0] / factor
            if w > 4 and h > 4:
                boxes.append((x0, y0, x0 + w, y0 + h, float(det.score[0])))
        return boxes

    def _mesh_on_crop(self, image, box):
        x0, y0, x1, y1 = box
        side = _CROP_FACTOR * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        # Every crop is resampled to _CROP_SIDE: plenty for the mesh model (192 px input).
        scale = _CROP_SIDE / side
        out = _CROP_SIDE
        matrix = np.array([[scale, 0.0, out / 2 - scale * cx], [0.0, scale, out / 2 - scale * cy]])
        return self._mesh_through(image, matrix)

    def _mesh_through(
        self, image, matrix: np.ndarray, *, mirrored: bool = False, graph=None
    ) -> FaceLandmarks | None:
        """The face mesh on the square crop that the 2×3 similarity ``matrix`` maps the
        photo to (photo pixels -> crop pixels), mapped back to the photo; with
        ``mirrored`` run on the crop flipped left to right and flipped back. ``graph``:
        the single-face mesh graph to run (default: the detector's first one)."""
        import cv2

        # Edge replication outside the image keeps the mesh's detector from seeing a hard
        # black border.
        crop = cv2.warpAffine(
            image,
            matrix,
            (_CROP_SIDE, _CROP_SIDE),
            flags=cv2.INTER_AREA if np.linalg.det(matrix[:, :2]) < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if mirrored:
            crop = np.ascontiguousarray(crop[:, ::-1])
        faces = _mesh_points((graph or self._mesh_single).process(crop), crop.shape)
        if not faces:
            return None
        if mirrored:
            faces[0][:, 0] = (crop.shape[1] - 1) - faces[0][:, 0]
            faces[0] = faces[0][mirrored_landmark_order()]
        inverse = cv2.invertAffineTransform(matrix)
        return FaceLandmarks(points=faces[0], image_shape=image.shape[:2]).transformed(
            inverse, shape=image.shape[:2]
        )

    def _refine_all(self, image, faces: list[FaceLandmarks]) -> list[tuple[FaceLandmarks, float]]:
        """Each face refined (:meth:`_refined`), with how far its passes strayed. A face
        that no refining pass sees at all was likely not a face: on a head turned and
        tilted up, the whole photo's face
        detector found nothing, a half-photo tile found a "face" on the ear, the first
        pass drew one there and the wider crops around it held no face. Such faces give
        way to the face mesh's own search of the whole photo when that finds a face the
        others do not already hold; otherwise they stay, as before."""
        refined = [self._refined(image, face) for face in faces]
        kept = [(face, doubt) for face, seen, doubt in refined if seen]
        unseen = [(face, doubt) for face, seen, doubt in refined if not seen]
        if not unseen:
            return kept
        whole = [self._refined(image, face) for face in self._mesh_whole(image)]
        whole = [(face, doubt) for face, seen, doubt in whole if seen]
        whole = [
            (f, d) for f, d in whole if all(_iou(f.box, g.box) < _REFINE_MIN_IOU for g, _ in kept)
        ]
        return kept + (whole or unseen)

    def _refined(self, image, face: FaceLandmarks) -> tuple[FaceLandmarks, bool, float]:
        """The mean of ``face`` and of the face mesh run on upright crops around it.

        Passes that find no face, or a different one, are left out. When every pass
        disagrees with ``face`` but the passes agree with each other, ``face`` was the
        wrong one: the face detector's box can cover only part of a face (seen on a head
        turned and tilted up, the box on the mouth and chin, the mesh shrunk onto them),
        and the wider crops around it then show the whole face. Their mean becomes the
        new first pass, up to :data:`_RESEED_MAX` times. Returns the refined face,
        whether any refining pass found a face at all, and how far the passes strayed from
        it (:func:`_stray`).
        """
        for attempt in range(_RESEED_MAX + 1):
            passes = self._refining_passes(image, face)
            found = [f for f in passes if f is not None]
            agree = [f.points for f in found if _iou(f.box, face.box) >= _REFINE_MIN_IOU]
            if agree or attempt == _RESEED_MAX or not _consistent(found):
                break
            face = FaceLandmarks(
                points=np.mean([f.points for f in found], axis=0), image_shape=face.image_shape
            )
        face = FaceLandmarks(
            points=np.mean([face.points, *agree], axis=0), image_shape=face.image_shape
        )
        return face, bool(found), _stray(face, passes)

    def _refining_passes(self, image, face: FaceLandmarks) -> list[FaceLandmarks | None]:
        """The :data:`_REFINE_PASSES` around ``face``, the first here, the others at the
        same time in the pass pool's threads, each with its own graph."""
        if self._pass_pool is None:  # ``refine`` was off when the graphs were built
            return [self._mesh_upright(image, face, f, mirrored=m) for f, m in _REFINE_PASSES]
        (factor, mirrored), *others = _REFINE_PASSES
        futures = [
            self._pass_pool.submit(
                self._mesh_upright, image, face, f, mirrored=m, graph=graph.result()
            )
            for (f, m), graph in zip(others, self._pass_meshes, strict=True)
        ]
        first = self._mesh_upright(image, face, factor, mirrored=mirrored)
        return [first, *(future.result() for future in futures)]

    def _mesh_upright(
        self, image, face: FaceLandmarks, factor: float, *, mirrored: bool = False, graph=None
    ) -> FaceLandmarks | None:
        """The face mesh on a crop around ``face``, rotated upright, ``factor`` boxes wide
        (``mirrored``, ``graph``: see :meth:`_mesh_through`)."""
        angle = math.radians(face.roll_deg)
        cos, sin = math.cos(angle), math.sin(angle)
        rotation = np.array([[cos, sin], [-sin, cos]])  # photo -> upright (removes the roll)
        upright = face.points[:, :2] @ rotation.T
        lo, hi = upright.min(axis=0), upright.max(axis=0)
        side = factor * float(max(hi - lo))
        if side < 8:
            return None
        scale = _CROP_SIDE / side
        matrix = np.zeros((2, 3))
        matrix[:, :2] = scale * rotation
        matrix[:, 2] = _CROP_SIDE / 2 - scale * (lo + hi) / 2
        return self._mesh_through(image, matrix, mirrored=mirrored, graph=graph)

    def _mesh_whole(self, image):
        small, factor = _downscale(image, _DETECT_MAX_SIDE)
        faces = []
        for pts in _mesh_points(self._mesh_multi.process(small), small.shape):
            pts = pts / factor
            faces.append(FaceLandmarks(points=pts, image_shape=image.shape[:2]))
        return faces


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence MediaPipe's C++ log lines (glog/absl write straight to file descriptor 2)."""
    if os.environ.get("FACE3D_MESH_DEBUG") not in (None, "", "0"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (e.g. some embedded hosts)
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _tile_origins(width, height, tile):
    """Top-left corners of half-overlapping square tiles covering the image."""

    def starts(length):
        if length <= tile:
            return [0.0]
        count = int(np.ceil((length - tile) / (tile / 2))) + 1
        return list(np.linspace(0, length - tile, count))

    return [(x, y) for y in starts(height) for x in starts(width)]


def _downscale(image, max_side):
    import cv2

    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    if factor == 1.0:
        return image, 1.0
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, small.shape[1] / width


def _mesh_points(result, shape):
    """MediaPipe result -> list of (478, 3) arrays in pixels of the processed image."""
    height, width = shape[:2]
    faces = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
        if pts.shape[0] != NUM_LANDMARKS:
            continue
        # x, y are normalised by width/height; z uses the width's scale.
        pts[:, 0] *= width
        pts[:, 1] *= height
        pts[:, 2] *= width
        # MediaPipe's pixel convention puts the image corner at 0; ours, the pixel centre.
        pts[:, :2] -= 0.5
        faces.append(pts)
    return faces


#: Left/right landmark pairs of MediaPipe's 468-point face mesh (subject's right, subject's
#: left); the 28 landmarks on the midline map to themselves. The pairing maps each eye,
#: eyebrow, the lips and the face oval onto their mirror sets and preserves the mesh's edges
#: (up to the diagonals of a few quads).
MIRROR_PAIRS = (
    (3, 248), (7, 249), (20, 250), (21, 251), (22, 252), (23, 253), (24, 254), (25, 255),
    (26, 256), (27, 257), (28, 258), (29, 259), (30, 260), (31, 261), (32, 262), (33, 263),
    (34, 264), (35, 265), (36, 266), (37, 267), (38, 268), (39, 269), (40, 270), (41, 271),
    (42, 272), (43, 273), (44, 274), (45, 275), (46, 276), (47, 277), (48, 278), (49, 279),
    (50, 280), (51, 281), (52, 282), (53, 283), (54, 284), (55, 285), (56, 286), (57, 287),
    (58, 288), (59, 289), (60, 290), (61, 291), (62, 292), (63, 293), (64, 294), (65, 295),
    (66, 296), (67, 297), (68, 298), (69, 299), (70, 300), (71, 301), (72, 302), (73, 303),
    (74, 304), (75, 305), (76, 306), (77, 307), (78, 308), (79, 309), (80, 310), (81, 311),
    (82, 312), (83, 313), (84, 314), (85, 315), (86, 316), (87, 317), (88, 318), (89, 319),
    (90, 320), (91, 321), (92, 322), (93, 323), (95, 324), (96, 325), (97, 326), (98, 327),
    (99, 328), (100, 329), (101, 330), (102, 331), (103, 332), (104, 333), (105, 334),
    (106, 335), (107, 336), (108, 337), (109, 338), (110, 339), (111, 340), (112, 341),
    (113, 342), (114, 343), (115, 344), (116, 345), (117, 346), (118, 347), (119, 348),
    (120, 349), (121, 350), (122, 351), (123, 352), (124, 353), (125, 354), (126, 355),
    (127, 356), (128, 357), (129, 358), (130, 359), (131, 360), (132, 361), (133, 362),
    (134, 363), (135, 364), (136, 365), (137, 366), (138, 367), (139, 368), (140, 369),
    (141, 370), (142, 371), (143, 372), (144, 373), (145, 374), (146, 375), (147, 376),
    (148, 377), (149, 378), (150, 379), (153, 380), (154, 381), (155, 382), (156, 383),
    (157, 384), (158, 385), (159, 386), (160, 387), (161, 388), (162, 389), (163, 390),
    (165, 391), (166, 392), (167, 393), (169, 394), (170, 395), (171, 396), (172, 397),
    (173, 398), (174, 399), (176, 400), (177, 401), (178, 402), (179, 403), (180, 404),
    (181, 405), (182, 406), (183, 407), (184, 408), (185, 409), (186, 410), (187, 411),
    (188, 412), (189, 413), (190, 414), (191, 415), (192, 416), (193, 417), (194, 418),
    (196, 419), (198, 420), (201, 421), (202, 422), (203, 423), (204, 424), (205, 425),
    (206, 426), (207, 427), (208, 428), (209, 429), (210, 430), (211, 431), (212, 432),
    (213, 433), (214, 434), (215, 435), (216, 436), (217, 437), (218, 438), (219, 439),
    (220, 440), (221, 441), (222, 442), (223, 443), (224, 444), (225, 445), (226, 446),
    (227, 447), (228, 448), (229, 449), (230, 450), (231, 451), (232, 452), (233, 453),
    (234, 454), (235, 455), (236, 456), (237, 457), (238, 458), (239, 459), (240, 460),
    (241, 461), (242, 462), (243, 463), (244, 464), (245, 465), (246, 466), (247, 467),
)  # fmt: skip


@lru_cache(maxsize=1)
def mirror_permutation() -> np.ndarray:
    """Index map ``i -> mirror(i)`` over the 468 mesh landmarks (an involution)."""
    perm = np.arange(468)
    for a, b in MIRROR_PAIRS:
        perm[a], perm[b] = b, a
    return perm


# The iris landmarks' mirror images: 468-472 and 473-477 are the two irises (centre, then
# four points around it); a mirror swaps the irises and, in each, the two side points.
_IRIS_MIRROR = (473, 476, 475, 474, 477, 468, 471, 470, 469, 472)


@lru_cache(maxsize=1)
def mirrored_landmark_order() -> np.ndarray:
    """(478,) int index map: landmark ``i`` of a face seen in a mirror is landmark
    ``order[i]`` of the face itself (an involution; the face mesh's left/right pairs)."""
    return np.r_[mirror_permutation(), _IRIS_MIRROR]


def _stray(face: FaceLandmarks, passes) -> float:
    """How far the farthest of the refining ``passes`` lies from ``face``: the median
    distance of their 468 mesh landmarks over the face's size (1 for a pass that found no
    face)."""
    mesh = face.points[:468, :2]
    return max(
        1.0
        if other is None
        else float(np.median(np.linalg.norm(other.points[:468, :2] - mesh, axis=1))) / face.size_px
        for other in passes
    )


def _inside_share(face: FaceLandmarks, shape: tuple[int, int]) -> float:
    """The share of the 468 mesh landmarks of ``face`` inside an image of ``shape``."""
    x, y = face.points[:468, 0], face.points[:468, 1]
    inside = (x >= -0.5) & (x <= shape[1] - 0.5) & (y >= -0.5) & (y <= shape[0] - 0.5)
    return float(inside.mean())


def _quarter_turns_back(turns: int, shape: tuple[int, int]) -> np.ndarray:
    """The 2×3 matrix from the pixels of ``np.rot90(image, turns)`` (counter-clockwise
    quarter turns) back to those of ``image`` of ``shape`` (H, W); pixel centres."""
    height, width = shape
    return {
        1: np.array([[0.0, -1.0, width - 1.0], [1.0, 0.0, 0.0]]),
        2: np.array([[-1.0, 0.0, width - 1.0], [0.0, -1.0, height - 1.0]]),
        3: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, height - 1.0]]),
    }[turns % 4]


def _consistent(faces) -> bool:
    """Two or more faces, all overlapping each other by the refinement's IoU."""
    return len(faces) >= 2 and all(
        _iou(a.box, b.box) >= _REFINE_MIN_IOU for i, a in enumerate(faces) for b in faces[i + 1 :]
    )


def _deduplicate(faces):
    kept = []
    for face in faces:
        if all(_iou(face.box, other.box) < 0.5 for other in kept):
            kept.append(face)
    return kept


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@lru_cache(maxsize=1)
def _shared_detector() -> LandmarkDetector:
    return LandmarkDetector()


def detect_faces(
    image: np.ndarray, *, source: str | None = None, thorough: bool = False
) -> list[FaceLandmarks]:
    """Find faces with the process-wide shared detector; raise if there is none.

    Parameters
    ----------
    image : numpy.ndarray
        H×W×3 uint8 RGB.
    source : str, optional, keyword-only
        Name of the input, used in the error message.
    thorough : bool, keyword-only
        Also look for faces smaller than the ones found first (see
        :meth:`LandmarkDetector.detect`).

    Returns
    -------
    list of FaceLandmarks
        At least one face, largest first.

    Raises
    ------
    NoFaceError
        When no face is found.
    """
    faces = _shared_detector().detect(image, thorough=thorough)
    if not faces:
        name = f"{source}: " if source else ""
        raise NoFaceError(f"{name}no face found in the image")
    return faces


@lru_cache(maxsize=1)
def face_mesh_triangles() -> np.ndarray:
    """Triangles of MediaPipe's 468-point face mesh.

    Returns
    -------
    numpy.ndarray
        (852, 3) int32 landmark indices (winding not normalised). The mesh is a disk
        bounded by :data:`FACE_OVAL` with three holes: the two eye openings and the mouth
        (see :func:`face_mesh_holes`).
    """
    FACEMESH_TESSELATION = mediapipe_solutions().face_mesh_connections.FACEMESH_TESSELATION  # noqa: N806

    # MediaPipe publishes the tesselation as edges; its faces are the 3-cliques of that
    # graph, except two cliques that merely enclose real faces: all three of their edges
    # belong to three cliques, which no real face's edges do.
    neighbours: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    cliques = []
    for a, adj in neighbours.items():
        for b in adj:
            if b > a:
                cliques.extend((a, b, c) for c in adj & neighbours[b] if c > b)
    edge_use = Counter(frozenset(e) for t in cliques for e in _edges(t))
    faces = [t for t in cliques if not all(edge_use[frozenset(e)] == 3 for e in _edges(t))]
    return np.array(sorted(faces), dtype=np.int32)


@lru_cache(maxsize=1)
def face_mesh_holes() -> tuple[tuple[int, ...], ...]:
    """The face mesh's inner boundary loops: two eye openings and the mouth.

    Returns
    -------
    tuple of tuple of int
        Each a closed loop of landmark indices, in order.
    """
    edge_use = Counter(frozenset(e) for t in face_mesh_triangles() for e in _edges(t))
    boundary: dict[int, list[int]] = {}
    for edge, count in edge_use.items():
        if count == 1:
            a, b = tuple(edge)
            boundary.setdefault(a, []).append(b)
            boundary.setdefault(b, []).append(a)
    oval = set(FACE_OVAL)
    loops, seen = [], set()
    for start in sorted(boundary):
        if start in seen or start in oval:
            continue
        loop, previous, current = [start], None, start
        while True:
            seen.add(current)
            nxt = next(n for n in boundary[current] if n != previous)
            if nxt == start:
                break
            loop.append(nxt)
            previous, current = current, nxt
        loops.append(tuple(loop))
    return tuple(loops)


#: MediaPipe's drawing helpers: ``import mediapipe`` runs them, and ``drawing_utils`` imports
#: matplotlib.pyplot (~0.35 s, a third of a cold ``export``); we never draw with them.
_MEDIAPIPE_DRAWING = (
    "mediapipe.python.solutions.drawing_styles",
    "mediapipe.python.solutions.drawing_utils",
)


def mediapipe_solutions():
    """MediaPipe's ``solutions`` package, imported without its drawing helpers' cost.

    Importing any part of MediaPipe runs ``mediapipe/__init__.py``, which imports every
    solution, among them ``drawing_utils``, which imports matplotlib.  When MediaPipe is not
    imported yet, its two drawing modules are imported deferred: each module object exists
    (``mediapipe.solutions.drawing_utils`` works as usual) but its code, and matplotlib,
    run at the first use of one of its attributes.  Nothing else changes.

    Returns
    -------
    module
        ``mediapipe.python.solutions`` (also ``mediapipe.solutions``).
    """
    if "mediapipe" in sys.modules:
        import mediapipe.python.solutions as solutions

        return solutions
    finder = _DeferredModules(_MEDIAPIPE_DRAWING)
    sys.meta_path.insert(0, finder)
    try:
        import mediapipe.python.solutions as solutions
    finally:
        sys.meta_path.remove(finder)
    return solutions


class _DeferredModules:
    """Import hook: the named modules are created but run only when an attribute is used."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _DeferredLoader(spec.loader)
        return spec


class _DeferredLoader:
    """Loader whose module runs its real loader at its first missing-attribute lookup."""

    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        real = self.real

        def __getattr__(name):  # PEP 562: only called for attributes the module lacks
            del module.__dict__["__getattr__"]
            module.__loader__ = module.__spec__.loader = real
            real.exec_module(module)
            return getattr(module, name)

        module.__getattr__ = __getattr__


def _edges(tri):
    a, b, c = tri
    return ((a, b), (b, c), (c, a))

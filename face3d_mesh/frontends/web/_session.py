"""What one browser session of the web app holds, and the work it asks of the pipeline.

Streamlit runs the page script again on every click; :class:`WebSession` (kept in
``st.session_state``) remembers the photo's faces and the current reconstruction so that a
re-run does only what changed:

- a new photo: load it and find its faces (:func:`~face3d_mesh.pipeline.find_faces`);
- another face or depth backend: :func:`~face3d_mesh.pipeline.reconstruct` on the faces
  already found (no new detection);
- a filter or surface parameter: ``Reconstruction.with_config`` (filter + surface only).

``runs`` counts each kind of work. Uploaded bytes go to a temporary folder that is removed
as soon as the faces are found; the user's file name is never part of a path. Only the
latest photo and reconstruction are kept, so memory does not grow with the uploads.
This module does not import Streamlit.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...config import ReconstructionConfig
from ...errors import Face3DError, ImageError, ModelError, NoFaceError

__all__ = [
    "DEPTH_KEYS",
    "FINISH_KEYS",
    "UPLOAD_LIMIT_MB",
    "Engine",
    "Problem",
    "WebSession",
    "sample_photo_path",
]

#: Largest upload accepted, megabytes (also the server's ``server.maxUploadSize``).
UPLOAD_LIMIT_MB = 25
#: Settings that need a new reconstruction (depth stage) when they change.
DEPTH_KEYS = ("face", "depth", "depth_model")
#: Settings that re-run only the filter and surface stages.
FINISH_KEYS = (
    "smooth_sigma_mm",
    "bilateral_sigma_space_mm",
    "bilateral_sigma_depth_mm",
    "outlier_threshold",
    "fill_holes",
    "mask_margin_mm",
    "mask_erode_px",
    "target_triangles",
)

_LOG = logging.getLogger("face3d_mesh.web")
_ROOT = Path(__file__).resolve().parents[3]


def sample_photo_path() -> Path:
    """The bundled sample portrait (the repository's copy, else scikit-image's)."""
    local = _ROOT / "sample_data" / "astronaut.png"
    if local.is_file():
        return local
    import skimage.data

    return Path(skimage.data.__file__).parent / "astronaut.png"


@dataclass(frozen=True)
class Problem:
    """A message for the page: one plain sentence, and the technical detail under it."""

    message: str
    detail: str = ""


class Engine:
    """Shared by every session of a server process (``st.cache_resource``).

    Loading it loads MediaPipe once (by finding the sample photo's face, and reconstructing
    it once so that the first visitor does not wait for first-use imports). MediaPipe's
    detector serialises its own calls with a lock; neural depth models, loaded once per
    process by the pipeline, are run by one session at a time under :attr:`neural_lock`.
    """

    def __init__(self):
        from ...pipeline import find_faces, reconstruct

        self.neural_lock = threading.Lock()
        self.sample_path = sample_photo_path()
        self.sample = find_faces(self.sample_path, name=self.sample_path.name)
        # One reconstruction loads what the later stages import on first use.
        reconstruct(self.sample, depth="landmarks", target_triangles=5_000)


def explain(exc: BaseException, *, name: str) -> Problem:
    """The page's message for an error raised while reading a photo or reconstructing."""
    detail = " ".join(str(exc).split())
    if isinstance(exc, ImageError):
        return Problem(
            f"“{name}” could not be opened as a photo. Please choose a JPEG, PNG, WebP, "
            "BMP or TIFF picture (not too large: at most 100 megapixels).",
            detail,
        )
    if isinstance(exc, NoFaceError):
        return Problem(
            f"No face was found in “{name}”. Try a photo where one face looks at the camera, "
            "evenly lit and not too small.",
            detail,
        )
    if isinstance(exc, ModelError):
        return Problem("The neural depth model could not be used on this server.", detail)
    if isinstance(exc, Face3DError):
        return Problem("This photo could not be turned into a 3D face.", detail)
    _LOG.exception("unexpected error while processing %s", name)
    return Problem(
        "Something went wrong while processing this photo. Please try another one.",
        f"{type(exc).__name__} (details are in the server's log)",
    )


@dataclass
class WebSession:
    """The state of one browser session (see the module docstring)."""

    photo_key: object = None
    photo_name: str = ""
    photo_bytes: int = 0
    found: object = None  # FoundFaces
    problem: Problem | None = None
    rec: object = None  # Reconstruction
    depth_key: tuple | None = None
    note: str = ""
    runs: Counter = field(default_factory=Counter)
    #: Bumped whenever ``rec`` changes / whenever its depth stage (face, backend) does.
    rec_version: int = 0
    depth_version: int = 0
    _cache: dict = field(default_factory=dict)

    def set_photo(self, key, name: str, size: int, read, *, engine: Engine) -> None:
        """Make the photo ``key`` current: find its faces unless it is current already.

        Parameters
        ----------
        key : hashable
            Identifies this upload (Streamlit's file id), or ``"sample"``.
        name : str
            The file's name as the user's browser gave it (shown, never used as a path).
        size : int
            Its size in bytes (checked against the limit before anything is read).
        read : callable
            Returns the file's bytes.
        engine : Engine
        """
        if key == self.photo_key:
            return
        self.clear()
        self.photo_key, self.photo_name, self.photo_bytes = key, name, int(size)
        if key == "sample":
            self.found = engine.sample
            return
        limit = UPLOAD_LIMIT_MB * 1024 * 1024
        if size > limit:
            self.problem = Problem(
                f"“{name}” is {size / 1024 / 1024:.0f} MB: the limit is {UPLOAD_LIMIT_MB} MB. "
                "Please choose a smaller photo (a JPEG of the same picture is much smaller)."
            )
            return
        self.runs["detect"] += 1
        with tempfile.TemporaryDirectory(prefix="face3d-web-") as folder:
            path = Path(folder) / "upload"
            try:
                path.write_bytes(read())
                from ...pipeline import find_faces

                self.found = find_faces(path, name=name)
            except Exception as exc:  # every failure becomes a message in the page
                problem = explain(exc, name=name)
                self.problem = Problem(problem.message, problem.detail.replace(str(path), name))

    def clear(self) -> None:
        """Forget the photo and everything made from it."""
        self.photo_key, self.photo_name, self.photo_bytes = None, "", 0
        self.found = self.problem = self.rec = self.depth_key = None
        self.note = ""
        self._cache.clear()

    def reconstruction(self, settings: dict, *, engine: Engine):
        """The reconstruction of the current photo with ``settings``; None on a problem.

        ``settings`` holds :data:`DEPTH_KEYS` and :data:`FINISH_KEYS` (config field names).
        Only the stages that the changed settings affect are run again.
        """
        if self.found is None:
            return None
        finish = {k: settings[k] for k in FINISH_KEYS}
        depth_key = tuple(settings[k] for k in DEPTH_KEYS)
        try:
            if self.rec is not None and depth_key == self.depth_key:
                if any(getattr(self.rec.config, k) != v for k, v in finish.items()):
                    self.runs["finish"] += 1
                    self.rec = self.rec.with_config(**finish)
                    self.rec_version += 1
                return self.rec
            config, neural = self._config(settings, finish)
            self.runs["depth"] += 1
            with engine.neural_lock if neural else contextlib.nullcontext():
                from ...pipeline import reconstruct

                self.rec = reconstruct(self.found, config=config)
            self.rec_version += 1
            self.depth_version += 1
            self.depth_key = depth_key
            self.problem = None
            return self.rec
        except Exception as exc:
            self.rec, self.depth_key = None, None
            self.problem = explain(exc, name=self.photo_name)
            return None

    def current(self):
        """The current reconstruction (what the download buttons export when pressed)."""
        if self.rec is None:
            raise Face3DError("there is no reconstruction to download: upload a photo first")
        return self.rec

    def _config(self, settings, finish):
        """The configuration to reconstruct with, and whether a neural network runs."""
        from ...pipeline import cached_depth_weights

        depth, model = settings["depth"], settings["depth_model"]
        weights = cached_depth_weights().get(model)
        self.note = ""
        if depth in ("midas", "fused") and weights is None:
            # Never download hundreds of MB because a visitor picked an option.
            self.note = (
                f"The {model} weights are not on this server, so the offline depth (the "
                "fitted face model and the landmarks) was used (an administrator can run: "
                f"face3d-mesh models download {model})."
            )
            depth = "auto"  # without weights: the offline default, nothing downloaded
        neural = depth in ("midas", "fused") or (depth == "auto" and weights is not None)
        config = ReconstructionConfig(
            face=settings["face"],
            depth=depth,
            depth_model=model,
            weights=None if weights is None or not neural else str(weights),
            **finish,
        )
        return config, neural

    def cached(self, key, make):
        """``make()``, remembered under ``key`` until the photo changes or the key does.

        One value is kept per kind of key (its first item), so memory stays bounded. Keys
        use :attr:`rec_version` / :attr:`depth_version`, never ``id()`` of an object that
        may be freed (its id could come back for another one).
        """
        kind = key[0]
        hit = self._cache.get(kind)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = make()
        self._cache[kind] = (key, value)
        return value

"""The pipeline: photo → landmarks → aligned crop → depth → filtering → surface.

This is the only module that joins the stages. Coordinates and units of the results:

- ``image``: H×W×3 uint8 RGB, EXIF orientation applied; every array below is on its
  pixel grid, ``(u, v) = (column, row)``, centre of the top-left pixel at (0, 0).
- ``landmarks``: (478, 3) float64: ``u, v`` in pixels; ``z`` depth in mm, larger = farther,
  with the same offset as ``depth_mm`` (the nose tip, landmark 1, is at 0).
- ``depth_mm``: H×W float32, depth along the optical axis in mm, larger = farther, nose tip
  at 0, NaN outside ``mask``.
- ``mesh``: triangles in mm; x right, y up, z toward the camera, origin at the nose tip;
  a pixel and its depth become a vertex by the photo's pinhole camera
  (:attr:`Reconstruction.camera`, :meth:`Reconstruction.pixel_to_mesh`; the focal length
  known or guessed). Solids are built on the orthographic grid ``x = (u - u_nose)·s``,
  ``y = -(v - v_nose)·s``, ``z = -depth_mm``, ``s = scale.mm_per_px``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ._threads import one_blas_thread
from .config import ReconstructionConfig
from .errors import NoFaceError, UsageError

__all__ = [
    "FoundFaces",
    "Reconstruction",
    "cached_depth_weights",
    "face_scale",
    "find_faces",
    "reconstruct",
    "reconstruct_many",
    "validate_config",
]


@dataclass(frozen=True)
class FoundFaces:
    """A photo, loaded, with every face in it found: the result of :func:`find_faces`.

    Pass it to :func:`reconstruct` as the source to reconstruct any of its faces (``face=N``)
    without loading the photo or detecting the faces again.

    Attributes
    ----------
    image : numpy.ndarray
        H×W×3 uint8 RGB photo, EXIF orientation applied.
    faces : tuple of FaceLandmarks
        Every face found, largest first (at least one).
    name : str or None
        Name of the input for messages and ``Reconstruction.source``.
    exif_focal_px : float or None
        The focal length in pixels from the photo's EXIF data, when it has a usable one.
    timings : dict
        Wall time of loading and detection, seconds.
    """

    image: np.ndarray
    faces: tuple
    name: str | None = None
    exif_focal_px: float | None = None
    timings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.faces)


@dataclass(frozen=True)
class _DepthStageResult:
    """What the depth stage leaves for the later stages (kept for re-running them)."""

    aligned: object  # AlignedFace
    raw_depth_mm: np.ndarray  # crop grid, NaN outside the crop mask
    crop_mask: np.ndarray
    mm_per_crop_px: float
    nose_offset_mm: float
    camera: object = None  # Pinhole: how pixels and depths become mesh points


#: Under this many pixels between the outer eye corners a face's shape is uncertain:
#: renders of the head scan, frontal and turned 15°, scaled down, scored a shape error of
#: 1.4-1.8 mm from 250 down to 22 px and 1.8-5.0 mm at 17-10 px (:attr:`Reconstruction.notes`).
SMALL_FACE_EYES_PX = 20.0


@dataclass(frozen=True)
class Reconstruction:
    """The result of :func:`reconstruct`.

    Attributes
    ----------
    image : numpy.ndarray
        H×W×3 uint8 RGB photo, EXIF orientation applied.
    landmarks : numpy.ndarray
        (478, 3) float64: x, y in pixels of ``image``; z depth in mm (larger = farther),
        same offset as ``depth_mm``.
    mask : numpy.ndarray
        H×W bool, the face region: the landmarks' face oval grown by
        ``config.mask_margin_mm``, joined by the face mesh where it stands out of the oval
        (a turned head's nose and lips), and eroded by ``config.mask_erode_px``.
    depth_mm : numpy.ndarray
        H×W float32 depth along the optical axis, mm, larger = farther, nose tip at 0,
        NaN outside ``mask``.
    mesh : pyvista.PolyData
        Triangulated surface in mm (x right, y up, z toward the camera, origin at the nose
        tip) with point data ``"RGB"`` (uint8) and texture coordinates ``"UV"``. Made from
        ``mesh_arrays`` when first asked for (importing PyVista).
    mesh_arrays : MeshArrays
        The same surface as numpy arrays (:class:`~face3d_mesh.mesharrays.MeshArrays`:
        ``points`` (N, 3) float32 mm, ``faces`` (M, 3) int64, ``normals``, ``uv``, ``rgb``);
        what the exporters write.
    scale : ScaleEstimate
        How millimetres were obtained, with its relative uncertainty.
    depth_info : dict
        The depth backend used and its diagnostics (e.g. the fit residual in mm).
    model_fit : ModelFit
        The morphable face model fitted to the landmarks (:mod:`face3d_mesh.model_fit`):
        identity and expression coefficients, head pose, the fitted mesh in mm
        (``model_fit.mesh``, model frame), per-landmark residuals in pixels of ``image``.
    config : ReconstructionConfig
        The parameters used.
    source : str or None
        The input file, when there was one.
    faces_found : int
        How many faces the photo has (as far as the search went: all of them when
        ``config.face > 0``, otherwise at least the largest).
    timings : dict
        Wall time of each stage, seconds.
    notes : tuple of str
        Remarks for people on how far to trust the result (see :attr:`notes`).
    """

    image: np.ndarray
    landmarks: np.ndarray
    mask: np.ndarray
    depth_mm: np.ndarray
    mesh_arrays: object = field(repr=False)
    scale: object
    depth_info: dict
    config: ReconstructionConfig
    source: str | None = None
    faces_found: int = 1
    timings: dict = field(default_factory=dict)
    model_fit: object = field(default=None, repr=False, compare=False)
    _depth_stage: _DepthStageResult | None = field(default=None, repr=False, compare=False)

    @cached_property
    def mesh(self):
        """The surface as a ``pyvista.PolyData`` (see the class's attributes)."""
        return self.mesh_arrays.to_polydata()

    @property
    def notes(self) -> tuple[str, ...]:
        """Remarks for people on how far to trust this result, each one sentence (empty
        when there is none): that the face is small in the photo (under
        :data:`SMALL_FACE_EYES_PX` between the outer eye corners, as the metric scale puts
        them). The depth backend's own remark (e.g. network weights missing) is
        ``depth_info["note"]``."""
        from .scale import BIOCULAR_WIDTH_MM

        eyes_px = BIOCULAR_WIDTH_MM[0] / self.mm_per_px
        if eyes_px >= SMALL_FACE_EYES_PX:
            return ()
        return (
            f"the face is small in the photo ({eyes_px:.0f} px between the outer eye "
            f"corners): under {SMALL_FACE_EYES_PX:.0f} px its shape is uncertain; a photo "
            "with more pixels on the face gives a better one",
        )

    @property
    def mm_per_px(self) -> float:
        """Millimetres per pixel of ``image`` at the face."""
        return float(self.scale.mm_per_px)

    @property
    def nose_px(self) -> tuple[float, float]:
        """Pixel position ``(u, v)`` of the nose tip, the mesh's origin."""
        from .landmarks import NOSE_TIP

        return float(self.landmarks[NOSE_TIP, 0]), float(self.landmarks[NOSE_TIP, 1])

    @property
    def _pinhole(self):
        return None if self._depth_stage is None else self._depth_stage.camera

    @property
    def camera(self) -> dict:
        """The camera model behind the mesh (see :mod:`face3d_mesh.camera`).

        Returns
        -------
        dict
            ``model`` "perspective", ``focal_px``, ``principal_point_px`` (cx, cy),
            ``origin_px`` (u0, v0: the nose tip's pixel, the mesh origin), ``distance_mm``
            (Z0, the nose tip's depth from the camera); a pixel (u, v) with depth d (mm
            behind the nose tip) is the mesh point
            ``(((u - cx)(Z0 + d) - (u0 - cx) Z0) / f, -((v - cy)(Z0 + d) - (v0 - cy) Z0) / f,
            -d)``; ``mm_per_px`` (at the outer eye corners), ``focal_source``
            ("user" or "exif": the photo's focal length, (cx, cy) its centre; "default":
            a guess, (cx, cy) the centre of the face's crop), ``image_size_px`` (W, H).
            (``model`` "orthographic", the point ``((u - u0) s, -(v - v0) s, -d)``,
            ``s`` = ``mm_per_px``, only for a reconstruction without a camera.)
        """
        out = {
            "model": "orthographic",
            "origin_px": self.nose_px,
            # only for the landmark depths' perspective correction (see depth_info)
            "focal_px": self.depth_info.get("focal_px"),
        }
        if self._pinhole is not None:
            out = self._pinhole.to_dict()
        out.update(
            mm_per_px=self.mm_per_px,
            focal_source=self.depth_info.get("focal_source"),
            image_size_px=(int(self.image.shape[1]), int(self.image.shape[0])),
        )
        return out

    def pixel_to_mesh(self, u, v, depth_mm) -> np.ndarray:
        """Photo pixels and depths (mm behind the nose tip, as ``depth_mm``) to mesh-frame
        points (mm), shape (..., 3), by :attr:`camera`."""
        if self._pinhole is not None:
            return self._pinhole.to_mesh(u, v, depth_mm)
        u0, v0 = self.nose_px
        s = self.mm_per_px
        u, v, d = np.broadcast_arrays(
            np.asarray(u, float), np.asarray(v, float), np.asarray(depth_mm, float)
        )
        return np.stack([(u - u0) * s, -(v - v0) * s, -d], axis=-1)

    def mesh_to_pixel(self, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inverse of :meth:`pixel_to_mesh`: mesh-frame points (..., 3), mm, to photo
        pixels ``u, v`` and depths (mm behind the nose tip), e.g. to project the mesh onto
        :attr:`image`."""
        if self._pinhole is not None:
            return self._pinhole.to_pixels(points)
        pts = np.asarray(points, float)
        u0, v0 = self.nose_px
        s = self.mm_per_px
        return pts[..., 0] / s + u0, -pts[..., 1] / s + v0, -pts[..., 2]

    @property
    def landmarks_mesh(self) -> np.ndarray:
        """(478, 3) float64 landmarks in the mesh's frame (mm, x right, y up, z toward
        the camera, origin at the nose tip)."""
        pts = self.landmarks
        return self.pixel_to_mesh(pts[:, 0], pts[:, 1], pts[:, 2])

    def with_config(self, **changes) -> Reconstruction:
        """Re-run only the stages after depth estimation with changed parameters.

        Parameters
        ----------
        **changes
            Mask, filtering and surface parameters of :class:`ReconstructionConfig`
            (e.g. ``smooth_sigma_mm=1.5``, ``target_triangles=20000``, ``mask_margin_mm=0``).

        Returns
        -------
        Reconstruction
            A new result; this one is unchanged.
        """
        earlier = {
            "face",
            "depth",
            "depth_model",
            "weights",
            "device",
            "working_size_px",
            "focal_length_px",
        }
        if earlier & changes.keys():
            raise UsageError(
                f"with_config() cannot change {sorted(earlier & changes.keys())}: "
                "call reconstruct() again"
            )
        config = self.config.replace(**changes)
        validate_config(config)
        if self._depth_stage is None:
            raise UsageError("this reconstruction keeps no depth stage to re-run")
        timings = {k: v for k, v in self.timings.items() if k not in ("filter", "surface")}
        mask = self.mask
        if (config.mask_margin_mm, config.mask_erode_px) != (
            self.config.mask_margin_mm,
            self.config.mask_erode_px,
        ):
            mask = _photo_mask(self.landmarks, self.image.shape[:2], self.scale, config)
        depth_mm, mesh = _finish(
            self.image, self.landmarks, mask, self.scale, self._depth_stage, config, timings
        )
        return Reconstruction(
            image=self.image,
            landmarks=self.landmarks,
            mask=mask,
            depth_mm=depth_mm,
            mesh_arrays=mesh,
            scale=self.scale,
            depth_info=self.depth_info,
            model_fit=self.model_fit,
            config=config,
            source=self.source,
            faces_found=self.faces_found,
            timings=timings,
            _depth_stage=self._depth_stage,
        )

    def preview_mesh(self, *, max_triangles: int = 30_000):
        """A coarser copy of ``mesh`` for quick display (the same surface on a wider grid).

        Parameters
        ----------
        max_triangles : int, keyword-only
            Upper bound (approximately) of the triangle count; at least 100.

        Returns
        -------
        pyvista.PolyData
            ``mesh`` itself when it is no larger, otherwise a new surface with the same
            frame, units (mm), point data ``"RGB"`` and ``"UV"``, made from ``depth_mm``.
        """
        from .surface import depth_to_mesh

        if max_triangles < 100:
            raise UsageError("max_triangles must be at least 100")
        if self.mesh_arrays.n_cells <= max_triangles:
            return self.mesh
        return depth_to_mesh(
            self.depth_mm,
            mm_per_px=self.mm_per_px,
            origin_px=self.nose_px,
            image=self.image,
            target_triangles=int(max_triangles * 0.9),
            camera=self._pinhole,
        )

    def solid(self, *, base_mm: float = 3.0, width_mm: float | None = None, edge_mm: float = 0.0):
        """A watertight printable solid of the face relief, a ``pyvista.PolyData`` (see
        :func:`~face3d_mesh.solid.make_solid`)."""
        return self.solid_arrays(base_mm=base_mm, width_mm=width_mm, edge_mm=edge_mm).to_polydata()

    @one_blas_thread
    def solid_arrays(
        self, *, base_mm: float = 3.0, width_mm: float | None = None, edge_mm: float = 0.0
    ):
        """:meth:`solid` as :class:`~face3d_mesh.mesharrays.MeshArrays` (no PyVista).

        The solid is built on the photo's pixel grid at the metric scale of the eyes (the
        orthographic mapping, see :attr:`camera`) even when the surface is in perspective:
        seen through a short lens, steep parts of a face (the sides of the nose, the
        cheeks' edges) turn away from the optical axis, and vertical walls and a flat back
        need a relief that never overhangs itself.
        """
        from .solid import solid_arrays

        surface = self.mesh_arrays
        if self._pinhole is not None:
            u, v, d = self.mesh_to_pixel(surface.points)
            u0, v0 = self.nose_px
            s = self.mm_per_px
            flat = np.column_stack([(u - u0) * s, -(v - v0) * s, -d]).astype(np.float32)
            surface = dataclasses.replace(surface, points=flat, normals=None)
        return solid_arrays(surface, base_mm=base_mm, width_mm=width_mm, edge_mm=edge_mm)

    def save(
        self,
        path,
        *,
        solid: bool = False,
        base_mm: float = 3.0,
        width_mm: float | None = None,
        edge_mm: float = 0.0,
    ) -> list[Path]:
        """Write the mesh to ``path`` (.stl, .obj with .mtl and texture, .ply, .glb, .3mf).

        Parameters
        ----------
        path : str or os.PathLike
            Output file; its extension picks the format (see
            :func:`~face3d_mesh.exporters.export_mesh`). The OBJ and the GLB of the surface
            carry the photo as their texture; the GLB is in metres, the others in mm.
        solid : bool, keyword-only
            Write a watertight printable solid instead of the open surface.
        base_mm : float, keyword-only
            Thickness of the solid's back plate behind the deepest point, mm.
        width_mm : float or None, keyword-only
            Scale the solid uniformly to this width (x extent), mm.
        edge_mm : float, keyword-only
            Round the solid's edge between relief and side wall with this radius, mm
            (0 = sharp).

        Returns
        -------
        list of pathlib.Path
            Every file written.
        """
        from ._atomic import refuse_to_overwrite
        from .exporters import export_mesh, output_paths

        if self.source:  # the photo's path: never written over
            refuse_to_overwrite(self.source, output_paths(path, textured=not solid))
        mesh, texture = self._export_mesh(solid, base_mm, width_mm, edge_mm)
        return export_mesh(mesh, path, texture=texture)

    def encode(
        self,
        path,
        *,
        solid: bool = False,
        base_mm: float = 3.0,
        width_mm: float | None = None,
        edge_mm: float = 0.0,
    ) -> dict[Path, bytes]:
        """The files :meth:`save` would write, as bytes in memory (nothing is written).

        Same parameters as :meth:`save`; ``path``'s folder need not exist. Returns
        ``{path: bytes}`` for every file (an OBJ's ``.mtl`` and texture first, ``path`` last).
        """
        from .exporters import encode_mesh

        mesh, texture = self._export_mesh(solid, base_mm, width_mm, edge_mm)
        return encode_mesh(mesh, path, texture=texture)

    def _export_mesh(self, solid, base_mm, width_mm, edge_mm=0.0):
        if not solid and width_mm is not None:
            raise UsageError("width_mm applies to solids only (use solid=True)")
        if not solid and edge_mm:
            raise UsageError("edge_mm applies to solids only (use solid=True)")
        if solid:
            return self.solid_arrays(base_mm=base_mm, width_mm=width_mm, edge_mm=edge_mm), None
        return self.mesh_arrays, self.image

    def to_trimesh(self):
        """The mesh as a ``trimesh.Trimesh`` (needs trimesh installed); vertex colours kept."""
        try:
            import trimesh
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise UsageError("to_trimesh() needs trimesh: pip install trimesh") from exc
        arrays = self.mesh_arrays
        return trimesh.Trimesh(
            vertices=np.asarray(arrays.points, dtype=np.float64),
            faces=arrays.faces,
            vertex_colors=arrays.rgb,
            process=False,
        )


def reconstruct(
    source,
    *,
    config: ReconstructionConfig | None = None,
    progress=None,
    name: str | None = None,
    **options,
) -> Reconstruction:
    """Reconstruct the 3D face of a photo.

    Parameters
    ----------
    source : str, os.PathLike, numpy.ndarray or FoundFaces
        Image file (JPEG, PNG, WebP, BMP, TIFF), an H×W×3 uint8 RGB array, or the result
        of :func:`find_faces` (the photo is then neither loaded nor searched again).
    config : ReconstructionConfig, optional, keyword-only
        All parameters; defaults if omitted.
    progress : callable, optional, keyword-only
        Called with a short stage name (str) as each stage starts.
    name : str, optional, keyword-only
        Name of the input for messages and ``Reconstruction.source`` (default: the path,
        or None for an array).
    **options
        Overrides of ``config`` fields, e.g. ``depth="landmarks"``, ``face=1``.

    Returns
    -------
    Reconstruction

    Raises
    ------
    ImageError
        The input is not a usable image.
    NoFaceError
        No face found, or ``face`` out of range.
    ModelError
        A neural depth model was requested explicitly but is unavailable.
    """
    config = (
        (config or ReconstructionConfig()).replace(**options)
        if options
        else (config or ReconstructionConfig())
    )
    validate_config(config)
    timings: dict[str, float] = {}
    if name is None:
        name = _source_name(source)

    def stage(label):
        if progress is not None:
            progress(label)
        return _Timer(timings, label)

    prepared = _prepare(source, config, name, stage)
    return _complete(prepared, config, timings, stage)


def reconstruct_many(
    sources, *, config: ReconstructionConfig | None = None, batch_size: int = 4, **options
) -> list:
    """Reconstruct several photos, running a neural depth network on batches of faces.

    Parameters
    ----------
    sources : sequence
        Image files or H×W×3 uint8 RGB arrays.
    config : ReconstructionConfig, optional, keyword-only
    batch_size : int, keyword-only
        Faces per network call (neural backends only; worth it on a GPU).
    **options
        Overrides of ``config`` fields.

    Returns
    -------
    list
        One item per source, in order: a :class:`Reconstruction`, or the
        :class:`~face3d_mesh.errors.Face3DError` that source raised (one bad photo does
        not stop the others). The results equal :func:`reconstruct`'s.
    """
    from .depth._backends import predict_relative_batch, resolve_backend
    from .errors import Face3DError

    config = (config or ReconstructionConfig()).replace(**options)
    validate_config(config)
    if batch_size < 1:
        raise UsageError("batch_size must be at least 1")
    backend, _ = resolve_backend(config)
    results: list = []
    for start in range(0, len(sources), batch_size):
        chunk = sources[start : start + batch_size]
        prepared, timings = [], []
        for source in chunk:
            spent: dict[str, float] = {}
            name = _source_name(source)
            try:
                prepared.append(
                    _prepare(source, config, name, lambda label, t=spent: _Timer(t, label))
                )
            except Face3DError as exc:
                prepared.append(exc)
            timings.append(spent)
        relatives = [None] * len(chunk)
        if backend in ("midas", "fused"):
            ok = [i for i, p in enumerate(prepared) if not isinstance(p, Exception)]
            t0 = time.perf_counter()
            maps = predict_relative_batch(
                [prepared[i].aligned.image for i in ok], config, batch_size=batch_size
            )
            share = (time.perf_counter() - t0) / max(len(ok), 1)
            for i, relative in zip(ok, maps, strict=True):
                relatives[i] = relative
                timings[i]["network"] = share
        for prep, spent, relative in zip(prepared, timings, relatives, strict=True):
            if isinstance(prep, Exception):
                results.append(prep)
                continue
            stage = lambda label, t=spent: _Timer(t, label)  # noqa: E731
            try:
                results.append(_complete(prep, config, spent, stage, relative=relative))
            except Face3DError as exc:
                results.append(exc)
    return results


def find_faces(source, *, name: str | None = None, thorough: bool = False) -> FoundFaces:
    """Load a photo and find its faces, for :func:`reconstruct` to use later.

    Parameters
    ----------
    source : str, os.PathLike or numpy.ndarray
        Image file (JPEG, PNG, WebP, BMP, TIFF) or an H×W×3 uint8 RGB array.
    name : str, optional, keyword-only
        Name of the input for messages (default: the path, or None for an array).
    thorough : bool, keyword-only
        Also look for faces much smaller than the largest one (slower on big photos: about
        0.5 s more for 12 megapixels). By default the search stops at the first scale that
        finds faces, as ``reconstruct`` does for ``face=0``, so face 0 is the same face,
        with the same landmarks, that ``reconstruct(path)`` uses.

    Returns
    -------
    FoundFaces
        The photo and its faces, largest first. The file is not needed afterwards.

    Raises
    ------
    ImageError
        The input is not a usable image.
    NoFaceError
        No face found.
    """
    from .image import load_photo
    from .landmarks import detect_faces

    if name is None:
        name = _source_name(source)
    timings: dict[str, float] = {}
    with _Timer(timings, "load"):
        image, focal = load_photo(source)
    with _Timer(timings, "landmarks"):
        faces = detect_faces(image, source=name, thorough=thorough)
    return FoundFaces(image, tuple(faces), name, focal, timings)


def _source_name(source) -> str | None:
    if isinstance(source, FoundFaces):
        return source.name
    return None if isinstance(source, np.ndarray) else str(source)


def cached_depth_weights() -> dict:
    """Each registered neural depth model and its cached weights file.

    Returns
    -------
    dict
        ``{model name: pathlib.Path or None}`` in registry order; None when the weights
        are not downloaded (``face3d-mesh models download NAME`` fetches them).
    """
    from .depth import list_models

    return {m.name: (m.path if m.cached else None) for m in list_models()}


@dataclass(frozen=True)
class _Prepared:
    """Everything before the depth network: the photo, its face, scale and crop."""

    name: str | None
    image: np.ndarray
    faces_found: int
    face: object
    scale: object
    aligned: object
    crop_mask: np.ndarray
    mask: np.ndarray
    focal_px: float
    focal_source: str
    axis_px: tuple[float, float]
    model_fit: object


@one_blas_thread
def _prepare(source, config, name, stage) -> _Prepared:
    from .align import align_face
    from .depth._backends import crop_size_px
    from .image import load_photo
    from .landmarks import detect_faces
    from .mask import face_mask
    from .scale import estimate_scale

    if isinstance(source, FoundFaces):
        image, faces = source.image, source.faces  # loaded and searched already
        exif_focal = source.exif_focal_px
    else:
        with stage("load"):
            image, exif_focal = load_photo(source)
        with stage("landmarks"):
            faces = detect_faces(image, source=name, thorough=config.face > 0)
    if config.face >= len(faces):
        raise NoFaceError(
            f"{name + ': ' if name else ''}face {config.face} requested, "
            f"but only {len(faces)} found (0 = largest)"
        )
    face = faces[config.face]
    focal_px, focal_source = _focal_length(exif_focal, image, face, config)
    with stage("align"):
        aligned = align_face(image, face, size_px=crop_size_px(config))
        crop_mask = face_mask(aligned.landmarks.points, aligned.image.shape[:2], silhouette=True)
    axis = _principal_point(image, aligned, focal_source)
    with stage("model_fit"):
        model_fit = _fit_model(face, focal_px, axis)
    scale = estimate_scale(face.points, model_fit=model_fit, focal_px=focal_px, image=image)
    with stage("align"):
        mask = _photo_mask(face.points, image.shape[:2], scale, config)
    return _Prepared(
        name, image, len(faces), face, scale, aligned, crop_mask, mask, focal_px, focal_source,
        axis, model_fit,
    )  # fmt: skip


@one_blas_thread
def _complete(prep: _Prepared, config, timings, stage, relative=None) -> Reconstruction:
    """Depth (given the network's output when it ran in a batch), filtering, surface."""
    from .depth._backends import estimate_depth
    from .landmarks import NOSE_TIP

    aligned = prep.aligned
    mm_per_crop_px = prep.scale.mm_per_px / aligned.scale
    with stage("depth"):
        centre = aligned.matrix @ np.array([*prep.axis_px, 1.0])
        raw_crop_mm, depth_info, landmark_z_mm = estimate_depth(
            aligned,
            prep.crop_mask,
            mm_per_px=mm_per_crop_px,
            focal_px=prep.focal_px * aligned.scale,
            principal_point=(float(centre[0]), float(centre[1])),
            config=config,
            relative=relative,
            model_fit=prep.model_fit,
            focal_known=prep.focal_source != "default",
        )
        depth_info = {
            **depth_info,
            "focal_px": prep.focal_px,
            "focal_source": prep.focal_source,
        }
    landmarks = prep.face.points.copy()
    landmarks[:, 2] = landmark_z_mm
    nose_offset = float(landmarks[NOSE_TIP, 2])
    landmarks[:, 2] -= nose_offset
    stage_result = _DepthStageResult(
        aligned=aligned,
        raw_depth_mm=raw_crop_mm,
        crop_mask=prep.crop_mask,
        mm_per_crop_px=mm_per_crop_px,
        nose_offset_mm=nose_offset,
        camera=_camera(prep, landmarks),
    )
    depth_mm, mesh = _finish(
        prep.image, landmarks, prep.mask, prep.scale, stage_result, config, timings, stage
    )
    return Reconstruction(
        image=prep.image,
        landmarks=landmarks,
        mask=prep.mask,
        depth_mm=depth_mm,
        mesh_arrays=mesh,
        scale=prep.scale,
        depth_info=depth_info,
        model_fit=prep.model_fit,
        config=config,
        source=prep.name,
        faces_found=prep.faces_found,
        timings=timings,
        _depth_stage=stage_result,
    )


def _camera(prep: _Prepared, landmarks: np.ndarray):
    """The photo's pinhole camera (:class:`~face3d_mesh.camera.Pinhole`), the distance from
    the metric scale at the outer eye corners.

    The focal length is the photo's (given or from EXIF) or a guess (``focal_source``
    "default": a 50 mm-equivalent lens, at least 3 face sizes away), the principal point
    :func:`_principal_point`. A photo is never orthographic: on renders of the head scan
    without camera metadata the guessed perspective lowered the NoW-like error on five
    sets of six (see the README's Accuracy).
    """
    from .camera import Pinhole
    from .landmarks import LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER

    return Pinhole.from_scale(
        prep.focal_px,
        prep.axis_px,
        landmarks[NOSE_TIP, :2],
        mm_per_px=prep.scale.mm_per_px,
        eye_depth_mm=0.5 * (landmarks[LEFT_EYE_OUTER, 2] + landmarks[RIGHT_EYE_OUTER, 2]),
    )


@one_blas_thread
def _finish(image, landmarks, mask, scale, depth_stage, config, timings, stage=None):
    """Filtering, mapping back to the photo, and the surface: the re-runnable stages."""
    from .align import warp_window
    from .filtering import filter_depth
    from .landmarks import NOSE_TIP
    from .surface import surface_arrays

    stage = stage or (lambda label: _Timer(timings, label))
    with stage("filter"):
        filtered = filter_depth(
            depth_stage.raw_depth_mm,
            depth_stage.crop_mask,
            mm_per_px=depth_stage.mm_per_crop_px,
            bilateral_sigma_space_mm=config.bilateral_sigma_space_mm,
            bilateral_sigma_depth_mm=config.bilateral_sigma_depth_mm,
            outlier_threshold=config.outlier_threshold,
            fill_holes=config.fill_holes,
            smooth_sigma_mm=config.smooth_sigma_mm,
        )
        filtered = _continue_past_oval(filtered, depth_stage.mm_per_crop_px, config)
        # warp_to_image, with the offset and the mask applied on the crop's footprint only
        # (the rest is NaN): whole-photo passes cost ~25 ms on a 12 MP photo.
        depth_mm = np.full(image.shape[:2], np.nan, np.float32)
        found = warp_window(filtered, depth_stage.aligned, image.shape[:2])
        if found is not None:
            rows, cols, block = found
            block -= depth_stage.nose_offset_mm
            block[~mask[rows, cols]] = np.nan
            depth_mm[rows, cols] = block
    with stage("surface"):
        mesh = surface_arrays(
            depth_mm,
            mm_per_px=scale.mm_per_px,
            origin_px=(float(landmarks[NOSE_TIP, 0]), float(landmarks[NOSE_TIP, 1])),
            image=image,
            grid_step_px=config.grid_step_px,
            target_triangles=config.target_triangles,
            camera=depth_stage.camera,
        )
    return depth_mm, mesh


#: Steepest slope (depth mm per mm outward) the depth continues with past the face oval.
MARGIN_MAX_SLOPE = 1.0
#: The mask's margin reaches this much farther (a fraction of ``mask_margin_mm``) at the
#: top of the forehead and under the chin, tapering to nothing at the face's sides
#: (:func:`~face3d_mesh.mask.face_mask`'s ``stretch_px``): there other MediaPipe runs'
#: ovals stray farthest from ours on a head tilted up or down.
MARGIN_STRETCH = 0.375


def _continue_past_oval(depth_mm, mm_per_px, config) -> np.ndarray:
    """The filtered crop depth continued past the face oval over the mask's margin.

    The depth backends stop at the face oval; the photo's mask reaches
    ``config.mask_margin_mm`` beyond it. There the surface continues the face's slope
    (:func:`~face3d_mesh._extend.extend_linear`, two pixels more for the bilinear warp),
    rather than its outermost depth, which would leave a flat brim and a crease round the
    face. Holes the filter left (``fill_holes=False``) stay holes.
    """
    import cv2

    from ._extend import extend_linear
    from .align import extend_nearest

    reach_mm = config.mask_margin_mm * (1.0 + MARGIN_STRETCH)
    rings = int(np.ceil(reach_mm / max(mm_per_px, 1e-9))) + 2
    known = np.isfinite(depth_mm)
    if rings <= 2 or not known.any():
        return depth_mm
    out = extend_linear(depth_mm, rings)
    # The slope is continued up to MARGIN_MAX_SLOPE away from the oval's outermost depth:
    # where the face turns away steeply (temples, jaw) an unbounded continuation would
    # grow spikes at the outline's convex corners.
    dist_px = cv2.distanceTransform((~known).view(np.uint8), cv2.DIST_L2, 3)
    nearest = extend_nearest(depth_mm)
    bound = MARGIN_MAX_SLOPE * dist_px * mm_per_px
    ext = ~known & np.isfinite(out)
    out[ext] = nearest[ext] + np.clip(out[ext] - nearest[ext], -bound[ext], bound[ext])
    if not config.fill_holes:
        out[_enclosed(~known)] = np.nan
    return out


def _enclosed(missing: np.ndarray) -> np.ndarray:
    """The pixels of ``missing`` not connected (4-neighbours) to the array's border."""
    import cv2

    n, labels = cv2.connectedComponents(missing.view(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.zeros(n, bool)
    outside[border] = True
    outside[0] = True  # label 0: the known pixels
    return ~outside[labels]


def _photo_mask(points, shape, scale, config) -> np.ndarray:
    """The face region on the photo: the face oval, its top and bottom stretched by
    :data:`MARGIN_STRETCH` of the margin, grown by the margin, joined by the face mesh
    where it stands out of the oval (a turned head's nose and lips), then eroded."""
    from .mask import face_mask

    grow_px = config.mask_margin_mm / max(float(scale.mm_per_px), 1e-9)
    return face_mask(
        points, shape, grow_px=grow_px, stretch_px=MARGIN_STRETCH * grow_px,
        erode_px=config.mask_erode_px, silhouette=True,
    )  # fmt: skip


def _principal_point(image, aligned, focal_source: str) -> tuple[float, float]:
    """Where the optical axis meets the photo (pixels), for the model fit, the depth stage
    and the mesh.

    Focal length known: the photo's centre. Only guessed: the photo may be a crop, so its
    centre says nothing about the axis; the face is assumed on it (the centre of the face's
    crop, ``aligned``), which leaves the landmark depths untilted instead of tilting them
    by a guess.
    """
    if focal_source != "default":
        height, width = image.shape[:2]
        return (width - 1) / 2, (height - 1) / 2
    matrix = aligned.matrix
    crop_h, crop_w = aligned.image.shape[:2]
    centre = np.array([(crop_w - 1) / 2, (crop_h - 1) / 2])
    x, y = np.linalg.solve(matrix[:, :2], centre - matrix[:, 2])
    return float(x), float(y)


def _fit_model(face, focal_px: float, axis):
    """The face model fitted to ``face``'s landmarks.

    A perspective camera always: the photo's, or the guessed lens (50 mm-equivalent, the
    face on the optical axis), never nearer than 3 face sizes (:func:`_fit_focal_px`). The
    metric scale measures the biocular width through it; the size its identity implies
    (``model_fit.mm_per_px``) is not combined: on the faces with a known or iris-measured
    size it moved the estimate the wrong way (the scan: 93 mm between the outer eye
    corners for a true 82, against the prior's 90).
    """
    from .model_fit import fit_face_model

    return fit_face_model(face.points, focal_px=_fit_focal_px(focal_px, face), principal_point=axis)


def face_scale(image: np.ndarray, face, *, exif_focal_px=None, config=None):
    """The metric scale :func:`reconstruct` would set for one face of a photo.

    Parameters
    ----------
    image : numpy.ndarray
        H×W×3 uint8 RGB photo.
    face : FaceLandmarks
        One of its faces (:func:`find_faces`).
    exif_focal_px : float, optional, keyword-only
        The photo's focal length in pixels from its EXIF (``FoundFaces.exif_focal_px``).
    config : ReconstructionConfig, optional, keyword-only
        ``focal_length_px`` and ``working_size_px`` are used; the defaults otherwise.

    Returns
    -------
    ScaleEstimate
        As ``rec.scale`` (the face model is fitted for it: ~25 ms).
    """
    from .align import align_face
    from .depth._backends import crop_size_px
    from .scale import estimate_scale

    config = config or ReconstructionConfig()
    focal_px, focal_source = _focal_length(exif_focal_px, image, face, config)
    aligned = align_face(image, face, size_px=crop_size_px(config))
    fit = _fit_model(face, focal_px, _principal_point(image, aligned, focal_source))
    return estimate_scale(face.points, model_fit=fit, focal_px=focal_px, image=image)


def _fit_focal_px(focal_px: float, face) -> float:
    """The focal length (pixels) the face-model fit assumes: the photo's (known or guessed;
    a guess is already this long), but never a camera nearer than
    ``DEFAULT_FOCAL_PER_FACE_SIZE`` (3) face sizes.

    MediaPipe places the landmarks of a close-up (a 26 mm-equivalent lens 15 cm from the
    nose) as if the face were seen from farther away, as it does their depths (correction 0
    of the landmark backend, the same virtual distance): fitted with the photo's own short
    focal length, the model leaves larger landmark residuals, and on renders of close-ups
    the depth map and the 3D surface (NoW-like error) came out worse. The mesh itself is
    still built with the photo's camera (:func:`_camera`).
    """
    from .depth._landmark_depth import DEFAULT_FOCAL_PER_FACE_SIZE

    return max(float(focal_px), DEFAULT_FOCAL_PER_FACE_SIZE * face.size_px)


def _focal_length(exif_focal, image, face, config) -> tuple[float, str]:
    """The photo's focal length in pixels and where it came from (user, exif, default).

    With ``user`` or ``exif`` the photo's centre is taken as the principal point; an EXIF
    focal length is ignored when the photo was cropped since it was taken (see
    :func:`~face3d_mesh.image.exif_focal_length_px`).
    """
    from .depth._landmark_depth import DEFAULT_FOCAL_35MM, DEFAULT_FOCAL_PER_FACE_SIZE

    if config.focal_length_px is not None:
        long_side = max(image.shape[:2])
        if config.focal_length_px < MIN_FOCAL_PER_LONG_SIDE * long_side:
            raise UsageError(
                f"focal length {config.focal_length_px:g} px is too short for a "
                f"{long_side}-pixel photo (a {36 * config.focal_length_px / long_side:.2g} "
                f"mm-equivalent lens; at least {MIN_FOCAL_PER_LONG_SIDE * long_side:g} px): "
                "give it in pixels, e.g. 35 mm-equivalent focal / 36 × the photo's long side"
            )
        return float(config.focal_length_px), "user"
    if exif_focal is not None:
        return exif_focal, "exif"
    # Unknown: a 50 mm-equivalent lens, and the camera at least 3 face sizes away.
    lens = DEFAULT_FOCAL_35MM / 36.0 * max(image.shape[:2])
    return max(lens, DEFAULT_FOCAL_PER_FACE_SIZE * face.size_px), "default"


#: Largest mask margin (mm on the face): past it the mask takes in hair, ears and background,
#: and the depth continued into it is a guess.
MAX_MASK_MARGIN_MM = 25.0
#: Largest extra Gaussian smoothing (mm): a sigma of 20 mm already leaves a featureless dome.
MAX_SMOOTH_SIGMA_MM = 20.0
#: Shortest focal length accepted from the user, as a fraction of the photo's long side (a
#: 7 mm-equivalent lens, wider than any phone's ultra-wide camera): shorter is most likely
#: not in pixels, and would give a mesh metres wide.
MIN_FOCAL_PER_LONG_SIDE = 0.2


_NUMERIC_OPTIONS = (
    "working_size_px", "mask_margin_mm", "mask_erode_px", "bilateral_sigma_space_mm",
    "bilateral_sigma_depth_mm", "outlier_threshold", "smooth_sigma_mm", "target_triangles",
    "grid_step_px", "focal_length_px",
)  # fmt: skip


def validate_config(config: ReconstructionConfig) -> None:
    """Raise :class:`~face3d_mesh.errors.UsageError` naming the first option of ``config``
    out of its range (what :func:`reconstruct` checks before any work; a batch checks it
    before its first photo). The focal length's lower bound depends on the photo and is
    checked with it."""
    import numbers

    from .depth._backends import DEPTH_BACKENDS

    for name in _NUMERIC_OPTIONS:
        value = getattr(config, name)
        if value is None and name in ("grid_step_px", "focal_length_px"):
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UsageError(f"{name} must be a number, got {value!r}")
    if not isinstance(config.face, numbers.Integral) or isinstance(config.face, bool):
        raise UsageError(f"face must be a whole number, got {config.face!r}")
    checks = [
        (config.face >= 0, "face index must be >= 0"),
        (config.depth in DEPTH_BACKENDS,
         f"unknown depth backend {config.depth!r}: use {', '.join(DEPTH_BACKENDS)}"),
        (64 <= config.working_size_px <= 4096, "working size must be 64..4096 pixels"),
        (config.mask_erode_px >= 0, "mask erosion must be >= 0"),
        (0 <= config.mask_margin_mm <= MAX_MASK_MARGIN_MM,
         f"mask margin must be 0..{MAX_MASK_MARGIN_MM:g} mm"),
        (config.bilateral_sigma_space_mm >= 0, "bilateral spatial sigma must be >= 0 mm"),
        (config.bilateral_sigma_depth_mm >= 0, "bilateral depth sigma must be >= 0 mm"),
        (config.outlier_threshold >= 0, "outlier threshold must be >= 0"),
        (0 <= config.smooth_sigma_mm <= MAX_SMOOTH_SIGMA_MM,
         f"smoothing sigma must be 0..{MAX_SMOOTH_SIGMA_MM:g} mm"),
        (config.target_triangles >= 100, "target triangles must be >= 100"),
        (config.grid_step_px is None or config.grid_step_px > 0, "grid step must be > 0 px"),
        (config.focal_length_px is None or config.focal_length_px > 0,
         "focal length must be > 0 px"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    from .depth._registry import MODEL_NAMES

    if config.depth_model not in MODEL_NAMES:
        raise UsageError(
            f"unknown depth model {config.depth_model!r}; available: {', '.join(MODEL_NAMES)}"
        )


class _Timer:
    def __init__(self, timings, label):
        self.timings, self.label = timings, label

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.label] = self.timings.get(self.label, 0.0) + (
            time.perf_counter() - self.start
        )

"""Every parameter of the pipeline, in one frozen dataclass.

Lengths are in millimetres on the face (``*_mm``) or in pixels of the input photo (``*_px``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ReconstructionConfig"]


@dataclass(frozen=True)
class ReconstructionConfig:
    """Parameters of :func:`face3d_mesh.reconstruct`; all keyword-only, all with defaults.

    Attributes
    ----------
    face : int
        Which face to reconstruct when there are several: 0 is the largest.
    depth : str
        Depth backend. Offline: ``"landmarks"`` (MediaPipe's 3D landmarks, interpolated),
        ``"model"`` (the morphable face model fitted to the landmarks, rendered) or
        ``"hybrid"`` (the mean of the two). Neural: ``"midas"`` (the network's relative
        depth fitted to the hybrid depth) or ``"fused"`` (plus a smooth correction toward
        it). ``"auto"``: fused when the network's weights are available, otherwise hybrid.
    depth_model : str
        Registry name of the neural depth model used by ``midas``/``fused``.
    weights : str or None
        Path to a checkpoint file for ``depth_model`` (skips the download).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    working_size_px : int
        Long side, in pixels, of the aligned face crop the depth stages work on; a neural
        backend's crop is at least its network's input size (384–518). 448 by default:
        the offline backends' errors were the same as with 512 on 228 renders (every set
        median within 0.01 mm), and the depth and filter stages ~20 ms faster on a 1024²
        photo (384 was not faster: the bilateral filter then runs at full resolution).
    focal_length_px : float or None
        The photo's focal length in pixels, for the perspective correction of the landmark
        depths. None: from the EXIF tag FocalLengthIn35mmFilm when present, otherwise a
        default guess (a 50 mm-equivalent lens, and the camera at least 3 face sizes away).
        At least 0.2 × the photo's long side (a 7 mm-equivalent lens; shorter raises
        ``UsageError``: it is most likely not in pixels).
    mask_margin_mm : float
        Grows the face-oval mask outward by this much, mm on the face (converted to pixels
        with the metric scale), so that it covers the face oval of other landmark runs,
        which differ by a few pixels (0 = exactly the oval; at most 25); 0.375 of it
        farther at the top of the forehead and under the chin, where they differ most
        (``pipeline.MARGIN_STRETCH``). The depth in the margin continues the face's slope
        outward (no flat brim).
    mask_erode_px : float
        Then shrinks the mask by this many pixels of the input photo (0 = none).
    bilateral_sigma_space_mm : float
        Spatial standard deviation of the bilateral filter, mm on the face (0 disables it).
    bilateral_sigma_depth_mm : float
        Range (depth) standard deviation of the bilateral filter, mm.
    outlier_threshold : float
        Depth outliers are pixels farther than this many robust standard deviations
        (MAD-based) from their neighbourhood median; they are removed and refilled.
        0 disables outlier rejection.
    fill_holes : bool
        Fill NaN holes inside the mask from their surroundings.
    smooth_sigma_mm : float
        Extra Gaussian smoothing of the depth map, mm (0 = none; at most 20).
    target_triangles : int
        Approximate number of triangles of the surface mesh when ``grid_step_px`` is None.
    grid_step_px : float or None
        Grid step of the surface in input-photo pixels (may be < 1); overrides
        ``target_triangles``.
    """

    face: int = 0
    depth: str = "auto"
    depth_model: str = "dpt_hybrid_384"
    weights: str | None = None
    device: str = "auto"
    working_size_px: int = 448
    focal_length_px: float | None = None
    mask_margin_mm: float = 4.0
    mask_erode_px: float = 0.0
    bilateral_sigma_space_mm: float = 2.0
    bilateral_sigma_depth_mm: float = 2.0
    outlier_threshold: float = 4.0
    fill_holes: bool = True
    smooth_sigma_mm: float = 0.0
    target_triangles: int = 80_000
    grid_step_px: float | None = None

    def replace(self, **changes) -> ReconstructionConfig:
        """Return a copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

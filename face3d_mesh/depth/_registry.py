"""Registry of the neural depth models: one :class:`ModelSpec` per published checkpoint.

This module imports neither torch nor timm; the architectures live in their own modules
(``_midas_small``, ``_dpt``, ``_beit``, ``_depth_anything``) and are imported lazily by
:func:`build_architecture`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import ModelError

__all__ = ["ModelSpec", "MODEL_NAMES", "get_spec", "build_architecture"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build, fetch and run one depth model.

    Attributes
    ----------
    name : str
        Registry name (what users type).
    family : str
        ``"midas_small"``, ``"dpt"`` (ViT / hybrid / BEiT encoders) or ``"depth_anything_v2"``.
    module : str
        Submodule of :mod:`face3d_mesh.depth` holding the architecture.
    builder : str
        Name of the function in ``module`` that builds the randomly initialised network.
    url : str
        Official download address of the checkpoint.
    filename : str
        File name in the torch hub cache (``torch.hub.get_dir()/checkpoints``).
    sha256_prefix : str or None
        Leading hex digits of the checkpoint's SHA-256 (None when not published).
    size_bytes : int or None
        Exact file size in bytes (None when not known exactly).
    approx_size_bytes : int
        Download size for display.
    params : int
        Number of parameters (approximate, for display).
    input_size : int
        Network input size the model was trained at (pixels).
    resize_mode : str
        ``"upper_bound"``, ``"minimal"`` or ``"lower_bound"`` (see ``_transforms``).
    multiple_of : int
        Network input sides are multiples of this (32, or 14 for DINOv2).
    mean, std : tuple of float
        Per-channel normalisation of the [0, 1] RGB image.
    output_resize : str
        How the prediction goes back to the photo size: ``"bicubic"`` (align_corners=False,
        MiDaS) or ``"bilinear_ac"`` (bilinear, align_corners=True, Depth-Anything-V2).
    licence : str
        Licence of the weights.
    """

    name: str
    family: str
    module: str
    builder: str
    url: str
    filename: str
    sha256_prefix: str | None
    size_bytes: int | None
    approx_size_bytes: int
    params: int
    input_size: int
    resize_mode: str
    multiple_of: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output_resize: str
    licence: str


_MIDAS = "https://github.com/isl-org/MiDaS/releases/download"

_SPECS = (
    ModelSpec(
        name="midas_v21_small_256",
        family="midas_small",
        module="_midas_small",
        builder="build_midas_small",
        url=f"{_MIDAS}/v2_1/midas_v21_small_256.pt",
        filename="midas_v21_small_256.pt",
        sha256_prefix="70d6b9c8",
        size_bytes=85_761_505,
        approx_size_bytes=85_761_505,
        params=21_300_000,
        input_size=256,
        resize_mode="upper_bound",
        multiple_of=32,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        output_resize="bicubic",
        licence="MIT",
    ),
    ModelSpec(
        name="dpt_hybrid_384",
        family="dpt",
        module="_dpt",
        builder="build_dpt_hybrid",
        url=f"{_MIDAS}/v3/dpt_hybrid_384.pt",
        filename="dpt_hybrid_384.pt",
        sha256_prefix="501f0c75",
        size_bytes=492_757_791,
        approx_size_bytes=492_757_791,
        params=123_100_000,
        input_size=384,
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF,
        std=HALF,
        output_resize="bicubic",
        licence="MIT",
    ),
    ModelSpec(
        name="dpt_large_384",
        family="dpt",
        module="_dpt",
        builder="build_dpt_large",
        url=f"{_MIDAS}/v3/dpt_large_384.pt",
        filename="dpt_large_384.pt",
        sha256_prefix="2f21e586",
        size_bytes=1_376_378_527,
        approx_size_bytes=1_376_378_527,
        params=344_100_000,
        input_size=384,
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF,
        std=HALF,
        output_resize="bicubic",
        licence="MIT",
    ),
    ModelSpec(
        name="dpt_beit_large_512",
        family="dpt",
        module="_beit",
        builder="build_dpt_beit_large",
        url=f"{_MIDAS}/v3_1/dpt_beit_large_512.pt",
        filename="dpt_beit_large_512.pt",
        sha256_prefix="9e9e9007",
        size_bytes=1_581_966_003,
        approx_size_bytes=1_581_966_003,
        params=345_000_000,
        input_size=512,
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF,
        std=HALF,
        output_resize="bicubic",
        licence="MIT",
    ),
    ModelSpec(
        name="depth_anything_v2_vits",
        family="depth_anything_v2",
        module="_depth_anything",
        builder="build_depth_anything_v2_vits",
        url=(
            "https://huggingface.co/depth-anything/Depth-Anything-V2-Small/resolve/main/"
            "depth_anything_v2_vits.pth"
        ),
        filename="depth_anything_v2_vits.pth",
        sha256_prefix=None,
        size_bytes=None,
        approx_size_bytes=99_000_000,
        params=24_800_000,
        input_size=518,
        resize_mode="lower_bound",
        multiple_of=14,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        output_resize="bilinear_ac",
        licence="Apache-2.0",
    ),
)

_BY_NAME = {spec.name: spec for spec in _SPECS}

#: Registry names in display order.
MODEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)


def get_spec(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` of ``name``.

    Raises
    ------
    ModelError
        ``name`` is not a registered model; the message lists the valid names.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        valid = ", ".join(MODEL_NAMES)
        raise ModelError(f"unknown depth model {name!r}; valid names: {valid}") from None


def build_architecture(spec: ModelSpec):
    """Build the randomly initialised ``torch.nn.Module`` of ``spec`` (imports torch)."""
    module = importlib.import_module(f"{__package__}.{spec.module}")
    return getattr(module, spec.builder)()

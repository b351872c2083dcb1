"""Build depth networks (:func:`create_model`) and run them on photos (:func:`load_estimator`).

Sign convention: every model here predicts **relative inverse depth** -- larger values are
closer to the camera, with an unknown positive scale and an unknown shift (values can reach
the thousands). :func:`face3d_mesh.depth.fuse_relative_depth` turns it into millimetres.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError, UsageError
from ._registry import ModelSpec, build_architecture, get_spec
from ._transforms import check_rgb, preprocess, resize_prediction
from ._weights import cache_dir, cached_weights_path, download_weights

__all__ = ["create_model", "load_estimator", "DepthEstimator", "resolve_device"]

_PRECISIONS = ("float32", "float16", "bfloat16", "auto")


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _read_checkpoint(path: Path, spec: ModelSpec) -> dict:
    import torch

    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, not a torch file, unsafe pickle...
        # torch's own message can be a bare pickle opcode ("101" for a PNG): name the kind.
        raise ModelError(
            f"cannot read weights {path}: not a readable PyTorch checkpoint "
            f"({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    if isinstance(state, Mapping) and "model" in state and "optimizer" in state:
        state = state["model"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelError(f"weights {path} are not a state_dict of tensors")
    state = dict(state)
    if spec.module == "_beit":
        from ._beit import strip_checkpoint_buffers

        state = strip_checkpoint_buffers(state)
    return state


def _load_state(model, state: dict, path: Path, spec: ModelSpec, *, assign: bool = False):
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs "
                f"{tuple(own[k].shape)})"
            )
        raise ModelError(f"weights {path} do not fit {spec.name}: " + "; ".join(parts))
    if assign:  # keep the module's dtypes (a half-precision file still gives float32)
        state = {k: v.to(own[k].dtype) if v.dtype != own[k].dtype else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:  # pragma: no cover - checked above
        raise ModelError(f"weights {path} do not fit {spec.name}: {_one_line(exc)}") from None


def _build_empty(spec: ModelSpec):
    """The architecture on the meta device (no memory, no random init), or None."""
    import torch

    try:
        with torch.device("meta"):
            model = build_architecture(spec)
    except Exception:  # pragma: no cover - fall back to a normal build
        return None
    persistent = set(model.state_dict())
    if any(name not in persistent for name, _ in model.named_buffers()):
        return None  # a buffer the checkpoint cannot fill
    return model


def create_model(name: str, weights: str | Path | None = None):
    """Build the depth network ``name`` (a ``torch.nn.Module`` in eval mode, on the CPU).

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"dpt_hybrid_384"`` (see :func:`list_models`).
    weights : str or pathlib.Path or None
        Checkpoint file (a bare ``state_dict`` as published), loaded with
        ``torch.load(..., map_location="cpu", weights_only=True)`` and ``strict=True``.
        None leaves the network randomly initialised (no network access).

    Returns
    -------
    torch.nn.Module
        Maps a normalised ``(B, 3, h, w)`` float32 tensor to ``(B, h, w)`` relative inverse
        depth (larger = closer). Its ``state_dict()`` has the published checkpoint layout
        (BEiT: without the derivable ``relative_position_index`` buffers).

    Raises
    ------
    ModelError
        Unknown name (the message lists the valid ones), unreadable, corrupt or mismatched
        weights file.
    """
    spec = get_spec(name)
    state = path = None
    if weights is not None:
        path = Path(weights).expanduser()
        state = _read_checkpoint(path, spec)
    try:
        # with a checkpoint, build on the meta device and adopt its tensors: no random
        # initialisation of hundreds of millions of parameters, no second copy in memory
        model = _build_empty(spec) if state is not None else None
        assign = model is not None
        if model is None:
            model = build_architecture(spec)
    except ImportError as exc:
        raise ModelError(
            f"cannot build {name}: {_one_line(exc)} (install torch and timm)"
        ) from None
    if state is not None:
        _load_state(model, state, path, spec, assign=assign)
    return model.eval()


def resolve_device(device: str = "cpu"):
    """``"auto"`` -> cuda, then mps, then cpu; otherwise ``torch.device(device)`` if usable.

    Raises
    ------
    UsageError
        Malformed device string.
    ModelError
        The device is not available on this machine.
    """
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"invalid device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelError(
                f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError(f"device {device!r} requested but MPS is not available")
    elif dev.type != "cpu":
        raise UsageError(f"unsupported device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def load_estimator(
    name: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    *,
    precision: str = "float32",
    download: bool = False,
    progress: bool = True,
) -> DepthEstimator:
    """A ready-to-use depth estimator with pretrained weights.

    Parameters
    ----------
    name : str
        Registry name.
    weights : str or pathlib.Path or None
        Checkpoint file; None uses the cached download (see :func:`download_weights`).
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (cuda, then mps,
        then cpu).
    precision : {"float32", "float16", "bfloat16", "auto"}
        Autocast precision of the network body; the head always runs in float32.
        ``"auto"`` is float16 on CUDA and float32 elsewhere. float16 needs a GPU.
        float32 follows the process's TF32 settings: PyTorch lets cuDNN convolutions use
        TF32 on Ampere and newer GPUs by default (about 1e-3 relative); set
        ``torch.backends.cudnn.allow_tf32 = False`` for true float32 there (the CPU has
        no TF32).
    download : bool
        Download missing weights (with a progress bar) instead of raising ModelError.
    progress : bool
        Progress bar for that download.

    Raises
    ------
    ModelError
        Unknown model, no weights (the message says how to get them), bad weights file,
        unavailable device or precision.
    """
    spec = get_spec(name)
    if precision not in _PRECISIONS:
        raise UsageError(f"invalid precision {precision!r}; use one of {', '.join(_PRECISIONS)}")
    if weights is None:
        weights = cached_weights_path(name)
        if weights is None:
            if not download:
                mb = (spec.size_bytes or spec.approx_size_bytes) / 1e6
                raise ModelError(
                    f"no weights for {name} in {cache_dir()}: run `face3d-mesh models "
                    f"download {name}` (about {mb:.0f} MB, needs internet) or pass --weights PATH"
                )
            weights = download_weights(name, progress=progress)
    dev = resolve_device(device)
    model = create_model(name, weights)
    return DepthEstimator(model, spec, dev, precision=precision)


class DepthEstimator:
    """Runs one depth network on RGB photos; create it with :func:`load_estimator`.

    Thread-safe for concurrent ``predict`` calls (no mutable state besides the read-only
    network); several estimators can live in one process.

    Attributes
    ----------
    name : str
    spec : ModelSpec
    model : torch.nn.Module
    device : torch.device
    dtype : torch.dtype
        Autocast dtype of the network body (float32 = no autocast).
    """

    def __init__(self, model, spec: ModelSpec, device, *, precision: str = "float32") -> None:
        import torch

        self.spec = spec
        self.name = spec.name
        self.device = device
        if precision == "auto":
            precision = "float16" if device.type == "cuda" else "float32"
        dtype = getattr(torch, precision)
        if dtype == torch.float16 and device.type == "cpu":
            raise ModelError("float16 precision needs a GPU; use float32 or bfloat16 on the CPU")
        self.dtype = dtype
        self._channels_last = device.type == "cuda"
        model = model.to(device).eval()
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    def __repr__(self) -> str:
        return f"DepthEstimator({self.name!r}, device={str(self.device)!r}, dtype={self.dtype})"

    def network_input(self, rgb: np.ndarray) -> np.ndarray:
        """The preprocessed ``(3, h, w)`` float32 network input of one photo."""
        return preprocess(rgb, self.spec)

    def _forward(self, batch: np.ndarray):
        import torch

        x = torch.from_numpy(batch).to(self.device)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.dtype == torch.float32:
                return self.model(x).float()
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                return self.model(x).float()

    def _finish(self, pred, out_hw: tuple[int, int]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = resize_prediction(pred, out_hw, self.spec.output_resize)
        return out[0].cpu().numpy().astype(np.float32, copy=False)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Relative inverse depth of one photo.

        Parameters
        ----------
        rgb : numpy.ndarray
            ``(H, W, 3)`` uint8 RGB photo.

        Returns
        -------
        numpy.ndarray
            ``(H, W)`` float32, relative inverse depth at the photo's size: larger = closer,
            unknown positive scale and shift, non-negative.

        Raises
        ------
        ImageError
            Not an ``H x W x 3`` uint8 image, or an unusable aspect ratio.
        """
        rgb = check_rgb(rgb)
        x = self.network_input(rgb)
        pred = self._forward(x[None])
        return self._finish(pred, rgb.shape[:2])

    def predict_batch(self, images: Sequence[np.ndarray], *, batch_size: int = 4) -> list:
        """:meth:`predict` for several photos; photos with equal network input size share a
        forward pass (at most ``batch_size`` at a time).

        Returns
        -------
        list of numpy.ndarray
            One ``(H_i, W_i)`` float32 map per input photo, in order.
        """
        if batch_size < 1:
            raise UsageError("batch_size must be at least 1")
        images = [check_rgb(im) for im in images]
        inputs = [self.network_input(im) for im in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(x.shape, []).append(i)
        results: list = [None] * len(images)
        for idx in groups.values():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                pred = self._forward(np.stack([inputs[i] for i in chunk]))
                for j, i in enumerate(chunk):
                    results[i] = self._finish(pred[j : j + 1], images[i].shape[:2])
        return results

"""Decoder building blocks shared by the MiDaS, DPT and Depth-Anything-V2 networks.

The module and attribute names reproduce the published checkpoints' key layout
(``scratch.layer1_rn``, ``scratch.refinenet4.resConfUnit1.conv1`` ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Interpolate",
    "ResidualConvUnit",
    "FusionBlock",
    "make_scratch",
    "run_head_fp32",
]


class Interpolate(nn.Module):
    """Parameter-free ``F.interpolate`` by ``scale_factor`` (a head layer of the checkpoints)."""

    def __init__(self, *, scale_factor: float, mode: str, align_corners: bool) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners
        )


class ResidualConvUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))`` with 3x3 convolutions (bias, no batch norm)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FusionBlock(nn.Module):
    """Feature fusion block of the DPT / MiDaS decoders.

    ``out = x0 (+ resConfUnit1(x1))``, then ``resConfUnit2``, then a bilinear resize
    (align_corners=True) to ``size`` -- or by a factor 2 when ``size`` is None -- and a
    1x1 output convolution (``features -> features`` or ``features // 2`` with ``expand``).
    """

    def __init__(self, features: int, *, expand: bool = False) -> None:
        super().__init__()
        out_features = features // 2 if expand else features
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, out_features, kernel_size=1, stride=1, padding=0)

    def forward(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor | None = None,
        *,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        out = x0
        if x1 is not None:
            out = out + self.resConfUnit1(x1)
        out = self.resConfUnit2(out)
        if size is None:
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(out)


def make_scratch(in_shape, out_features: int, *, expand: bool = False) -> nn.Module:
    """The ``scratch`` module with ``layer{1..4}_rn``: 3x3 convolutions without bias.

    With ``expand`` the output widths are ``out_features * (1, 2, 4, 8)``.
    """
    mult = (1, 2, 4, 8) if expand else (1, 1, 1, 1)
    scratch = nn.Module()
    for i in range(4):
        conv = nn.Conv2d(
            in_shape[i], out_features * mult[i], kernel_size=3, stride=1, padding=1, bias=False
        )
        setattr(scratch, f"layer{i + 1}_rn", conv)
    return scratch


def run_head_fp32(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``head`` in float32 even inside an fp16/bf16 autocast region.

    The depth heads produce values in the thousands, which can overflow in half precision.
    Outside autocast this is just ``head(x)``.
    """
    device_type = x.device.type
    try:
        autocast_on = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no device argument
        autocast_on = torch.is_autocast_enabled()
    if not autocast_on and x.dtype == torch.float32:
        return head(x)
    with torch.autocast(device_type=device_type, enabled=False):
        return head(x.float())

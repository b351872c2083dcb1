"""MiDaS v2.1 Small (``midas_v21_small_256``) on timm's ``tf_efficientnet_lite3``.

Follows ``midas/midas_net_custom.py``: EfficientNet-Lite3 (TF "same" padding, ReLU6,
BN eps 1e-3) split into four stages (1/4: 32 ch, 1/8: 48, 1/16: 136, 1/32: 384), an
expanding scratch (64, 128, 256, 512 channels), fusion blocks that halve the channels and
upsample x2 (bilinear, align_corners=True), and the head Conv3x3 64->32, x2 bilinear
(**align_corners=False**), Conv3x3 32->32, ReLU, Conv1x1 32->1, ReLU.

Output: relative inverse depth (larger = closer), ``(B, H, W)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import FusionBlock, Interpolate, make_scratch, run_head_fp32

__all__ = ["MidasSmall", "build_midas_small"]


class MidasSmall(nn.Module):
    """MiDaS v2.1 Small with the checkpoint's key layout (``pretrained.layer1`` ...)."""

    def __init__(self, effnet: nn.Module, *, features: int = 64) -> None:
        super().__init__()
        pretrained = nn.Module()
        # index 2 was the separate activation of the original EfficientNet; timm's bn1
        # applies it already, so an Identity keeps the checkpoint's indices.
        pretrained.layer1 = nn.Sequential(
            effnet.conv_stem, effnet.bn1, nn.Identity(), *effnet.blocks[0:2]
        )
        pretrained.layer2 = nn.Sequential(*effnet.blocks[2:3])
        pretrained.layer3 = nn.Sequential(*effnet.blocks[3:5])
        pretrained.layer4 = nn.Sequential(*effnet.blocks[5:7])
        self.pretrained = pretrained

        self.scratch = make_scratch((32, 48, 136, 384), features, expand=True)
        self.scratch.refinenet4 = FusionBlock(features * 8, expand=True)
        self.scratch.refinenet3 = FusionBlock(features * 4, expand=True)
        self.scratch.refinenet2 = FusionBlock(features * 2, expand=True)
        self.scratch.refinenet1 = FusionBlock(features, expand=False)
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, stride=1, padding=1),
            Interpolate(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(features // 2, 32, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, kernel_size=1, stride=1, padding=0),
            nn.ReLU(True),
            nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised image -> ``(B, H, W)`` relative inverse depth."""
        p, s = self.pretrained, self.scratch
        l1 = p.layer1(x)
        l2 = p.layer2(l1)
        l3 = p.layer3(l2)
        l4 = p.layer4(l3)
        path = s.refinenet4(s.layer4_rn(l4))
        path = s.refinenet3(path, s.layer3_rn(l3))
        path = s.refinenet2(path, s.layer2_rn(l2))
        path = s.refinenet1(path, s.layer1_rn(l1))
        return run_head_fp32(s.output_conv, path).squeeze(1)


def build_midas_small() -> MidasSmall:
    """Randomly initialised MiDaS v2.1 Small (no network access)."""
    import timm

    effnet = timm.create_model("tf_efficientnet_lite3", pretrained=False)
    return MidasSmall(effnet)

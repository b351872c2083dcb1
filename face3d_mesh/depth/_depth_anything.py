"""Depth-Anything-V2 Small (``depth_anything_v2_vits``) on timm's DINOv2 ViT-S/14.

Follows DepthAnything/Depth-Anything-V2 (``depth_anything_v2/dpt.py``, ``dinov2.py``):

* encoder DINOv2 ViT-S/14 (``pretrained.*``, plus the unused ``mask_token``); position
  embeddings interpolated bicubically with ``scale_factor = ((H/14 + 0.1) / 37,
  (W/14 + 0.1) / 37)`` (no antialias) unless the grid is 37x37 and the input square;
* taps after blocks 2, 5, 8, 11 **with** the final norm, cls token dropped;
* ``depth_head``: 1x1 projections to 48/96/192/384 channels, resize (ConvT k4 s4,
  ConvT k2 s2, identity, Conv3x3 s2), scratch with 64 features, fusion, ``output_conv1``
  (64->32), bilinear (align_corners=True) resize to ``(14*ph, 14*pw)``, ``output_conv2``
  (Conv3x3 32->32, ReLU, Conv1x1 32->1, ReLU), then ReLU.

Output: relative inverse depth (larger = closer), ``(B, 14*(H//14), 14*(W//14))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import FusionBlock, make_scratch, run_head_fp32

__all__ = [
    "DepthAnythingV2",
    "DepthHead",
    "interpolate_pos_encoding",
    "build_depth_anything_v2_vits",
]


def interpolate_pos_encoding(
    pos_embed: torch.Tensor, grid: tuple[int, int], image_hw: tuple[int, int], *, patch: int = 14
) -> torch.Tensor:
    """DINOv2 position embeddings for a ``grid = (H//14, W//14)`` token grid.

    Parameters
    ----------
    pos_embed : torch.Tensor
        ``(1, 1 + N, C)`` with a square ``sqrt(N) x sqrt(N)`` grid (37x37 for 518 px).
    grid : tuple of int
        Token rows and columns.
    image_hw : tuple of int
        Input height and width in pixels (the reference's shortcut needs them).

    Returns
    -------
    torch.Tensor
        ``(1, 1 + rows*cols, C)``, same dtype as ``pos_embed``.
    """
    n = pos_embed.shape[1] - 1
    h, w = image_hw
    if grid[0] * grid[1] == n and h == w:
        return pos_embed
    dtype = pos_embed.dtype
    pe = pos_embed.float()
    cls_pe, patch_pe = pe[:, 0], pe[:, 1:]
    dim = pe.shape[-1]
    sqrt_n = math.sqrt(n)
    sh = float(h // patch + 0.1) / sqrt_n
    sw = float(w // patch + 0.1) / sqrt_n
    patch_pe = F.interpolate(
        patch_pe.reshape(1, int(sqrt_n), int(sqrt_n), dim).permute(0, 3, 1, 2),
        scale_factor=(sh, sw),
        mode="bicubic",
        antialias=False,
    )
    if tuple(patch_pe.shape[-2:]) != tuple(grid):  # pragma: no cover - guarded by the 0.1
        raise RuntimeError(
            f"position embedding resized to {tuple(patch_pe.shape[-2:])}, not {grid}"
        )
    patch_pe = patch_pe.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((cls_pe.unsqueeze(0), patch_pe), dim=1).to(dtype)


class DepthHead(nn.Module):
    """The DPT head of Depth-Anything-V2 (``depth_head.*``)."""

    def __init__(self, in_channels: int, *, features: int, out_channels) -> None:
        super().__init__()
        self.projects = nn.ModuleList(
            [nn.Conv2d(in_channels, oc, kernel_size=1, stride=1, padding=0) for oc in out_channels]
        )
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = make_scratch(out_channels, features)
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FusionBlock(features))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, kernel_size=3, stride=1, padding=1),
            nn.ReLU(True),
            nn.Conv2d(32, 1, kernel_size=1, stride=1, padding=0),
            nn.ReLU(True),
            nn.Identity(),
        )

    def _tail(self, path: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        out = self.scratch.output_conv1(path)
        out = F.interpolate(out, out_hw, mode="bilinear", align_corners=True)
        return self.scratch.output_conv2(out)

    def forward(self, tokens, grid: tuple[int, int]) -> torch.Tensor:
        maps = []
        for i, t in enumerate(tokens):
            x = t.permute(0, 2, 1).reshape(t.shape[0], t.shape[-1], grid[0], grid[1])
            maps.append(self.resize_layers[i](self.projects[i](x)))
        s = self.scratch
        r1, r2, r3, r4 = (getattr(s, f"layer{i + 1}_rn")(maps[i]) for i in range(4))
        path = s.refinenet4(r4, size=r3.shape[2:])
        path = s.refinenet3(path, r3, size=r2.shape[2:])
        path = s.refinenet2(path, r2, size=r1.shape[2:])
        path = s.refinenet1(path, r1)
        out_hw = (int(grid[0] * 14), int(grid[1] * 14))
        return run_head_fp32(lambda p: self._tail(p, out_hw), path)


class DepthAnythingV2(nn.Module):
    """Depth-Anything-V2 with the checkpoint's key layout (``pretrained.*``, ``depth_head.*``)."""

    def __init__(self, vit: nn.Module, *, taps, features: int, out_channels) -> None:
        super().__init__()
        self.pretrained = vit
        self.tap_blocks = tuple(taps)
        self.depth_head = DepthHead(vit.embed_dim, features=features, out_channels=out_channels)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normed patch tokens ``(B, h*w, C)`` after the ``taps`` blocks (cls dropped)."""
        m = self.pretrained
        grid = (x.shape[2] // 14, x.shape[3] // 14)
        t = m.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((m.cls_token.expand(t.shape[0], -1, -1), t), dim=1)
        t = t + interpolate_pos_encoding(m.pos_embed, grid, (x.shape[2], x.shape[3])).to(t.dtype)
        outs = []
        last = max(self.tap_blocks)
        for i, blk in enumerate(m.blocks):
            if i > last:
                break
            t = blk(t)
            if i in self.tap_blocks:
                outs.append(m.norm(t)[:, 1:])
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised image -> ``(B, 14*(H//14), 14*(W//14))`` inverse depth."""
        grid = (x.shape[2] // 14, x.shape[3] // 14)
        depth = self.depth_head(self.taps(x), grid)
        return F.relu(depth).squeeze(1)


def build_depth_anything_v2_vits() -> DepthAnythingV2:
    """Randomly initialised Depth-Anything-V2 Small (no network access)."""
    import timm

    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=518)
    # the checkpoint carries DINOv2's (unused) mask token
    vit.mask_token = nn.Parameter(torch.zeros(1, vit.embed_dim))
    return DepthAnythingV2(vit, taps=(2, 5, 8, 11), features=64, out_channels=(48, 96, 192, 384))

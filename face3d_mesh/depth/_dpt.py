"""DPT depth networks of MiDaS v3 (DPT-Hybrid, DPT-Large) on timm ViT backbones.

Layout of the checkpoints (``pretrained.*`` encoder, ``scratch.*`` decoder) and every
resampling step follow isl-org/MiDaS (``midas/dpt_depth.py``, ``midas/backbones/vit.py``):

* the backbone taps are block outputs before the final norm;
* reassemble (``act_postprocess{1..4}``): readout projection (patch token ++ cls token,
  ``Linear(2C, C)`` + GELU), tokens to a ``(H/16, W/16)`` grid, 1x1 convolution, then
  ConvTranspose k4 s4 / ConvTranspose k2 s2 / nothing / Conv3x3 s2;
* position embeddings are resized bilinearly (align_corners=False) to ``(H/16, W/16)``;
* fusion with bilinear align_corners=True resizing to the next finer map's size;
* head: Conv3x3, x2 bilinear (align_corners=True), Conv3x3, ReLU, Conv1x1, ReLU.

The output is relative inverse depth (larger = closer), shape ``(B, H, W)`` for an input
``(B, 3, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import FusionBlock, Interpolate, make_scratch, run_head_fp32

__all__ = ["DPTDepthModel", "ViTEncoder", "HybridViTEncoder", "build_dpt_hybrid", "build_dpt_large"]


class ProjectReadout(nn.Module):
    """Concatenate each patch token with the cls token and project back to ``C``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * in_features, in_features), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = x[:, 1:]
        readout = x[:, 0].unsqueeze(1).expand_as(patches)
        return self.project(torch.cat((patches, readout), dim=-1))


class _NoParams(nn.Module):
    """Placeholder at the checkpoint's parameter-free positions (transpose, unflatten)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        return x


def make_reassemble(vit_features: int, features: int, stage: int) -> nn.Sequential:
    """``act_postprocess{stage}``: readout, (transpose), (unflatten), 1x1 conv, resample."""
    layers = [
        ProjectReadout(vit_features),
        _NoParams(),
        _NoParams(),
        nn.Conv2d(vit_features, features, 1),
    ]
    if stage == 1:
        layers.append(nn.ConvTranspose2d(features, features, kernel_size=4, stride=4, padding=0))
    elif stage == 2:
        layers.append(nn.ConvTranspose2d(features, features, kernel_size=2, stride=2, padding=0))
    elif stage == 4:
        layers.append(nn.Conv2d(features, features, kernel_size=3, stride=2, padding=1))
    return nn.Sequential(*layers)


def apply_reassemble(post: nn.Sequential, tokens: torch.Tensor, grid: tuple[int, int]):
    """Tokens ``(B, 1 + h*w, C)`` -> feature map, through ``post`` (see make_reassemble)."""
    x = post[0](tokens)  # (B, h*w, C)
    x = x.transpose(1, 2).unflatten(2, grid)
    for layer in post[3:]:
        x = layer(x)
    return x


def resize_pos_embed(posemb: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """MiDaS' position-embedding resize: the square grid part, bilinear (align_corners=False).

    Parameters
    ----------
    posemb : torch.Tensor
        ``(1, 1 + g*g, C)``: cls position then a square ``g x g`` grid.
    grid : tuple of int
        Target ``(rows, cols)`` = ``(H // 16, W // 16)``.

    Returns
    -------
    torch.Tensor
        ``(1, 1 + rows*cols, C)``.
    """
    tok, grid_part = posemb[:, :1], posemb[0, 1:]
    old = int(round(grid_part.shape[0] ** 0.5))
    grid_part = grid_part.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid_part = F.interpolate(grid_part, size=tuple(grid), mode="bilinear", align_corners=False)
    grid_part = grid_part.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
    return torch.cat([tok, grid_part], dim=1)


class ViTEncoder(nn.Module):
    """timm ViT (``model``) plus the four reassemble stages; taps blocks ``hooks``."""

    def __init__(self, model: nn.Module, *, hooks, features, vit_features: int) -> None:
        super().__init__()
        self.model = model
        self.hooks = tuple(hooks)
        for s in range(4):
            setattr(
                self, f"act_postprocess{s + 1}", make_reassemble(vit_features, features[s], s + 1)
            )

    def _tokens(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        m = self.model
        t = m.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((m.cls_token.expand(t.shape[0], -1, -1), t), dim=1)
        return t + resize_pos_embed(m.pos_embed, grid).to(t.dtype)

    def _run_blocks(self, t: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        last = max(self.hooks)
        for i, blk in enumerate(self.model.blocks):
            if i > last:
                break
            t = blk(t)
            if i in self.hooks:
                taps.append(t)
        return taps

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw backbone taps: ``(B, 1 + h*w, C)`` token tensors (cls first)."""
        grid = (x.shape[2] // 16, x.shape[3] // 16)
        return self._run_blocks(self._tokens(x, grid))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        grid = (x.shape[2] // 16, x.shape[3] // 16)
        taps = self.taps(x)
        return [
            apply_reassemble(getattr(self, f"act_postprocess{s + 1}"), taps[s], grid)
            for s in range(4)
        ]


class HybridViTEncoder(ViTEncoder):
    """ViT-B on a ResNetV2-50 stem: stages 1-2 tap the ResNet, stages 3-4 ViT blocks."""

    def __init__(self, model: nn.Module, *, hooks, features, vit_features: int) -> None:
        nn.Module.__init__(self)
        self.model = model
        self.hooks = tuple(hooks[2:])
        self.act_postprocess3 = make_reassemble(vit_features, features[2], 3)
        self.act_postprocess4 = make_reassemble(vit_features, features[3], 4)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """ResNet stage 1 and 2 maps, then the two ViT block outputs (tokens, cls first)."""
        m = self.model
        grid = (x.shape[2] // 16, x.shape[3] // 16)
        backbone = m.patch_embed.backbone
        y = backbone.stem(x)
        stage1 = backbone.stages[0](y)
        stage2 = backbone.stages[1](stage1)
        y = backbone.norm(backbone.stages[2](stage2))
        t = m.patch_embed.proj(y).flatten(2).transpose(1, 2)
        t = torch.cat((m.cls_token.expand(t.shape[0], -1, -1), t), dim=1)
        t = t + resize_pos_embed(m.pos_embed, grid).to(t.dtype)
        return [stage1, stage2, *self._run_blocks(t)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        grid = (x.shape[2] // 16, x.shape[3] // 16)
        stage1, stage2, tap3, tap4 = self.taps(x)
        return [
            stage1,
            stage2,
            apply_reassemble(self.act_postprocess3, tap3, grid),
            apply_reassemble(self.act_postprocess4, tap4, grid),
        ]


class DPTDepthModel(nn.Module):
    """DPT decoder + head on an encoder returning four feature maps (1/4, 1/8, 1/16, 1/32)."""

    def __init__(self, pretrained: nn.Module, in_features, *, features: int = 256) -> None:
        super().__init__()
        self.pretrained = pretrained
        self.scratch = make_scratch(in_features, features)
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FusionBlock(features))
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, stride=1, padding=1),
            Interpolate(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(features // 2, 32, kernel_size=3, stride=1, padding=1),
            nn.ReLU(True),
            nn.Conv2d(32, 1, kernel_size=1, stride=1, padding=0),
            nn.ReLU(True),
            nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised image -> ``(B, H, W)`` relative inverse depth."""
        s = self.scratch
        l1, l2, l3, l4 = self.pretrained(x)
        r1, r2, r3, r4 = s.layer1_rn(l1), s.layer2_rn(l2), s.layer3_rn(l3), s.layer4_rn(l4)
        path = s.refinenet4(r4, size=r3.shape[2:])
        path = s.refinenet3(path, r3, size=r2.shape[2:])
        path = s.refinenet2(path, r2, size=r1.shape[2:])
        path = s.refinenet1(path, r1)
        return run_head_fp32(s.output_conv, path).squeeze(1)


def _timm_model(name: str, **kwargs) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


def build_dpt_large() -> DPTDepthModel:
    """DPT-Large (``dpt_large_384``): timm ``vit_large_patch16_384``, taps 5/11/17/23."""
    features = (256, 512, 1024, 1024)
    vit = _timm_model("vit_large_patch16_384")
    enc = ViTEncoder(vit, hooks=(5, 11, 17, 23), features=features, vit_features=1024)
    return DPTDepthModel(enc, features)


def build_dpt_hybrid() -> DPTDepthModel:
    """DPT-Hybrid (``dpt_hybrid_384``): timm ``vit_base_r50_s16_384`` (old name
    ``vit_base_resnet50_384``); ResNet stages 0-1 and ViT blocks 8, 11."""
    features = (256, 512, 768, 768)
    vit = _timm_model("vit_base_r50_s16_384")
    enc = HybridViTEncoder(vit, hooks=(0, 1, 8, 11), features=features, vit_features=768)
    return DPTDepthModel(enc, features)

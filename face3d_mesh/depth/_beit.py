"""DPT-BEiT-Large-512 of MiDaS v3.1 on timm's ``beit_large_patch16_512``.

Follows ``midas/backbones/beit.py``: no absolute position embedding; each block has its own
relative position bias table for a 32x32 window. For any other token grid ``(h, w)`` the
table's first ``63*63`` rows are resized bilinearly (align_corners=False) to
``(2h-1) x (2w-1)`` (the last three cls rows are kept) and the relative position index is
rebuilt for that grid. Blocks: ``x + gamma_1 * attn(norm1(x))`` then
``x + gamma_2 * mlp(norm2(x))``; taps after blocks 5, 11, 17, 23.

The checkpoint's ``relative_position_index`` buffers are not parameters of this module
(they are derived from the grid); :func:`strip_checkpoint_buffers` drops them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._dpt import DPTDepthModel, apply_reassemble, make_reassemble

__all__ = [
    "BeitEncoder",
    "build_dpt_beit_large",
    "relative_position_index",
    "resize_relative_position_table",
    "strip_checkpoint_buffers",
]


def relative_position_index(grid: tuple[int, int]) -> torch.Tensor:
    """Index into the relative position table for a ``(h, w)`` token grid plus cls token.

    Returns
    -------
    torch.Tensor
        int64 ``(h*w + 1, h*w + 1)``; entries ``< (2h-1)(2w-1)`` address the grid offsets,
        the last three rows of the table are cls->token, token->cls and cls->cls.
    """
    h, w = grid
    num_rel = (2 * h - 1) * (2 * w - 1) + 3
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
    coords = coords.flatten(1)  # (2, h*w)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    index = torch.zeros((h * w + 1, h * w + 1), dtype=rel.dtype)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = num_rel - 3
    index[0:, 0] = num_rel - 2
    index[0, 0] = num_rel - 1
    return index


def resize_relative_position_table(
    table: torch.Tensor, old_window: tuple[int, int], new_window: tuple[int, int]
) -> torch.Tensor:
    """Resize a ``((2a-1)(2b-1) + 3, heads)`` table to a new window (MiDaS' method)."""
    old_h, old_w = 2 * old_window[0] - 1, 2 * old_window[1] - 1
    new_h, new_w = 2 * new_window[0] - 1, 2 * new_window[1] - 1
    n_old = old_h * old_w
    sub = table[:n_old].reshape(1, old_w, old_h, -1).permute(0, 3, 1, 2)
    sub = F.interpolate(sub, size=(new_h, new_w), mode="bilinear", align_corners=False)
    sub = sub.permute(0, 2, 3, 1).reshape(new_h * new_w, -1)
    return torch.cat([sub, table[n_old:]])


def strip_checkpoint_buffers(state_dict: dict) -> dict:
    """Drop the ``relative_position_index`` buffers a BEiT checkpoint carries (new dict)."""
    return {k: v for k, v in state_dict.items() if not k.endswith("relative_position_index")}


def _drop_index_keys(state_dict, prefix, *args) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if key.endswith("relative_position_index"):
            del state_dict[key]


class BeitEncoder(nn.Module):
    """timm BEiT (``model``) plus the four reassemble stages of MiDaS."""

    def __init__(self, model: nn.Module, *, hooks, features, vit_features: int) -> None:
        super().__init__()
        self.model = model
        self.hooks = tuple(hooks)
        self.window = tuple(model.patch_embed.grid_size)
        # timm's own non-persistent buffers are not used here (the index is rebuilt for
        # each grid, the key bias is zero); dropping them keeps the module free of state
        # that is not in the checkpoint (and lets it be built on the meta device)
        for blk in model.blocks:
            for buf in ("relative_position_index", "k_bias"):
                blk.attn._buffers.pop(buf, None)
        for s in range(4):
            setattr(
                self, f"act_postprocess{s + 1}", make_reassemble(vit_features, features[s], s + 1)
            )
        # a published / reference state_dict carries the index buffers: drop them on load,
        # so that ``load_state_dict(checkpoint, strict=True)`` works directly too
        self._register_load_state_dict_pre_hook(_drop_index_keys)
        # per-instance cache of index tensors (they depend on the grid only); a race at
        # worst computes the same tensor twice
        self._index_cache: dict = {}

    def _index(self, grid: tuple[int, int], device) -> torch.Tensor:
        key = (grid, str(device))
        idx = self._index_cache.get(key)
        if idx is None:
            # a normal tensor even when first built under torch.inference_mode(): an
            # inference tensor in the cache would break later autograd-tracked calls
            with torch.inference_mode(False):
                idx = relative_position_index(grid).to(device)
            self._index_cache[key] = idx
        return idx

    def _rel_bias(self, attn: nn.Module, grid: tuple[int, int], index: torch.Tensor):
        table = resize_relative_position_table(attn.relative_position_bias_table, self.window, grid)
        n = grid[0] * grid[1] + 1
        bias = table[index.view(-1)].view(n, n, -1).permute(2, 0, 1).contiguous()
        return bias.unsqueeze(0)

    def _attention(self, attn: nn.Module, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv_bias = torch.cat((attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias))
        qkv = F.linear(x, attn.qkv.weight, qkv_bias)
        qkv = qkv.reshape(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return attn.proj(out.transpose(1, 2).reshape(b, n, c))

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw block outputs after the ``hooks`` blocks: ``(B, 1 + h*w, C)``, cls first."""
        m = self.model
        grid = (x.shape[2] // 16, x.shape[3] // 16)
        t = m.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat((m.cls_token.expand(t.shape[0], -1, -1), t), dim=1)
        index = self._index(grid, x.device)
        taps = []
        last = max(self.hooks)
        for i, blk in enumerate(m.blocks):
            if i > last:
                break
            bias = self._rel_bias(blk.attn, grid, index)
            t = t + blk.gamma_1 * self._attention(blk.attn, blk.norm1(t), bias)
            t = t + blk.gamma_2 * blk.mlp(blk.norm2(t))
            if i in self.hooks:
                taps.append(t)
        return taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        grid = (x.shape[2] // 16, x.shape[3] // 16)
        taps = self.taps(x)
        return [
            apply_reassemble(getattr(self, f"act_postprocess{s + 1}"), taps[s], grid)
            for s in range(4)
        ]


def build_dpt_beit_large() -> DPTDepthModel:
    """DPT-BEiT-Large-512 (``dpt_beit_large_512``): taps 5/11/17/23, features 256..1024."""
    import timm

    features = (256, 512, 1024, 1024)
    beit = timm.create_model("beit_large_patch16_512", pretrained=False)
    enc = BeitEncoder(beit, hooks=(5, 11, 17, 23), features=features, vit_features=1024)
    return DPTDepthModel(enc, features)

"""Small networks shared by the depth tests."""

from __future__ import annotations


def tiny_beit(img_size: int, *, depth: int = 4, init_values: float = 0.1, randomize=True):
    """A 32-wide timm BEiT with relative position bias (no absolute), in eval mode.

    ``randomize`` fills the relative-position tables and q/v biases with N(0, 1) so that
    they matter in comparisons (timm initialises them to zero).
    """
    import torch
    from timm.models.beit import Beit

    beit = Beit(
        img_size=img_size,
        patch_size=16,
        embed_dim=32,
        depth=depth,
        num_heads=2,
        use_abs_pos_emb=False,
        use_rel_pos_bias=True,
        init_values=init_values,
        num_classes=0,
    ).eval()
    if randomize:
        with torch.no_grad():
            for blk in beit.blocks:
                blk.attn.relative_position_bias_table.normal_()
                blk.attn.q_bias.normal_()
                blk.attn.v_bias.normal_()
    return beit


def tiny_vit(img_size: int, *, patch_size: int = 16, init_values: float | None = None):
    """A 4-block, 32-wide timm ViT (cls token, absolute position embedding), eval mode.

    ``patch_size=14, init_values=1.0`` gives a DINOv2-like encoder.
    """
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=32,
        depth=4,
        num_heads=2,
        init_values=init_values,
        num_classes=0,
    ).eval()

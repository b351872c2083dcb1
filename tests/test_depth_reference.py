"""Numerical self-checks of the tricky parts of the depth networks.

* position-embedding resizing (MiDaS: bilinear to a size; DINOv2: bicubic by a scale
  factor) against direct numpy implementations of PyTorch's interpolation formulas;
* BEiT's relative position index / table resizing against timm and numpy;
* our encoders' token taps against timm's own forward pass at the native size (tiny
  random configurations, and the real DPT-Hybrid).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from depth_helpers import tiny_beit, tiny_vit

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """PyTorch bilinear, align_corners=False, output size given."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        m[i, i0] += 1 - lam
        m[i, i1] += lam
    return m


def _bicubic_matrix(n_in: int, scale_factor: float) -> np.ndarray:
    """PyTorch bicubic (A = -0.75), align_corners=False, scale_factor given."""
    a = -0.75
    n_out = int(math.floor(n_in * scale_factor))

    def c1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) / scale_factor - 0.5
        i0 = int(math.floor(src))
        t = src - i0
        weights = (c2(t + 1), c1(t), c1(1 - t), c2(2 - t))
        for k, w in zip(range(i0 - 1, i0 + 3), weights, strict=True):
            m[i, min(max(k, 0), n_in - 1)] += w
    return m


def _resample(grid: np.ndarray, my: np.ndarray, mx: np.ndarray) -> np.ndarray:
    """grid (h, w, C) -> (my @ grid @ mx.T) per channel."""
    return np.einsum("ih,hwc,jw->ijc", my, grid, mx)


def test_midas_pos_embed_resize_matches_direct_bilinear():
    from face3d_mesh.depth._dpt import resize_pos_embed

    rng = np.random.default_rng(0)
    pos = rng.normal(size=(1, 1 + 24 * 24, 8))
    for grid in [(24, 24), (24, 32), (32, 42), (7, 13)]:
        ours = resize_pos_embed(torch.from_numpy(pos), grid).numpy()
        ref_grid = _resample(
            pos[0, 1:].reshape(24, 24, 8),
            _bilinear_matrix(24, grid[0]),
            _bilinear_matrix(24, grid[1]),
        )
        assert ours.shape == (1, 1 + grid[0] * grid[1], 8)
        np.testing.assert_allclose(ours[0, 0], pos[0, 0])
        np.testing.assert_allclose(ours[0, 1:], ref_grid.reshape(-1, 8), rtol=1e-10, atol=1e-12)


def test_dinov2_pos_embed_matches_direct_bicubic():
    from face3d_mesh.depth._depth_anything import interpolate_pos_encoding

    rng = np.random.default_rng(1)
    pos = rng.normal(size=(1, 1 + 37 * 37, 6))
    pos_t = torch.from_numpy(pos)
    # the native square grid is returned untouched (the reference's shortcut)
    assert interpolate_pos_encoding(pos_t, (37, 37), (518, 518)) is pos_t
    for hw in [(518, 686), (686, 518), (518, 532), (140, 182)]:
        grid = (hw[0] // 14, hw[1] // 14)
        ours = interpolate_pos_encoding(pos_t, grid, hw).numpy()
        my = _bicubic_matrix(37, (grid[0] + 0.1) / 37)
        mx = _bicubic_matrix(37, (grid[1] + 0.1) / 37)
        ref = _resample(pos[0, 1:].reshape(37, 37, 6), my, mx)
        assert ref.shape[:2] == grid
        np.testing.assert_allclose(ours[0, 0], pos[0, 0])
        # the reference interpolates in float32 (``pos_embed.float()``); a wrong scale
        # factor or size would differ by ~1e-2
        np.testing.assert_allclose(ours[0, 1:], ref.reshape(-1, 6), rtol=0, atol=2e-5)
    # non-square grid from a non-square image with a 37x37 token count is interpolated
    out = interpolate_pos_encoding(pos_t, (37, 37), (518, 520))
    assert not torch.equal(out, pos_t)


def test_beit_relative_position_index_matches_timm():
    from timm.models.beit import gen_relative_position_index

    from face3d_mesh.depth._beit import relative_position_index

    for grid in [(32, 32), (32, 42), (3, 5), (6, 2)]:
        assert torch.equal(relative_position_index(grid), gen_relative_position_index(grid))


def test_beit_table_resize_matches_direct_bilinear():
    from face3d_mesh.depth._beit import resize_relative_position_table

    rng = np.random.default_rng(2)
    table = rng.normal(size=(63 * 63 + 3, 4))
    t = torch.from_numpy(table)
    assert torch.equal(resize_relative_position_table(t, (32, 32), (32, 32)), t)
    for new in [(32, 42), (24, 32), (5, 9)]:
        ours = resize_relative_position_table(t, (32, 32), new).numpy()
        nh, nw = 2 * new[0] - 1, 2 * new[1] - 1
        ref = _resample(
            table[: 63 * 63].reshape(63, 63, 4), _bilinear_matrix(63, nh), _bilinear_matrix(63, nw)
        )
        assert ours.shape == (nh * nw + 3, 4)
        np.testing.assert_allclose(ours[:-3], ref.reshape(-1, 4), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(ours[-3:], table[-3:])


def _hooked(blocks, indices):
    store = {}
    handles = [
        blocks[i].register_forward_hook(lambda m, a, out, i=i: store.__setitem__(i, out))
        for i in indices
    ]
    return store, handles


def test_vit_encoder_taps_match_timm():

    from face3d_mesh.depth._dpt import ViTEncoder

    torch.manual_seed(0)
    vit = tiny_vit(64)
    x = torch.randn(2, 3, 64, 64)
    store, handles = _hooked(vit.blocks, [0, 1, 2, 3])
    with torch.no_grad():
        vit.forward_features(x)
    for h in handles:
        h.remove()
    enc = ViTEncoder(vit, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32), vit_features=32).eval()
    with torch.no_grad():
        taps = enc.taps(x)
        maps = enc(x)
    for i, tap in enumerate(taps):
        torch.testing.assert_close(tap, store[i], rtol=1e-5, atol=1e-6)
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 16, 16), (16, 8, 8), (32, 4, 4), (32, 2, 2)]


def test_beit_encoder_taps_match_timm_at_native_size():
    from face3d_mesh.depth._beit import BeitEncoder

    torch.manual_seed(0)
    beit = tiny_beit(64, depth=4, init_values=0.1)
    x = torch.randn(2, 3, 64, 64)
    store, handles = _hooked(beit.blocks, [0, 1, 2, 3])
    with torch.no_grad():
        beit.forward_features(x)
    for h in handles:
        h.remove()
    enc = BeitEncoder(beit, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32), vit_features=32).eval()
    with torch.no_grad():
        taps = enc.taps(x)
        other = enc.taps(torch.randn(1, 3, 48, 80))  # non-square grid runs
    for i, tap in enumerate(taps):
        torch.testing.assert_close(tap, store[i], rtol=1e-5, atol=1e-6)
    assert other[0].shape == (1, 1 + 3 * 5, 32)


def test_dinov2_taps_match_timm_at_native_size():

    from face3d_mesh.depth._depth_anything import DepthAnythingV2

    torch.manual_seed(0)
    vit = tiny_vit(56, patch_size=14, init_values=1.0)
    x = torch.randn(2, 3, 56, 56)
    store, handles = _hooked(vit.blocks, [1, 3])
    with torch.no_grad():
        vit.forward_features(x)
    for h in handles:
        h.remove()
    model = DepthAnythingV2(vit, taps=(0, 1, 2, 3), features=16, out_channels=(8, 8, 16, 16))
    with torch.no_grad():
        taps = model.eval().taps(x)
        out = model(torch.randn(1, 3, 70, 98))
    torch.testing.assert_close(taps[1], vit.norm(store[1])[:, 1:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(taps[3], vit.norm(store[3])[:, 1:], rtol=1e-5, atol=1e-6)
    assert out.shape == (1, 70, 98)


def test_hybrid_taps_match_timm_at_native_size():
    from face3d_mesh.depth import create_model

    torch.manual_seed(0)
    enc = create_model("dpt_hybrid_384").pretrained
    vit = enc.model
    x = torch.randn(1, 3, 384, 384)
    stages, h1 = _hooked(vit.patch_embed.backbone.stages, [0, 1])
    blocks, h2 = _hooked(vit.blocks, [8, 11])
    with torch.no_grad():
        vit.forward_features(x)
        taps = enc.taps(x)
    for h in h1 + h2:
        h.remove()
    torch.testing.assert_close(taps[0], stages[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(taps[1], stages[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(taps[2], blocks[8], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(taps[3], blocks[11], rtol=1e-5, atol=1e-5)

"""Our encoders and decoders against independent re-statements of the reference forward
passes, at **non-square, non-native** input sizes (where 1e-4 is easiest to lose).

Each ``_ref_*`` function below restates, step by step, what the reference code does
(isl-org/MiDaS ``midas/backbones/vit.py`` ``forward_flex`` / ``_resize_pos_embed``,
``midas/backbones/beit.py`` ``_get_rel_pos_bias`` / ``attention_forward`` /
``block_forward``, ``midas/backbones/utils.py`` ``forward_adapted_unflatten``,
``midas/blocks.py`` ``FeatureFusionBlock_custom``, ``midas/dpt_depth.py``;
Depth-Anything-V2 ``dinov2.py`` ``interpolate_pos_encoding`` /
``get_intermediate_layers`` and ``dpt.py`` ``DPTHead``), using only the timm modules'
weights and hooks on timm's own blocks -- none of our helpers. Tiny random
configurations keep it fast.
"""

from __future__ import annotations

import math

import pytest
from depth_helpers import tiny_beit, tiny_vit

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
F = torch.nn.functional


def _hook(modules, indices):
    store = {}
    handles = [
        modules[i].register_forward_hook(lambda m, a, out, i=i: store.__setitem__(i, out))
        for i in indices
    ]
    return store, handles


# --------------------------------------------------------------------------- MiDaS ViT


def _ref_vit_flex(vit, x, hooks):
    """``forward_flex``: pos-embed resized bilinearly (align_corners default) to
    (H//16, W//16), cls concatenated first, then every block; taps via forward hooks."""
    b, _, h, w = x.shape
    gh, gw = h // 16, w // 16
    tok, grid = vit.pos_embed[:, :1], vit.pos_embed[0, 1:]
    old = int(math.sqrt(len(grid)))
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bilinear")
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
    pos = torch.cat([tok, grid], dim=1)
    if hasattr(vit.patch_embed, "backbone"):
        feats = vit.patch_embed.backbone(x)
        if isinstance(feats, (list, tuple)):
            feats = feats[-1]
        t = vit.patch_embed.proj(feats).flatten(2).transpose(1, 2)
    else:
        t = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
    t = torch.cat((vit.cls_token.expand(b, -1, -1), t), dim=1) + pos
    store, handles = _hook(vit.blocks, hooks)
    try:
        for blk in vit.blocks:
            t = blk(t)
    finally:
        for hd in handles:
            hd.remove()
    return [store[i] for i in hooks]


def _ref_postprocess(post, tap, grid):
    """``forward_adapted_unflatten``: post[0:2], unflatten to the grid when 3-D, post[3:]."""
    y = post[0](tap).transpose(1, 2)
    if y.ndim == 3:
        y = y.unflatten(2, grid)
    for layer in list(post)[3:]:
        y = layer(y)
    return y


def _randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_vit_encoder_non_square_matches_reference_forward_flex():

    from face3d_mesh.depth._dpt import ViTEncoder

    torch.manual_seed(0)
    vit = tiny_vit(96)
    with torch.no_grad():
        vit.pos_embed.normal_()  # a smooth-free table makes a wrong resize visible
    enc = ViTEncoder(vit, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32), vit_features=32).eval()
    for hw in [(64, 128), (96, 64), (160, 96)]:
        x = torch.randn(2, 3, *hw)
        grid = (hw[0] // 16, hw[1] // 16)
        with torch.no_grad():
            ref_taps = _ref_vit_flex(vit, x, [0, 1, 2, 3])
            taps = enc.taps(x)
            maps = enc(x)
            for s in range(4):
                torch.testing.assert_close(taps[s], ref_taps[s], rtol=1e-5, atol=1e-5)
                ref_map = _ref_postprocess(
                    getattr(enc, f"act_postprocess{s + 1}"), ref_taps[s], grid
                )
                torch.testing.assert_close(maps[s], ref_map, rtol=1e-5, atol=1e-5)


def test_hybrid_encoder_non_square_matches_reference_forward_flex():
    """Real DPT-Hybrid encoder (random weights) at 256x384: the ResNet taps are the
    stage outputs of a full ``patch_embed.backbone(x)`` call, the ViT taps follow it."""
    from face3d_mesh.depth import create_model

    torch.manual_seed(0)
    enc = create_model("dpt_hybrid_384").pretrained.eval()
    vit = enc.model
    x = torch.randn(1, 3, 256, 384)
    stages, handles = _hook(vit.patch_embed.backbone.stages, [0, 1])
    try:
        with torch.no_grad():
            ref = _ref_vit_flex(vit, x, [8, 11])
    finally:
        for hd in handles:
            hd.remove()
    with torch.no_grad():
        maps = enc(x)
        ref_maps = [
            stages[0],
            stages[1],
            _ref_postprocess(enc.act_postprocess3, ref[0], (16, 24)),
            _ref_postprocess(enc.act_postprocess4, ref[1], (16, 24)),
        ]
    assert [tuple(m.shape[2:]) for m in maps] == [(64, 96), (32, 48), (16, 24), (8, 12)]
    for ours, theirs in zip(maps, ref_maps, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- MiDaS BEiT


def _ref_beit(beit, x, hooks):
    """MiDaS' patched BEiT: per block, the 32x32-window table's first (2a-1)^2 rows
    reshaped (1, old_w, old_h, -1), bilinear (align_corners default) to
    (2h-1, 2w-1), last 3 rows kept, indexed by timm's ``gen_relative_position_index``;
    explicit attention ``softmax(q*scale @ k^T + bias) @ v`` with bias (q, 0, v)."""
    from timm.models.beit import gen_relative_position_index

    b, _, h, w = x.shape
    window = (h // 16, w // 16)
    t = beit.patch_embed.proj(x).flatten(2).transpose(1, 2)
    t = torch.cat((beit.cls_token.expand(b, -1, -1), t), dim=1)
    taps = []
    for i, blk in enumerate(beit.blocks):
        a = blk.attn
        table = a.relative_position_bias_table
        ow, oh = 2 * a.window_size[1] - 1, 2 * a.window_size[0] - 1
        nh, nw = 2 * window[0] - 1, 2 * window[1] - 1
        n_old = table.shape[0] - 3
        sub = table[:n_old].reshape(1, ow, oh, -1).permute(0, 3, 1, 2)
        sub = F.interpolate(sub, size=(nh, nw), mode="bilinear")
        sub = sub.permute(0, 2, 3, 1).reshape(nh * nw, -1)
        new_table = torch.cat([sub, table[n_old:]])
        index = gen_relative_position_index(window)
        n = window[0] * window[1] + 1
        bias = new_table[index.view(-1)].view(n, n, -1).permute(2, 0, 1).unsqueeze(0)

        y = blk.norm1(t)
        qkv_bias = torch.cat((a.q_bias, torch.zeros_like(a.v_bias), a.v_bias))
        qkv = F.linear(y, a.qkv.weight, qkv_bias)
        qkv = qkv.reshape(b, n, 3, a.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * a.scale) @ k.transpose(-2, -1) + bias
        y = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, -1)
        t = t + blk.gamma_1 * a.proj(y)
        t = t + blk.gamma_2 * blk.mlp(blk.norm2(t))
        if i in hooks:
            taps.append(t)
    return taps


def test_beit_encoder_non_square_matches_reference():
    from face3d_mesh.depth._beit import BeitEncoder

    torch.manual_seed(0)
    beit = tiny_beit(96, depth=4, init_values=0.5)
    enc = BeitEncoder(beit, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32), vit_features=32)
    enc.eval()
    # native (6x6 window), non-square both ways, smaller and larger than native
    for hw in [(96, 96), (64, 128), (128, 80), (48, 48)]:
        x = torch.randn(2, 3, *hw)
        with torch.no_grad():
            ref = _ref_beit(beit, x, (0, 1, 2, 3))
            taps = enc.taps(x)
        assert len(taps) == 4
        for ours, theirs in zip(taps, ref, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- DPT decoder


def _ref_rcu(unit, x):
    out = unit.conv1(F.relu(x))
    return unit.conv2(F.relu(out)) + x


def _ref_fusion(block, *xs, size=None, align_corners=True):
    out = xs[0]
    if len(xs) == 2:
        out = out + _ref_rcu(block.resConfUnit1, xs[1])
    out = _ref_rcu(block.resConfUnit2, out)
    mod = {"scale_factor": 2} if size is None else {"size": size}
    out = F.interpolate(out, **mod, mode="bilinear", align_corners=align_corners)
    return block.out_conv(out)


def test_dpt_decoder_matches_reference_wiring():
    """``DPT.forward`` + ``DPTDepthModel`` head with our encoder's four maps."""

    from face3d_mesh.depth._dpt import DPTDepthModel, ViTEncoder

    torch.manual_seed(0)
    vit = tiny_vit(64)
    enc = ViTEncoder(vit, hooks=(0, 1, 2, 3), features=(8, 16, 32, 32), vit_features=32)
    model = DPTDepthModel(enc, (8, 16, 32, 32), features=16).eval()
    _randomise(model.scratch, 1)
    x = torch.randn(1, 3, 96, 160)  # 6x10 grid: odd 1/32 map (3x5)
    s = model.scratch
    with torch.no_grad():
        l1, l2, l3, l4 = enc(x)
        r1, r2, r3, r4 = s.layer1_rn(l1), s.layer2_rn(l2), s.layer3_rn(l3), s.layer4_rn(l4)
        p = _ref_fusion(s.refinenet4, r4, size=r3.shape[2:])
        p = _ref_fusion(s.refinenet3, p, r3, size=r2.shape[2:])
        p = _ref_fusion(s.refinenet2, p, r2, size=r1.shape[2:])
        p = _ref_fusion(s.refinenet1, p, r1)
        h = s.output_conv
        out = h[0](p)
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        out = F.relu(h[4](F.relu(h[2](out))))
        ref = out.squeeze(dim=1)
        ours = model(x)
    assert ours.shape == (1, 96, 160)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_midas_small_matches_reference_wiring():
    """``MidasNet_small.forward``: scale-factor-2 fusion (align_corners=True), head
    upsample with align_corners=False; EfficientNet stages = timm blocks 0-1 | 2 | 3-4 | 5-6
    after the stem (conv, BN, ReLU6). 256x160: a 5-wide 1/32 map."""
    from face3d_mesh.depth import create_model

    torch.manual_seed(0)
    model = create_model("midas_v21_small_256").eval()
    _randomise(model.scratch, 2)
    eff = timm.create_model("tf_efficientnet_lite3", pretrained=False).eval()
    # the model's encoder weights into a fresh timm network, run the timm way
    p = model.pretrained
    eff.conv_stem.load_state_dict(p.layer1[0].state_dict())
    eff.bn1.load_state_dict(p.layer1[1].state_dict())
    for i in range(7):
        src = {
            0: p.layer1[3],
            1: p.layer1[4],
            2: p.layer2[0],
            3: p.layer3[0],
            4: p.layer3[1],
            5: p.layer4[0],
            6: p.layer4[1],
        }[i]
        eff.blocks[i].load_state_dict(src.state_dict())
    x = torch.randn(1, 3, 256, 160)
    store, handles = _hook(eff.blocks, [1, 2, 4, 6])
    try:
        with torch.no_grad():
            eff.forward_features(x)
    finally:
        for hd in handles:
            hd.remove()
    s = model.scratch
    with torch.no_grad():
        r = [
            s.layer1_rn(store[1]),
            s.layer2_rn(store[2]),
            s.layer3_rn(store[4]),
            s.layer4_rn(store[6]),
        ]
        assert [tuple(t.shape[2:]) for t in r] == [(64, 40), (32, 20), (16, 10), (8, 5)]
        q = _ref_fusion(s.refinenet4, r[3])
        q = _ref_fusion(s.refinenet3, q, r[2])
        q = _ref_fusion(s.refinenet2, q, r[1])
        q = _ref_fusion(s.refinenet1, q, r[0])
        h = s.output_conv
        out = F.interpolate(h[0](q), scale_factor=2, mode="bilinear", align_corners=False)
        ref = F.relu(h[4](F.relu(h[2](out)))).squeeze(dim=1)
        ours = model(x)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- DA-V2


def _ref_dinov2_taps(vit, x, taps):
    """``prepare_tokens_with_masks`` + ``get_intermediate_layers(norm=True)``:
    note ``B, nc, w, h = x.shape`` -- "w" is the height there."""
    b, _, w, h = x.shape
    t = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
    t = torch.cat((vit.cls_token.expand(b, -1, -1), t), dim=1)
    npatch, n = t.shape[1] - 1, vit.pos_embed.shape[1] - 1
    if npatch == n and w == h:
        pos = vit.pos_embed
    else:
        pe = vit.pos_embed.float()
        dim = t.shape[-1]
        w0, h0 = w // 14 + 0.1, h // 14 + 0.1
        sq = math.sqrt(n)
        patch = F.interpolate(
            pe[:, 1:].reshape(1, int(sq), int(sq), dim).permute(0, 3, 1, 2),
            scale_factor=(float(w0) / sq, float(h0) / sq),
            mode="bicubic",
            antialias=False,
        )
        assert int(w0) == patch.shape[-2] and int(h0) == patch.shape[-1]
        patch = patch.permute(0, 2, 3, 1).reshape(1, -1, dim)
        pos = torch.cat((pe[:, 0].unsqueeze(0), patch), dim=1)
    t = t + pos
    out = []
    for i, blk in enumerate(vit.blocks):
        t = blk(t)
        if i in taps:
            out.append(vit.norm(t)[:, 1:])
    return out


def test_depth_anything_non_square_matches_reference():

    from face3d_mesh.depth._depth_anything import DepthAnythingV2

    torch.manual_seed(0)
    vit = tiny_vit(98, patch_size=14, init_values=1.0)
    with torch.no_grad():
        vit.pos_embed.normal_()
    model = DepthAnythingV2(vit, taps=(0, 1, 2, 3), features=16, out_channels=(8, 8, 16, 16))
    model.eval()
    _randomise(model.depth_head, 3)
    with torch.no_grad():  # a positive last bias so the ReLU'd output is not all zero
        model.depth_head.scratch.output_conv2[2].bias.fill_(2.0)
    hd = model.depth_head
    s = hd.scratch
    for hw in [(98, 98), (70, 126), (140, 84), (98, 112)]:
        x = torch.randn(1, 3, *hw)
        ph, pw = hw[0] // 14, hw[1] // 14
        with torch.no_grad():
            feats = _ref_dinov2_taps(vit, x, (0, 1, 2, 3))
            taps = model.taps(x)
            for ours, theirs in zip(taps, feats, strict=True):
                torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
            maps = []
            for i, f in enumerate(feats):
                y = f.permute(0, 2, 1).reshape(f.shape[0], f.shape[-1], ph, pw)
                maps.append(hd.resize_layers[i](hd.projects[i](y)))
            r = [getattr(s, f"layer{i + 1}_rn")(maps[i]) for i in range(4)]
            q = _ref_fusion(s.refinenet4, r[3], size=r[2].shape[2:])
            q = _ref_fusion(s.refinenet3, q, r[2], size=r[1].shape[2:])
            q = _ref_fusion(s.refinenet2, q, r[1], size=r[0].shape[2:])
            q = _ref_fusion(s.refinenet1, q, r[0])
            out = s.output_conv1(q)
            out = F.interpolate(out, (ph * 14, pw * 14), mode="bilinear", align_corners=True)
            ref = F.relu(s.output_conv2(out)).squeeze(1)
            ours = model(x)
        assert ours.shape == (1, ph * 14, pw * 14)
        assert float(ref.max()) > 0
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- preprocessing


def _ref_get_size(width, height, *, net, multiple, method):
    """``Resize.get_size`` of midas/transforms.py and DA-V2 util/transform.py
    (keep_aspect_ratio=True): note ``np.round`` rounds halves to even."""
    import numpy as np

    def constrain(x, min_val=0, max_val=None):
        y = (np.round(x / multiple) * multiple).astype(int)
        if max_val is not None and y > max_val:
            y = (np.floor(x / multiple) * multiple).astype(int)
        if y < min_val:
            y = (np.ceil(x / multiple) * multiple).astype(int)
        return y

    sh, sw = net / height, net / width
    if method == "lower_bound":
        if sw > sh:
            sh = sw
        else:
            sw = sh
        return constrain(sw * width, min_val=net), constrain(sh * height, min_val=net)
    if method == "upper_bound":
        if sw < sh:
            sh = sw
        else:
            sw = sh
        return constrain(sw * width, max_val=net), constrain(sh * height, max_val=net)
    if abs(1 - sw) < abs(1 - sh):
        sh = sw
    else:
        sw = sh
    return constrain(sw * width), constrain(sh * height)


def test_network_input_size_matches_reference_resize_everywhere():
    import numpy as np

    from face3d_mesh.depth._registry import MODEL_NAMES, get_spec
    from face3d_mesh.depth._transforms import network_input_size

    rng = np.random.default_rng(7)
    sizes = [
        (640, 480),
        (480, 640),
        (512, 384),
        (384, 512),
        (256, 256),
        (1000, 999),
        (48, 400),
        (401, 33),
        (720, 1280),
        (336, 432),
        (200, 250),
        (666, 500),
    ]
    sizes += [tuple(int(v) for v in rng.integers(40, 2000, size=2)) for _ in range(300)]
    for name in MODEL_NAMES:
        spec = get_spec(name)
        for w, h in sizes:
            ref = _ref_get_size(
                w, h, net=spec.input_size, multiple=spec.multiple_of, method=spec.resize_mode
            )
            got = network_input_size(
                w, h, target=spec.input_size, multiple_of=spec.multiple_of, mode=spec.resize_mode
            )
            assert got == (int(ref[0]), int(ref[1])), (name, w, h)


def test_beit_index_cache_built_in_inference_mode_still_allows_autograd():
    """The cached relative-position index must not be an inference tensor: a model first
    run by the estimator (inference mode) can later be fine-tuned / run with autograd."""
    from face3d_mesh.depth._beit import BeitEncoder

    beit = tiny_beit(64, depth=2, init_values=0.1, randomize=False)
    enc = BeitEncoder(beit, hooks=(0, 1, 1, 1), features=(8, 16, 32, 32), vit_features=32)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        enc.taps(x)
    enc.taps(x)[0].sum().backward()
    assert beit.blocks[0].attn.relative_position_bias_table.grad is not None


# --------------------------------------------------------------------------- whole pipelines


@pytest.mark.parametrize(
    "name, mean, std, back",
    [
        ("midas_v21_small_256", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic"),
        ("depth_anything_v2_vits", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear"),
    ],
)
def test_predict_matches_reference_pipeline(name, mean, std, back, tmp_path):
    """``predict`` == MiDaS ``run.py`` (``read_image`` -> Resize -> NormalizeImage ->
    PrepareForNet -> forward -> bicubic, align_corners=False) / DA-V2 ``infer_image``
    (... -> bilinear, align_corners=True), restated with cv2/numpy/torch directly."""
    import cv2
    import numpy as np

    from face3d_mesh.depth import create_model, load_estimator
    from face3d_mesh.depth._registry import get_spec

    torch.manual_seed(0)
    model = create_model(name)
    state = model.state_dict()
    for k in state:
        if k.endswith(("output_conv.4.bias", "output_conv2.2.bias")):
            state[k] = torch.full_like(state[k], 1.0)
    path = tmp_path / f"{name}.pt"
    torch.save(state, path)
    est = load_estimator(name, weights=path)
    spec = get_spec(name)

    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, size=(301, 437, 3), dtype=np.uint8)
    img = rgb / 255.0
    w, h = _ref_get_size(
        437, 301, net=spec.input_size, multiple=spec.multiple_of, method=spec.resize_mode
    )
    img = cv2.resize(img, (int(w), int(h)), interpolation=cv2.INTER_CUBIC)
    img = (img - list(mean)) / list(std)
    x = np.ascontiguousarray(np.transpose(img, (2, 0, 1))).astype(np.float32)
    with torch.no_grad():
        pred = est.model(torch.from_numpy(x).unsqueeze(0))
        if back == "bicubic":
            ref = (
                F.interpolate(
                    pred.unsqueeze(1), size=(301, 437), mode="bicubic", align_corners=False
                )
                .squeeze()
                .numpy()
            )
        else:
            ref = F.interpolate(pred[:, None], (301, 437), mode="bilinear", align_corners=True)[
                0, 0
            ].numpy()
    ours = est.predict(rgb)
    assert float(np.abs(ref).max()) > 0
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6 * float(np.abs(ref).max()))

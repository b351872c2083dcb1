"""Depth networks: checkpoint layout, strict loading, preprocessing, estimator, weights cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from face3d_mesh.depth import (  # noqa: E402
    MODEL_NAMES,
    cached_weights_path,
    create_model,
    list_models,
    load_estimator,
)
from face3d_mesh.depth._registry import get_spec  # noqa: E402
from face3d_mesh.depth._transforms import network_input_size, preprocess  # noqa: E402
from face3d_mesh.errors import ImageError, ModelError  # noqa: E402

# copy of shared/depth_models/checkpoint_keys.json: the key layout and shapes of every
# published checkpoint, built from the reference classes (no checkpoint downloaded)
KEYS_JSON = Path(__file__).resolve().parent / "data" / "checkpoint_keys.json"

ALL = (
    "midas_v21_small_256",
    "dpt_hybrid_384",
    "dpt_large_384",
    "dpt_beit_large_512",
    "depth_anything_v2_vits",
)


@pytest.fixture(scope="module")
def published_keys():
    data = json.loads(KEYS_JSON.read_text())
    return {name: data[name] for name in ALL}


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    noise = rng.integers(0, 40, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_registry_names():
    assert tuple(MODEL_NAMES) == ALL


def test_unknown_model_lists_valid_names():
    with pytest.raises(ModelError) as err:
        create_model("midas_huge")
    msg = str(err.value)
    assert "\n" not in msg
    for name in ALL:
        assert name in msg


FORWARD_HW = {  # small, non-square inputs (multiples of 32 / 14) for a quick forward
    "midas_v21_small_256": (96, 160),
    "dpt_hybrid_384": (96, 160),
    "dpt_large_384": (96, 160),
    "dpt_beit_large_512": (96, 160),
    "depth_anything_v2_vits": (98, 154),
}


@pytest.mark.parametrize("name", ALL)
def test_layout_strict_load_forward(name, published_keys, tmp_path_factory):
    """Random model == published key layout; saved, reloaded through create_model, run."""
    model = create_model(name)
    assert not model.training
    expected = {
        k: tuple(v[0])
        for k, v in published_keys[name].items()
        if not k.endswith("relative_position_index")
    }
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    if name == "dpt_beit_large_512":  # the checkpoint's extra buffers are dropped on load
        assert sum(k.endswith("relative_position_index") for k in published_keys[name]) == 24

    state = model.state_dict()
    x = torch.randn(1, 3, *FORWARD_HW[name], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = model(x)
    if name == "dpt_beit_large_512":  # mimic the published file, which carries them
        from face3d_mesh.depth._beit import relative_position_index

        for i in range(24):
            state[f"pretrained.model.blocks.{i}.attn.relative_position_index"] = (
                relative_position_index((32, 32))
            )
        model.load_state_dict(state, strict=True)  # a reference state_dict loads directly
    path = tmp_path_factory.mktemp(name) / f"{name}.pt"
    torch.save(state, path)
    del model
    loaded = create_model(name, weights=path)
    path.unlink()
    assert not loaded.training
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k
    with torch.inference_mode():
        after = loaded(x)
    assert after.shape == (1, *FORWARD_HW[name]) and after.dtype == torch.float32
    assert torch.isfinite(after).all()
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_corrupt_and_mismatched_weights(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError) as err:
        create_model("midas_v21_small_256", weights=bad)
    assert "\n" not in str(err.value) and "not a readable PyTorch checkpoint" in str(err.value)

    with pytest.raises(ModelError) as err:
        create_model("midas_v21_small_256", weights=tmp_path / "missing.pt")
    assert "not found" in str(err.value)

    other = tmp_path / "other.pt"
    torch.save(create_model("depth_anything_v2_vits").state_dict(), other)
    with pytest.raises(ModelError) as err:
        create_model("midas_v21_small_256", weights=other)
    msg = str(err.value)
    assert "\n" not in msg and "do not fit" in msg and "missing" in msg

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(other.read_bytes()[:100_000])
    with pytest.raises(ModelError):
        create_model("depth_anything_v2_vits", weights=truncated)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("midas_v21_small_256", (256, 192)),
        ("dpt_hybrid_384", (512, 384)),
        ("dpt_large_384", (512, 384)),
        ("dpt_beit_large_512", (672, 512)),
        ("depth_anything_v2_vits", (686, 518)),
    ],
)
def test_network_input_size_640x480(name, expected):
    spec = get_spec(name)
    size = network_input_size(
        640, 480, target=spec.input_size, multiple_of=spec.multiple_of, mode=spec.resize_mode
    )
    assert size == expected
    x = preprocess(_rgb(480, 640), spec)
    assert x.shape == (3, expected[1], expected[0]) and x.dtype == np.float32


def test_network_input_size_portrait_and_rounding():
    # portrait photo, each mode
    assert network_input_size(480, 640, target=256, multiple_of=32, mode="upper_bound") == (
        192,
        256,
    )
    assert network_input_size(480, 640, target=384, multiple_of=32, mode="minimal") == (384, 512)
    assert network_input_size(480, 640, target=518, multiple_of=14, mode="lower_bound") == (
        518,
        686,
    )
    # upper_bound never exceeds the target; lower_bound never goes below it
    w, h = network_input_size(1000, 999, target=256, multiple_of=32, mode="upper_bound")
    assert w <= 256 and h <= 256
    w, h = network_input_size(1000, 999, target=518, multiple_of=14, mode="lower_bound")
    assert w >= 518 and h >= 518


def test_preprocess_matches_reference_steps():
    spec = get_spec("dpt_hybrid_384")
    rgb = _rgb(100, 130, seed=3)
    img = rgb / 255.0
    w, h = network_input_size(130, 100, target=384, multiple_of=32, mode="minimal")
    import cv2

    ref = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    ref = ((ref - 0.5) / 0.5).transpose(2, 0, 1).astype(np.float32)
    np.testing.assert_array_equal(preprocess(rgb, spec), ref)


def test_bad_images():
    spec = get_spec("midas_v21_small_256")
    with pytest.raises(ImageError):
        preprocess(np.zeros((10, 10), np.uint8), spec)
    with pytest.raises(ImageError):
        preprocess(np.zeros((10, 10, 3), np.float32), spec)
    with pytest.raises(ImageError):  # aspect ratio too extreme for the network
        preprocess(np.zeros((4, 4000, 3), np.uint8), spec)


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """Random checkpoints of the two small models, with a non-zero output."""
    out = {}
    torch.manual_seed(0)
    for name in ("midas_v21_small_256", "depth_anything_v2_vits"):
        model = create_model(name)
        state = model.state_dict()
        for k in state:  # lift the last conv's bias so the ReLU'd output is not all zero
            if k.endswith(("output_conv.4.bias", "output_conv2.2.bias")):
                state[k] = torch.full_like(state[k], 1.0)
        path = tmp_path_factory.mktemp("w") / f"{name}.pt"
        torch.save(state, path)
        out[name] = path
    return out


@pytest.mark.parametrize("name", ["midas_v21_small_256", "depth_anything_v2_vits"])
def test_estimator_output(name, small_weights):
    est = load_estimator(name, weights=small_weights[name], device="cpu")
    rgb = _rgb(480, 640)
    depth = est.predict(rgb)
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.min() >= 0 and depth.max() > 0
    # non-square odd size
    rgb2 = _rgb(301, 203, seed=1)
    depth2 = est.predict(rgb2)
    assert depth2.shape == (301, 203) and np.isfinite(depth2).all()
    if name != "midas_v21_small_256":  # the rest is generic; keep the test fast
        return
    # batch == single
    batch = est.predict_batch([rgb, rgb2, rgb])
    np.testing.assert_allclose(batch[0], depth, rtol=1e-4, atol=1e-5 * float(depth.max()))
    np.testing.assert_allclose(batch[1], depth2, rtol=1e-4, atol=1e-5 * float(depth2.max()))
    assert batch[2].shape == (480, 640)


def test_estimator_matches_manual_pipeline(small_weights):
    """predict == preprocess -> forward -> bicubic resize, done by hand."""
    name = "midas_v21_small_256"
    est = load_estimator(name, weights=small_weights[name])
    rgb = _rgb(240, 320, seed=5)
    x = torch.from_numpy(preprocess(rgb, get_spec(name)))[None]
    with torch.no_grad():
        pred = est.model(x)
        ref = torch.nn.functional.interpolate(
            pred.unsqueeze(1), size=(240, 320), mode="bicubic", align_corners=False
        )[0, 0].numpy()
    np.testing.assert_allclose(est.predict(rgb), ref, rtol=1e-5, atol=1e-6)


def test_estimator_threads(small_weights):
    """Two estimators used from several threads give the single-threaded results."""
    a = load_estimator("midas_v21_small_256", weights=small_weights["midas_v21_small_256"])
    b = load_estimator("midas_v21_small_256", weights=small_weights["midas_v21_small_256"])
    with torch.no_grad():  # a second, different network
        b.model.scratch.output_conv[4].bias.fill_(2.0)
    imgs = [_rgb(120, 160, seed=s) for s in range(2)]
    expected = {(id(e), i): e.predict(im) for e in (a, b) for i, im in enumerate(imgs)}
    results, errors = {}, []

    def work(e, i):
        try:
            results[(id(e), i)] = e.predict(imgs[i])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e, i)) for e in (a, b) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, val in expected.items():
        np.testing.assert_allclose(results[key], val, rtol=1e-5, atol=1e-6)


def test_offline_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    assert cached_weights_path("midas_v21_small_256") is None
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        load_estimator("midas_v21_small_256")
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert "face3d-mesh models download midas_v21_small_256" in msg
    assert "--weights" in msg and "\n" not in msg
    assert str(tmp_path / "torch_home") in msg
    rows = list_models()
    assert [r.name for r in rows] == list(ALL)
    assert not any(r.cached for r in rows)
    assert all(str(r.path).startswith(str(tmp_path)) for r in rows)


def test_device_choice():
    from face3d_mesh.depth._estimator import resolve_device
    from face3d_mesh.errors import UsageError

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError):
        resolve_device("toaster")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError):
            resolve_device("cuda")


def test_import_is_light():
    code = (
        "import sys, face3d_mesh.depth as d; d.list_models(); d.cached_weights_path"
        "('dpt_hybrid_384'); d.fuse_relative_depth;"
        "print('torch' in sys.modules, 'timm' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_bfloat16_autocast_keeps_head_fp32(small_weights):
    name = "midas_v21_small_256"
    ref = load_estimator(name, weights=small_weights[name])
    low = load_estimator(name, weights=small_weights[name], precision="bfloat16")
    assert low.dtype == torch.bfloat16
    rgb = _rgb(96, 128, seed=9)
    a, b = ref.predict(rgb), low.predict(rgb)
    assert b.dtype == np.float32 and np.isfinite(b).all()
    assert np.median(np.abs(a - b)) < 0.05 * np.median(np.abs(a))
    with pytest.raises(ModelError):  # float16 needs a GPU
        load_estimator(name, weights=small_weights[name], precision="float16")

"""The neural depth backends inside the pipeline (random-initialised official layouts)."""

from __future__ import annotations

import numpy as np
import pytest

import face3d_mesh
from face3d_mesh.errors import ModelError

MODEL = "midas_v21_small_256"


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    import torch

    from face3d_mesh.depth import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / f"{MODEL}.pt"
    torch.save(create_model(MODEL).state_dict(), path)
    return path


@pytest.mark.parametrize("backend", ["fused", "midas"])
def test_neural_backends_give_millimetres_on_the_mask(astronaut_rgb, small_weights, backend):
    rec = face3d_mesh.reconstruct(
        astronaut_rgb, depth=backend, depth_model=MODEL, weights=str(small_weights), device="cpu"
    )
    info = rec.depth_info
    assert info["backend"] == backend and info["model"] == MODEL
    assert np.isfinite(info["residual_mm"]) and info["residual_mm"] >= 0
    assert np.isfinite(rec.depth_mm[rec.mask]).mean() > 0.99
    assert np.isnan(rec.depth_mm[~rec.mask]).all()
    span = np.nanpercentile(rec.depth_mm, 95) - np.nanpercentile(rec.depth_mm, 5)
    if backend == "fused":
        # Whatever the (random) network says, the smooth correction restores the prior's
        # overall proportions; the plain affine fit of an uncorrelated output is ~flat.
        assert 5 < span < 200
    else:
        assert 0 <= span < 200
    assert rec.mesh.n_cells > 10_000


def test_auto_uses_weights_when_given_and_falls_back_otherwise(
    astronaut_rgb, small_weights, monkeypatch, tmp_path
):
    rec = face3d_mesh.reconstruct(astronaut_rgb, depth_model=MODEL, weights=str(small_weights))
    assert rec.depth_info["backend"] == "fused"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    rec = face3d_mesh.reconstruct(astronaut_rgb, depth_model=MODEL)
    assert rec.depth_info["backend"] == "hybrid"
    assert f"face3d-mesh models download {MODEL}" in rec.depth_info["note"]


def test_explicit_neural_request_without_weights_is_an_error(astronaut_rgb, tmp_path):
    with pytest.raises(ModelError, match="weights"):
        face3d_mesh.reconstruct(
            astronaut_rgb, depth="midas", depth_model=MODEL, weights=str(tmp_path / "none.pt")
        )


def test_unknown_model_lists_valid_names(astronaut_rgb):
    with pytest.raises(face3d_mesh.UsageError, match="dpt_hybrid_384"):
        face3d_mesh.reconstruct(astronaut_rgb, depth_model="midas_v9")


def test_reconstruct_many_batches_the_network_and_matches_one_by_one(
    astronaut_path, head_scan_path, small_weights, tmp_path
):
    from face3d_mesh.pipeline import reconstruct_many

    broken = tmp_path / "broken.png"
    broken.write_text("no image")
    options = dict(depth="fused", depth_model=MODEL, weights=str(small_weights), device="cpu")
    many = reconstruct_many([astronaut_path, broken, head_scan_path], batch_size=3, **options)
    assert isinstance(many[1], face3d_mesh.ImageError)
    for path, rec in ((astronaut_path, many[0]), (head_scan_path, many[2])):
        single = face3d_mesh.reconstruct(path, **options)
        assert rec.source == str(path) and "network" in rec.timings
        np.testing.assert_allclose(rec.depth_mm, single.depth_mm, atol=1e-3, equal_nan=True)


def test_batch_command_batches_network_calls(
    astronaut_path, head_scan_path, small_weights, tmp_path
):
    from face3d_mesh.config import ReconstructionConfig
    from face3d_mesh.frontends.batch import reconstruct_batch

    config = ReconstructionConfig(
        depth="fused", depth_model=MODEL, weights=str(small_weights), device="cpu"
    )
    inputs = [astronaut_path, head_scan_path]
    batched = reconstruct_batch(inputs, tmp_path / "a", fmt="stl", config=config, network_batch=2)
    single = reconstruct_batch(inputs, tmp_path / "b", fmt="stl", config=config)
    assert [i.status for i in batched] == ["ok", "ok"] == [i.status for i in single]
    assert all(i.depth_backend == "fused" for i in batched)
    for name in ("astronaut.stl", "lps_head_scan_studio.stl"):
        a = (tmp_path / "a" / name).read_bytes()
        b = (tmp_path / "b" / name).read_bytes()
        assert len(a) == len(b)

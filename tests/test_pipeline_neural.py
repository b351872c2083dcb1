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
        # Whatever the (random) network says, the smooth correction restores the landmarks'
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
    assert rec.depth_info["backend"] == "landmarks"
    assert f"face3d-mesh models download {MODEL}" in rec.depth_info["note"]


def test_explicit_neural_request_without_weights_is_an_error(astronaut_rgb, tmp_path):
    with pytest.raises(ModelError, match="weights"):
        face3d_mesh.reconstruct(
            astronaut_rgb, depth="midas", depth_model=MODEL, weights=str(tmp_path / "none.pt")
        )


def test_unknown_model_lists_valid_names(astronaut_rgb):
    with pytest.raises(face3d_mesh.UsageError, match="dpt_hybrid_384"):
        face3d_mesh.reconstruct(astronaut_rgb, depth_model="midas_v9")

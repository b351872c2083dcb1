"""Printable files checked by real tools: PrusaSlicer on the STL and 3MF of a solid, the
Khronos glTF validator on the GLB; sizes agree across formats (3MF and STL in mm, GLB in m).

PrusaSlicer (Debian's ``prusa-slicer``) and the validator (npm's ``gltf-validator``, found
through ``FACE3D_MESH_GLTF_VALIDATOR`` or ``./node_modules``) are installed by ``.ci/run``;
each test skips when its tool is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
PRUSA = shutil.which("prusa-slicer")
needs_prusa = pytest.mark.skipif(PRUSA is None, reason="prusa-slicer is not installed")

WIDTH_MM = 40.0  # small, so that slicing it takes a few seconds


@pytest.fixture(scope="module")
def solid_files(astronaut_rec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("solid")
    rec = astronaut_rec.with_config(target_triangles=20_000)
    for ext in (".stl", ".3mf", ".glb"):
        rec.save(folder / f"bust{ext}", solid=True, width_mm=WIDTH_MM, base_mm=2.0)
    solid = rec.solid(width_mm=WIDTH_MM, base_mm=2.0)
    return folder, np.ptp(np.asarray(solid.points), axis=0)


def _prusa(*args, timeout=120):
    result = subprocess.run(
        [PRUSA, "--loglevel", "1", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def _info(path) -> dict:
    """``prusa-slicer --info``'s ``key = value`` lines."""
    info = {}
    for line in _prusa("--info", path).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip()] = value.strip()
    return info


@needs_prusa
def test_prusa_slicer_sees_one_manifold_part_of_the_right_size(solid_files):
    folder, extents = solid_files
    sizes = {}
    for ext in (".stl", ".3mf"):
        info = _info(folder / f"bust{ext}")
        assert info["manifold"] == "yes", info
        assert int(info["number_of_parts"]) == 1, info
        sizes[ext] = np.array([float(info[f"size_{k}"]) for k in "xyz"])
        assert sizes[ext][0] == pytest.approx(WIDTH_MM, abs=0.01)
        np.testing.assert_allclose(sizes[ext], extents, atol=0.01)  # mm, as written
        assert float(info["volume"]) > 0
    # a 3MF says millimetre and the slicer reads it so: the same size as the STL
    np.testing.assert_allclose(sizes[".3mf"], sizes[".stl"], atol=1e-3)


@needs_prusa
@pytest.mark.parametrize("ext", [".stl", ".3mf"])
def test_prusa_slicer_slices_it(solid_files, tmp_path, ext):
    folder, _ = solid_files
    gcode = tmp_path / "bust.gcode"
    _prusa("--export-gcode", folder / f"bust{ext}", "--output", gcode, timeout=300)
    text = gcode.read_text(errors="replace")
    moves = sum(1 for line in text.splitlines() if line.startswith("G1 "))
    assert moves > 1000


def test_glb_size_in_metres_is_the_stl_size_in_mm(solid_files, astronaut_rec, tmp_path):
    import pygltflib
    import trimesh

    folder, extents = solid_files
    stl = trimesh.load(folder / "bust.stl")
    glb = trimesh.load(folder / "bust.glb", force="mesh")
    np.testing.assert_allclose(glb.extents * 1000.0, stl.extents, atol=1e-3)
    np.testing.assert_allclose(stl.extents, extents, atol=1e-3)
    # the textured surface: its texture is there and there is one UV per vertex
    astronaut_rec.save(tmp_path / "face.glb")
    astronaut_rec.save(tmp_path / "face.stl")
    gltf = pygltflib.GLTF2().load(str(tmp_path / "face.glb"))
    (prim,) = gltf.meshes[0].primitives
    n_vertices = gltf.accessors[prim.attributes.POSITION].count
    assert gltf.accessors[prim.attributes.TEXCOORD_0].count == n_vertices
    assert n_vertices == astronaut_rec.mesh.n_points
    assert len(gltf.images) == 1 and gltf.images[0].mimeType == "image/png"
    assert gltf.materials[prim.material].pbrMetallicRoughness.baseColorTexture is not None
    lo = np.array(gltf.accessors[prim.attributes.POSITION].min)
    hi = np.array(gltf.accessors[prim.attributes.POSITION].max)
    surface = trimesh.load(tmp_path / "face.stl")
    np.testing.assert_allclose((hi - lo) * 1000.0, surface.extents, atol=1e-3)


def _validator() -> str | None:
    path = os.environ.get("FACE3D_MESH_GLTF_VALIDATOR") or str(
        HERE.parent / "node_modules" / "gltf-validator"
    )
    return path if shutil.which("node") and Path(path, "package.json").is_file() else None


@pytest.mark.skipif(_validator() is None, reason="node or the gltf-validator package is absent")
def test_khronos_validator_finds_no_error_or_warning(solid_files, astronaut_rec, tmp_path):
    folder, _ = solid_files
    astronaut_rec.save(tmp_path / "face.glb")
    for path, textured in ((tmp_path / "face.glb", True), (folder / "bust.glb", False)):
        result = subprocess.run(
            ["node", str(HERE / "gltf_validate.js"), _validator(), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        issues = report["issues"]
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
        assert report["info"]["totalVertexCount"] > 1000
        assert report["info"]["hasTextures"] is textured  # the solid: geometry only

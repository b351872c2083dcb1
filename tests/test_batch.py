"""face3d-mesh batch: bad files skipped, summary, resumability, workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from face3d_mesh.frontends.batch import EXIT_SOME_FAILED


def run(args, env, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "face3d_mesh", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture()
def photo_dir(tmp_path, astronaut_path, head_scan_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(astronaut_path, folder / "astronaut.png")
    shutil.copy(head_scan_path, folder / "scan.png")
    (folder / "broken.jpg").write_text("not a photo")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    return folder


def test_batch_reports_skips_and_resumes(tmp_path, photo_dir, clean_env):
    out = tmp_path / "out"
    result = run(
        ["batch", photo_dir, "-o", out, "--format", "stl", "--depth", "landmarks"], clean_env
    )
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    status = {row["file"].rsplit("/", 1)[-1]: row for row in summary["items"]}
    assert set(status) == {"astronaut.png", "scan.png", "broken.jpg"}
    assert (
        status["broken.jpg"]["status"] == "failed"
        and "not an image" in status["broken.jpg"]["error"]
    )
    assert status["astronaut.png"]["status"] == "ok"
    assert status["astronaut.png"]["scale_source"] == "iris+biocular_width_prior"
    assert status["scan.png"]["scale_source"] == "biocular_width_prior"
    # PNGs without EXIF: the focal length was guessed, and the summary says so
    assert status["astronaut.png"]["focal_source"] == "default"
    assert status["astronaut.png"]["focal_px"] > 512
    assert (out / "summary.csv").read_text().count("\n") == 4
    assert "focal_source" in (out / "summary.csv").read_text().splitlines()[0]
    assert status["astronaut.png"]["notes"] == ""  # (a small face's: test_api, test_cli)
    first = (out / "astronaut.stl").stat().st_mtime_ns

    # Rerun: finished inputs are skipped, untouched; the broken one fails again.
    result = run(["batch", photo_dir, "-o", out, "--depth", "landmarks"], clean_env)
    assert result.returncode == EXIT_SOME_FAILED
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == 2 and summary["failed"] == 1
    assert (out / "astronaut.stl").stat().st_mtime_ns == first

    # A mesh without its completion record (e.g. a run killed mid-way) is not trusted.
    (photo_dir / "broken.jpg").unlink()
    (out / "scan.stl").write_bytes(b"half-written")
    (out / ".face3d_mesh_done" / "scan.json").unlink()
    result = run(["batch", photo_dir, "-o", out, "--depth", "landmarks"], clean_env)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["ok"], summary["skipped"], summary["failed"]) == (1, 1, 0)
    assert (out / "scan.stl").stat().st_size > 1000


def test_two_workers_give_identical_files(tmp_path, photo_dir, clean_env):
    (photo_dir / "broken.jpg").unlink()
    one, two = tmp_path / "one", tmp_path / "two"
    assert (
        run(
            ["batch", photo_dir, "-o", one, "--format", "ply", "--depth", "landmarks", "-q"],
            clean_env,
        ).returncode
        == 0
    )
    assert (
        run(
            [
                "batch",
                photo_dir,
                "-o",
                two,
                "--format",
                "ply",
                "--depth",
                "landmarks",
                "--workers",
                "2",
                "--overwrite",
            ],
            clean_env,
        ).returncode
        == 0
    )
    for name in ("astronaut.ply", "scan.ply"):
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_no_inputs_is_a_clean_error(tmp_path, clean_env):
    result = run(["batch", str(tmp_path / "*.jpg"), "-o", tmp_path / "out"], clean_env)
    assert result.returncode == 3 and "no input images" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_option_out_of_range_stops_the_batch_before_its_first_photo(
    tmp_path, photo_dir, clean_env
):
    # It used to fail every photo one by one (exit 7) and leave a folder of summaries.
    out = tmp_path / "out"
    result = run(["batch", photo_dir, "-o", out, "--smooth-mm", "100"], clean_env)
    assert result.returncode == 2, result.stderr
    assert "smoothing sigma must be 0..20 mm" in result.stderr
    assert "Traceback" not in result.stderr and "[1/" not in result.stderr
    assert not out.exists()


def test_an_output_that_would_replace_another_input_photo_stops_the_batch(
    tmp_path, astronaut_path, head_scan_path, clean_env
):
    # With the photos' own folder as the output, a.png's OBJ texture a_texture.png would
    # have replaced the photo of that name.
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(astronaut_path, folder / "a.png")
    shutil.copy(head_scan_path, folder / "a_texture.png")
    result = run(["batch", folder, "-o", folder, "--format", "obj"], clean_env)
    assert result.returncode == 2, result.stderr
    assert "a_texture.png, an output of" in result.stderr and "is also an input" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_texture.png"]
    assert (folder / "a_texture.png").read_bytes() == head_scan_path.read_bytes()


def test_batch_uses_the_photos_exif_focal_length(tmp_path, astronaut_path):
    """A batch reconstructs each photo as `export` does, EXIF focal length included (the
    perspective correction then tilts the landmark depths): same mesh bytes."""
    from PIL import Image

    import face3d_mesh
    from face3d_mesh.config import ReconstructionConfig
    from face3d_mesh.frontends.batch import reconstruct_batch

    photo = tmp_path / "in" / "exif.jpg"
    photo.parent.mkdir()
    img = Image.open(astronaut_path).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26  # a wide-angle phone lens, uncropped photo
    img.save(photo, exif=exif, quality=95)
    config = ReconstructionConfig(depth="landmarks")
    (item,) = reconstruct_batch([photo], tmp_path / "out", fmt="ply", config=config, workers=1)
    assert item.status == "ok", item.error
    rec = face3d_mesh.reconstruct(photo, config=config)
    assert rec.camera["focal_source"] == "exif" == item.focal_source
    assert item.focal_px == pytest.approx(rec.camera["focal_px"], abs=0.05)
    rec.save(tmp_path / "export.ply")
    assert (tmp_path / "out" / "exif.ply").read_bytes() == (tmp_path / "export.ply").read_bytes()


def test_batch_rounded_solids_match_the_api(tmp_path, astronaut_path, astronaut_rec, clean_env):
    import numpy as np
    import trimesh

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(astronaut_path, folder / "a.png")
    out = tmp_path / "out"
    args = ["batch", folder, "-o", out, "--depth", "landmarks", "--solid", "--edge-mm", "2"]
    result = run(args, clean_env)
    assert result.returncode == 0, result.stderr
    solid = trimesh.load(out / "a.stl", process=True)
    assert solid.is_watertight and solid.is_winding_consistent and solid.volume > 0
    expected = astronaut_rec.solid(edge_mm=2.0)
    np.testing.assert_allclose(solid.extents, np.ptp(expected.points, axis=0), atol=1e-3)


def test_the_summary_keeps_the_reconstructions_notes(tmp_path, astronaut_path, clean_env):
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    small = cv2.resize(cv2.imread(str(astronaut_path)), (80, 80), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "small.png"), small)
    result = run(["batch", folder, "-o", tmp_path / "out"], clean_env)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads((tmp_path / "out" / "summary.json").read_text())["items"]
    assert row["status"] == "ok" and "face is small in the photo" in row["notes"]

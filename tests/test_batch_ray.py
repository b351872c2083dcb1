"""face3d-mesh batch --ray: a real two-node Ray cluster on this machine, lost nodes, the CLI.

Ray keeps its files in a short temporary folder (unix socket paths are limited to ~107
characters) and runs without token authentication, independent of ``~/.ray``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from face3d_mesh.config import ReconstructionConfig  # noqa: E402
from face3d_mesh.frontends.batch import (  # noqa: E402
    EXIT_SOME_FAILED,
    find_inputs,
    reconstruct_batch,
)
from face3d_mesh.frontends.cli import main  # noqa: E402

LANDMARKS = ReconstructionConfig(depth="landmarks")


@pytest.fixture(scope="module")
def ray_home():
    """RAY_TMPDIR for this module's cluster: a short path (socket paths are limited)."""
    folder = tempfile.mkdtemp(prefix="r", dir="/tmp")
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_TMPDIR", folder)
    patch.setenv("RAY_AUTH_MODE", "disabled")
    patch.delenv("RAY_ADDRESS", raising=False)
    yield folder
    patch.undo()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def own_ray_home():
    folder = tempfile.mkdtemp(prefix="r", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(ray_home):
    """A head node and one more, one CPU each (so two actors land on different nodes)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    yield cluster
    cluster.shutdown()


def _photos(folder: Path, astronaut: Path, scan: Path, copies: int) -> Path:
    folder.mkdir()
    for i in range(copies):
        shutil.copy(astronaut if i % 2 == 0 else scan, folder / f"face{i}.png")
    (folder / "broken.jpg").write_text("not a photo")
    return folder


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, astronaut_path, head_scan_path):
    """The local batch's outputs for the two sample photos (astronaut: face0, scan: face1)."""
    root = tmp_path_factory.mktemp("reference")
    photos = _photos(root / "in", astronaut_path, head_scan_path, 2)
    items = reconstruct_batch(find_inputs(str(photos)), root / "out", config=LANDMARKS)
    return root / "out", {item.file.rsplit("/", 1)[-1]: item for item in items}


def _same_as_reference(out: Path, reference: Path, name: str, source: str) -> bool:
    return (out / f"{name}.stl").read_bytes() == (reference / f"{source}.stl").read_bytes()


def test_two_nodes_match_the_local_batch_and_resume(
    cluster, local_reference, tmp_path, astronaut_path, head_scan_path
):
    reference, local_items = local_reference
    photos = _photos(tmp_path / "in", astronaut_path, head_scan_path, 3)
    out = tmp_path / "out"
    args = ["batch", str(photos), "-o", str(out), "--depth", "landmarks", "-q"]
    assert main([*args, "--ray", cluster.address, "--workers", "2"]) == EXIT_SOME_FAILED

    summary = json.loads((out / "summary.json").read_text())
    rows = {Path(row["file"]).name: row for row in summary["items"]}
    assert (summary["ok"], summary["failed"]) == (3, 1)
    assert rows["broken.jpg"]["error"] == local_items["broken.jpg"].error.replace(
        str(reference.parent / "in"), str(photos)
    )
    for name, source in (("face0", "face0"), ("face1", "face1"), ("face2", "face0")):
        assert rows[f"{name}.png"]["status"] == "ok"
        assert _same_as_reference(out, reference, name, source)
    nodes = {node.node_id for node in [cluster.head_node, *cluster.worker_nodes]}
    ran = {name: (row["node"], row["worker"], row["seconds"]) for name, row in rows.items()}
    assert {row["node"] for row in rows.values()} == nodes, ran
    assert len({row["worker"] for row in rows.values()}) == 2, ran
    assert "node,worker" in (out / "summary.csv").read_text().splitlines()[0]

    # Rerun: everything finished is skipped and untouched; the broken file fails again.
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.stl")}
    assert main([*args, "--ray", cluster.address]) == EXIT_SOME_FAILED
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["failed"]) == (3, 1)
    assert before == {p.name: p.stat().st_mtime_ns for p in out.glob("*.stl")}


def test_network_batches_on_actors_give_the_same_files(cluster, local_reference, tmp_path):
    reference, _ = local_reference
    inputs = find_inputs(str(reference.parent / "in"))
    items = reconstruct_batch(
        inputs, tmp_path, config=LANDMARKS, ray=cluster.address, workers=1, network_batch=2
    )
    assert [item.status for item in items] == ["failed", "ok", "ok"]
    assert all(_same_as_reference(tmp_path, reference, n, n) for n in ("face0", "face1"))


# Keep this the last test on the module's cluster: it removes the second node.
def test_a_lost_node_loses_and_repeats_nothing(
    cluster, local_reference, tmp_path, astronaut_path, head_scan_path, caplog
):
    reference, _ = local_reference
    photos = _photos(tmp_path / "in", astronaut_path, head_scan_path, 6)
    (photos / "broken.jpg").unlink()
    second = next(iter(cluster.worker_nodes))
    seen: list = []

    def on_item(item):
        seen.append(item)
        if len(seen) == 1:  # the second node's actor still holds inputs: remove it
            cluster.remove_node(second)

    with caplog.at_level(logging.WARNING, logger="face3d_mesh.frontends.ray_batch"):
        items = reconstruct_batch(
            find_inputs(str(photos)),
            tmp_path / "out",
            config=LANDMARKS,
            ray=cluster.address,
            workers=2,
            on_item=on_item,
        )
    assert "was lost" in caplog.text
    assert sorted(item.file for item in seen) == sorted(str(p) for p in photos.iterdir())
    assert all(item.status == "ok" for item in items), [item.error for item in items]
    for i in range(6):
        assert _same_as_reference(tmp_path / "out", reference, f"face{i}", f"face{i % 2}")


def _ray_processes(folder: str) -> list[str]:
    """Command lines of live processes that use this Ray folder."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if folder in cmdline and str(os.getpid()) != proc.name:
            found.append(cmdline)
    return found


def test_cli_ray_local_interrupt_resume_and_nothing_left(
    own_ray_home, tmp_path, astronaut_path, head_scan_path, clean_env
):
    # Enough photos that work remains when the Ctrl-C lands even if this process reads the
    # batch's messages late (a busy machine; a photo takes ~0.4 s).
    copies = 24
    photos = _photos(tmp_path / "in", astronaut_path, head_scan_path, copies)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "face3d_mesh", "batch", photos, "-o", out]
    command += ["--depth", "landmarks", "--ray", "local", "--workers", "1"]
    env = {**clean_env, "RAY_TMPDIR": own_ray_home, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        list(map(str, command)), env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    lines = []
    for line in proc.stderr:  # Ctrl-C (to the whole process group) after the first mesh
        lines.append(line)
        if "] ok: " in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest and "Traceback" not in rest
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= summary["ok"] < copies
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.is_file()]
    time.sleep(1)
    assert not _ray_processes(own_ray_home)

    result = subprocess.run(list(map(str, command)), env=env, capture_output=True, text=True)
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    again = json.loads((out / "summary.json").read_text())
    counts = (again["skipped"], again["ok"], again["failed"])
    assert counts == (summary["ok"], copies - summary["ok"], 1)
    assert all(row["node"] and row["worker"] for row in again["items"] if row["status"] == "ok")
    assert not _ray_processes(own_ray_home)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_unreachable_cluster_fails_fast(tmp_path, astronaut_path, capsys, scheme):
    address = f"{scheme}127.0.0.1:{_free_port()}"  # a port nothing listens on
    start = time.perf_counter()
    code = main(["batch", str(astronaut_path), "-o", str(tmp_path), "--ray", address])
    assert code == 2 and time.perf_counter() - start < 15
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot reach the Ray cluster at {address}" in err


def test_without_ray_installed_says_how_to_get_it(tmp_path, astronaut_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without Ray
    code = main(["batch", str(astronaut_path), "-o", str(tmp_path), "--ray", "local"])
    assert code == 2
    assert "pip install 'face3d_mesh[cluster]'" in capsys.readouterr().err


def test_ray_options_need_ray(tmp_path, astronaut_path, capsys):
    code = main(["batch", str(astronaut_path), "-o", str(tmp_path), "--cpus-per-worker", "2"])
    assert code == 2 and "need --ray" in capsys.readouterr().err

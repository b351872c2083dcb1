"""The interactive window, for real: open it on an Xvfb display and type keys with xdotool.

Needs the ``Xvfb`` and ``xdotool`` programs (Debian/Ubuntu: ``apt-get install xvfb xdotool``);
skipped otherwise.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
XVFB = shutil.which("Xvfb")
XDOTOOL = shutil.which("xdotool")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or XVFB is None or XDOTOOL is None,
    reason="needs Linux with the Xvfb and xdotool programs (apt-get install xvfb xdotool)",
)


@pytest.fixture
def xdisplay():
    """Start a private Xvfb server; yield its DISPLAY name."""
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(
        [XVFB, "-displayfd", str(wfd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(wfd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(wfd)
    with os.fdopen(rfd) as r:
        number = r.readline().strip()
    if not number:
        proc.kill()
        pytest.skip("Xvfb did not start")
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from fake_reconstruction import make_fake_reconstruction
    from face3d_mesh.frontends.viewer import show
    show(make_fake_reconstruction(), size=(1200, 675), output_dir={out!r},
         output_stem="face", title={title!r})
    print("closed", flush=True)
    """
)


class Lines:
    """Lines of a child's stdout, read in a thread."""

    def __init__(self, stream):
        self.q = queue.Queue()
        self.all = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.q.put(line.rstrip("\n"))

    def wait_for(self, prefix, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            self.all.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting with {prefix!r}; got {self.all}")


def test_window_opens_on_xvfb_and_keys_work(xdisplay, tmp_path):
    from PIL import Image

    title = f"face3d_mesh xvfb test {os.getpid()}"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(REPO / "tests"), out=str(tmp_path), title=title))
    env = dict(os.environ, DISPLAY=xdisplay, PYTHONPATH=str(REPO))
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("VTK_DEFAULT_OPENGL_WINDOW", None)
    child = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(tmp_path),
    )
    lines = Lines(child.stdout)
    try:

        def xdo(*args, timeout=60):
            return subprocess.run(
                [XDOTOOL, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            ).stdout

        wid = xdo("search", "--sync", "--name", title).split()[0]
        geometry = xdo("getwindowgeometry", wid)
        assert "1200x675" in geometry, geometry
        xdo("windowfocus", "--sync", wid)
        lines.wait_for("face3d_mesh viewer:")

        def key(k, expect):
            xdo("key", k)
            return lines.wait_for(expect)

        shot1 = Path(key("s", "screenshot:").split(": ", 1)[1])
        key("t", "mode: shaded")
        shot2 = Path(key("s", "screenshot:").split(": ", 1)[1])
        exported = key("e", "exported:")
        # VTK's own 'e' would have closed the window; ours exports and the window stays
        key("w", "mode: wireframe")
        key("bracketright", "smoothing 0.5 mm")
        # measurement: 'm' picks the surface under the mouse pointer
        xdo("mousemove", "--window", wid, "400", "330")
        key("m", "measure: first point")
        xdo("mousemove", "--window", wid, "480", "330")
        distance = float(key("m", "distance:").split()[1])
        # dragging over the photo panel must not turn it (then a drag in the 3D view)
        for x0, y0, x1, y1 in ((1000, 150, 1080, 230), (300, 330, 420, 330)):
            xdo("mousemove", "--window", wid, str(x0), str(y0))
            xdo("mousedown", "1")
            for i in range(1, 6):
                xdo(
                    "mousemove",
                    "--window",
                    wid,
                    str(x0 + (x1 - x0) * i // 5),
                    str(y0 + (y1 - y0) * i // 5),
                )
                time.sleep(0.05)
            xdo("mouseup", "1")
            time.sleep(0.3)
        shot3 = Path(key("s", "screenshot:").split(": ", 1)[1])
        key("q", "closed")
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

    assert shot1.parent == tmp_path and shot2.parent == tmp_path
    a = np.asarray(Image.open(shot1).convert("RGB")).astype(int)
    b = np.asarray(Image.open(shot2).convert("RGB")).astype(int)
    assert a.shape == b.shape == (675, 1200, 3)
    view_a, view_b = a[40:-40, :800], b[40:-40, :800]  # the 3D view
    assert np.abs(view_a - view_b).mean() > 3  # texture toggled
    assert ((view_a[..., 0] - view_a[..., 1]) > 50).sum() > 300  # textured: red lips
    assert ((view_b[..., 0] - view_b[..., 1]) > 50).sum() < 50  # shaded: none
    c = np.asarray(Image.open(shot3).convert("RGB")).astype(int)
    photo_b, photo_c = b[40:330, 810:], c[40:330, 810:]
    assert np.abs(photo_b - photo_c).mean() < 1.0  # the photo panel stayed put
    # 80 px apart on a face ~150 mm wide drawn ~450 px wide: a few cm
    assert 10 < distance < 60, distance
    for ext in (".stl", ".obj"):
        path = tmp_path / f"face_mesh_01{ext}"
        assert str(path) in exported and path.stat().st_size > 10_000

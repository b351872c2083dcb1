"""Drive the web app in a real headless Chromium (Playwright): for tests, benchmark, screenshot.

The server is the real command, ``python -m face3d_mesh web --port N``, started on a free
port and stopped with SIGINT (what Ctrl-C sends). The browser is Debian's ``chromium``
(Playwright's own browser downloads are not needed).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKGROUND = (0x1E, 0x22, 0x2A)  # the 3D view's background (face3d_mesh.frontends.web._figure)


def chromium_path() -> str | None:
    """Debian's chromium (or another Chromium/Chrome on PATH), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    """``face3d-mesh web`` on a free port, as a context manager; ``url`` once it is up."""

    def __init__(self, *, port: int | None = None, timeout_s: float = 90.0, env=None):
        self.port = port or free_port()
        self.timeout_s = timeout_s
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.url = None
        self.lines: list[str] = []
        self.returncode = None

    def __enter__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "face3d_mesh", "web", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
        )
        ready = threading.Event()

        def read():
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("face3d-mesh web: open http"):
                    self.url = line.split()[3]
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        ready.wait(self.timeout_s)
        if self.url is None:
            self.stop()
            raise RuntimeError("the web server did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def stop(self, timeout_s: float = 20.0) -> int:
        """Ctrl-C for the whole process group (as a terminal does); the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # The reader may still hold the last lines (a busy machine): wait for the pipe's end.
        self._reader.join(timeout_s)
        self.returncode = self.process.returncode
        return self.returncode

    def __exit__(self, *exc):
        self.stop()


def launch(playwright):
    """Headless Chromium; WebGL works in it without flags."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])


def open_app(context, url: str, *, timeout_ms: float = 60_000, before=None):
    """A new page on the app, once its upload box is there (``before(page)`` runs first)."""
    page = context.new_page()
    if before is not None:
        before(page)
    page.goto(url)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').wait_for(
        state="attached", timeout=timeout_ms
    )
    return page


def upload(page, name: str, data: bytes, mime: str = "image/jpeg") -> None:
    """Drop a file into the upload box."""
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}]
    )


def view_meta(page):
    """The ``meta`` of the 3D figure the page shows now (None when there is none)."""
    return page.evaluate(
        """() => { const gd = document.querySelector('.js-plotly-plot');
                   return gd && gd._fullLayout ? (gd._fullLayout.meta || null) : null; }"""
    )


def wait_for_view(page, previous=None, *, timeout_s: float = 60.0):
    """Wait until the page shows a 3D figure other than ``previous`` and has drawn it.

    Returns the new figure's ``meta``: the WebGL scene exists and two animation frames have
    passed since the figure arrived (Plotly draws a gl3d scene in the next frame).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = page.evaluate(
            """async (previous) => {
                 const gd = document.querySelector('.js-plotly-plot');
                 if (!gd || !gd._fullLayout || !gd._fullLayout.meta) return null;
                 const meta = gd._fullLayout.meta;
                 if (previous && meta.view === previous.view) return null;
                 if (!gd.querySelector('canvas')) return null;
                 await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                 return meta;
               }""",
            previous,
        )
        if meta:
            return meta
        time.sleep(0.02)
    raise TimeoutError("the 3D view did not appear")


def view_pixels(page):
    """Screenshot of the 3D view as an H×W×3 uint8 array."""
    import numpy as np
    from PIL import Image

    png = page.locator(".js-plotly-plot").first.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def drawn_fraction(page) -> float:
    """Fraction of the 3D view's pixels that are not its plain background."""
    import numpy as np

    pixels = view_pixels(page).astype(int)
    return float((np.abs(pixels - BACKGROUND).sum(axis=2) > 30).mean())


def press_slider(page, label: str, key: str = "ArrowRight", times: int = 1) -> None:
    """Move the Streamlit slider labelled ``label`` with the keyboard."""
    thumb = page.locator(f'input[type="range"][aria-label="{label}"]').first
    thumb.focus()
    for _ in range(times):
        thumb.press(key)


def download(page, label: str, *, timeout_ms: float = 60_000) -> tuple[str, bytes]:
    """Click the download button labelled ``label``; its file name and bytes."""
    button = page.locator('[data-testid="stDownloadButton"] button').filter(has_text=label)
    with page.expect_download(timeout=timeout_ms) as info:
        button.first.click()
    dl = info.value
    return dl.suggested_filename, Path(dl.path()).read_bytes()


def alert_text(page, *, timeout_ms: float = 30_000) -> str:
    """Text of the first error message box on the page (waits for one)."""
    box = (
        page.locator('[data-testid="stAlert"]')
        .filter(has_text="")
        .locator('[data-testid="stAlertContentError"]')
    )
    box.first.wait_for(timeout=timeout_ms)
    return box.first.inner_text()


def facts_text(page) -> str:
    """The 'About this reconstruction' table's text."""
    return page.locator("table.face3d-facts").first.inner_text()

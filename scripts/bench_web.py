#!/usr/bin/env python
"""Benchmark the web app in a real headless Chromium; prints JSON.

``face3d-mesh web`` is started on a free port (``landmarks`` depth: no neural weights are
used unless cached and chosen), and a Chromium page (1400×1000) is driven with Playwright:

- ``upload_to_view_s``: a 12-megapixel JPEG (the sample portrait upscaled and padded to
  4000×3000) dropped into the upload box → the new 3D view drawn on screen (the figure is
  in the page and two animation frames have passed). Each repeat is a new upload (new
  file name), after one warm-up upload.
- ``smoothing_to_view_s``: the smoothing slider moved one step (0.25 mm) with the keyboard →
  the new 3D view drawn.
- ``bytes_per_view``: what the browser received for one new 3D view after a smoothing
  change (WebSocket frames plus media: the figure and the new depth picture).
- ``server_rss_mb``: resident memory of the Streamlit server after the warm-up, and after
  ``--uploads`` more 12 MP uploads (memory should stay flat).

Targets (2-core CPU, landmarks backend): upload → view ≤ 2 s for 12 MP; smoothing → view
≤ 1 s; ≤ 6 MB per view. The browser draws WebGL in software here (SwiftShader), which a
machine with a GPU does much faster.

Usage: ``python scripts/bench_web.py [--repeats 3] [--uploads 6]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_driver  # noqa: E402

SAMPLE = web_driver.ROOT / "sample_data" / "astronaut.png"


def twelve_megapixel_jpeg() -> bytes:
    import cv2
    import numpy as np
    from PIL import Image

    from face3d_mesh.image import load_image

    big = cv2.resize(load_image(SAMPLE), (3000, 3000), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((3000, 4000, 3), 110, np.uint8)
    canvas[:, 500:3500] = big
    out = io.BytesIO()
    Image.fromarray(canvas).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, MB (from /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
            with open(f"/proc/{current}/task/{current}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return round(total, 1)


class Traffic:
    """Bytes the page receives: WebSocket frames and HTTP media responses."""

    def __init__(self, page):
        self.bytes = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))
        page.on("response", self._response)

    def _frame(self, payload):
        self.bytes += len(payload)

    def _response(self, response):
        if "/media/" in response.url:
            self.bytes += int(response.headers.get("content-length", 0) or 0)


def _summary(values):
    return {"median": round(statistics.median(values), 3), "runs": [round(v, 3) for v in values]}


def measure(page, traffic, server, photo: bytes, repeats: int, uploads: int) -> dict:
    web_driver.upload(page, "warm-up.jpg", photo)
    meta = web_driver.wait_for_view(page, timeout_s=120)
    rss_warm = _rss_mb(server.process.pid)
    upload_s, smooth_s, view_bytes = [], [], []
    for i in range(repeats):
        start = time.perf_counter()
        web_driver.upload(page, f"photo-{i}.jpg", photo)
        meta = web_driver.wait_for_view(page, meta)
        upload_s.append(time.perf_counter() - start)
        page.wait_for_timeout(300)
        for _ in range(2):
            before = traffic.bytes
            start = time.perf_counter()
            web_driver.press_slider(page, "Smoothing (mm)")
            meta = web_driver.wait_for_view(page, meta)
            smooth_s.append(time.perf_counter() - start)
            page.wait_for_timeout(300)  # late media responses belong to this view
            view_bytes.append(traffic.bytes - before)
        web_driver.press_slider(page, "Smoothing (mm)", key="Home")
        meta = web_driver.wait_for_view(page, meta)
    for i in range(uploads):
        web_driver.upload(page, f"more-{i}.jpg", photo)
        meta = web_driver.wait_for_view(page, meta)
    facts = web_driver.facts_text(page)
    return {
        "upload_to_view_s": _summary(upload_s),
        "smoothing_to_view_s": _summary(smooth_s),
        "bytes_per_view": {"smoothing_rerun_max": max(view_bytes)},
        "server_rss_mb": {
            "after_warm_up": rss_warm,
            f"after_{uploads}_more_uploads": _rss_mb(server.process.pid),
        },  # fmt: skip
        "server_stages": next((line for line in facts.splitlines() if "ms" in line), ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uploads", type=int, default=6)
    args = parser.parse_args()
    if web_driver.chromium_path() is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    photo = twelve_megapixel_jpeg()
    with web_driver.WebServer() as server, sync_playwright() as p:
        browser = web_driver.launch(p)
        traffic = []
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = web_driver.open_app(context, server.url, before=lambda q: traffic.append(Traffic(q)))
        result = measure(page, traffic[0], server, photo, args.repeats, args.uploads)
        browser.close()
    result.update(
        photo={"pixels": "4000x3000", "jpeg_bytes": len(photo)},
        cpu_count=os.cpu_count(),
        load_average_1min=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

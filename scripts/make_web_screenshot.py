#!/usr/bin/env python
"""Make the README's screenshot of the web app, from a real (headless) Chromium.

Starts ``face3d-mesh web`` on a free port, opens the page at 1400×1180, clicks "Try the
sample photo", waits until the 3D view has drawn, turns the face a little, and saves
``scripts/screenshots/web_app.png`` (palette PNG, to keep it small).

Usage: ``python scripts/make_web_screenshot.py [--out PATH] [--width 1400 --height 1000]``
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_driver  # noqa: E402

OUT = web_driver.ROOT / "scripts" / "screenshots" / "web_app.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1180)
    parser.add_argument("--full-page", action="store_true", help="the whole page, scrolled")
    args = parser.parse_args()
    if web_driver.chromium_path() is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with web_driver.WebServer() as server, sync_playwright() as p:
        browser = web_driver.launch(p)
        context = browser.new_context(viewport={"width": args.width, "height": args.height})
        page = web_driver.open_app(context, server.url)
        page.get_by_role("button", name="Try the sample photo").click()
        web_driver.wait_for_view(page)
        # Turn the face a little to the side, so that its relief shows.
        box = page.locator(".js-plotly-plot").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x - 45, y + 8, steps=10)
        page.mouse.up()
        page.mouse.move(box["x"] + 5, box["y"] + box["height"] + 40)  # no hover marks
        page.wait_for_timeout(500)
        png = page.screenshot(full_page=args.full_page)
        browser.close()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

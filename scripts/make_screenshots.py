"""Regenerate the README screenshots of the viewer in ``scripts/screenshots/``.

Usage: ``python scripts/make_screenshots.py [--synthetic]``. Renders off-screen (no display
needed) from ``sample_data/`` through the real pipeline, or from the synthetic test face
with ``--synthetic`` (or when the pipeline cannot run). Each is rendered at 960×540 and
saved full-colour (scaled down only if it would exceed 300 KB).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "scripts" / "screenshots"
sys.path.insert(0, str(REPO))

# (output name, sample photo, show() keywords[, what to show of the reconstruction])
SHOTS = [
    ("viewer_textured.png", "astronaut.png", dict(mode="textured")),
    (
        "viewer_shaded.png",
        "lps_head_scan_studio.png",
        dict(mode="shaded", azimuth=35, elevation=10, panels=False),
    ),
    ("viewer_depth.png", "lps_head_scan_studio.png", dict(mode="depth", azimuth=-60, panels=False)),
    (
        "viewer_points.png",
        "astronaut.png",
        dict(mode="points", azimuth=40, elevation=15, panels=False),
    ),
    (
        "solid_edge.png",
        "lps_head_scan_studio.png",
        dict(mode="shaded", azimuth=70, elevation=20, panels=False),
        lambda rec: _solid(rec.mesh, edge_mm=2.0),
    ),
]
SIZE = (960, 540)


def _solid(mesh, **kw):
    from face3d_mesh.solid import make_solid

    return make_solid(mesh, **kw)


MAX_BYTES = 300_000


def _shrink_png(src: Path, dst: Path) -> int:
    """Save full-colour (palettes band the colour maps), scaled down until < MAX_BYTES.

    Returns the size in bytes.
    """
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        width = im.width
        while True:
            height = round(im.height * width / im.width)
            small = im.resize((width, height), Image.Resampling.LANCZOS)
            tmp = dst.with_name(f".{dst.name}.tmp")
            small.save(tmp, format="PNG", optimize=True)
            if tmp.stat().st_size <= MAX_BYTES or width <= 640:
                break
            width = int(width * 0.9)
    tmp.replace(dst)
    return dst.stat().st_size


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true", help="use the synthetic test face")
    args = ap.parse_args(argv)

    from face3d_mesh.frontends.viewer import show

    recs = {}

    def get(photo):
        if photo not in recs:
            if args.synthetic:
                raise RuntimeError("synthetic")
            import face3d_mesh

            recs[photo] = face3d_mesh.reconstruct(str(REPO / "sample_data" / photo))
        return recs[photo]

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, photo, kw, *view in SHOTS:
            try:
                rec, title = get(photo), f"face3d_mesh - {photo}"
            except Exception as exc:  # noqa: BLE001 - fall back to the synthetic face
                if not args.synthetic:
                    print(f"pipeline unavailable ({exc}); synthetic face", file=sys.stderr)
                    args.synthetic = True
                sys.path.insert(0, str(REPO / "tests"))
                from fake_reconstruction import make_fake_reconstruction

                rec, title = make_fake_reconstruction(), "face3d_mesh - synthetic face"
            raw = Path(tmp) / name
            show(view[0](rec) if view else rec, screenshot=raw, size=SIZE, title=title, **kw)
            size = _shrink_png(raw, OUT / name)
            print(f"{OUT / name}: {size / 1000:.0f} KB")
            if size > MAX_BYTES:
                print(f"warning: {name} is over {MAX_BYTES // 1000} KB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The web app end to end: `face3d-mesh web` served, driven in a real headless Chromium."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import web_driver  # noqa: E402

pytest.importorskip("streamlit")
playwright_api = pytest.importorskip("playwright.sync_api")
trimesh = pytest.importorskip("trimesh")
if web_driver.chromium_path() is None:
    pytest.skip("no chromium installed (apt-get install chromium)", allow_module_level=True)

HEAD_SCAN = ROOT / "sample_data" / "lps_head_scan_studio.png"
ASTRONAUT = ROOT / "sample_data" / "astronaut.png"


@pytest.fixture(scope="module")
def server():
    with web_driver.WebServer() as running:
        yield running


@pytest.fixture(scope="module")
def playwright():
    with playwright_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    chromium = web_driver.launch(playwright)
    yield chromium
    chromium.close()


def _context(browser):
    return browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)


def test_upload_turn_smooth_download_and_recover_from_a_bad_file(server, browser):
    context = _context(browser)
    page = web_driver.open_app(context, server.url)
    web_driver.upload(page, "astronaut.png", ASTRONAUT.read_bytes(), "image/png")
    first = web_driver.wait_for_view(page)
    assert web_driver.drawn_fraction(page) > 0.1  # the WebGL canvas shows the face
    assert "astronaut.png" in web_driver.facts_text(page)

    web_driver.press_slider(page, "Smoothing (mm)", times=1)
    smoothed = web_driver.wait_for_view(page, first)
    assert smoothed != first and web_driver.drawn_fraction(page) > 0.1

    name, data = web_driver.download(page, "Solid STL")
    assert name == "astronaut_solid.stl"
    solid = trimesh.load(io.BytesIO(data), file_type="stl")
    assert solid.is_watertight and solid.volume > 10_000  # mm³
    name, data = web_driver.download(page, "GLB")
    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    assert name == "astronaut.glb" and 0.05 < max(scene.extents) < 0.4  # metres
    assert len(scene.geometry) == 1

    web_driver.upload(page, "notes.jpg", b"not a photo at all\n" * 50, "image/jpeg")
    assert "could not be opened as a photo" in web_driver.alert_text(page)
    assert page.locator(".js-plotly-plot").count() == 0

    web_driver.upload(page, "head.png", HEAD_SCAN.read_bytes(), "image/png")
    web_driver.wait_for_view(page)
    assert "head.png" in web_driver.facts_text(page)
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    context.close()


def test_two_browsers_at_once_get_their_own_results(server, browser):
    contexts = [_context(browser), _context(browser)]
    pages = [web_driver.open_app(c, server.url) for c in contexts]
    photos = [("astronaut.png", ASTRONAUT), ("head.png", HEAD_SCAN)]
    for page, (name, path) in zip(pages, photos, strict=True):
        web_driver.upload(page, name, path.read_bytes(), "image/png")  # both at once
    # The server works on both uploads at the same time; the pages are checked in turn.
    results = [web_driver.wait_for_view(page) for page in pages]
    for page, (name, _) in zip(pages, photos, strict=True):
        assert name in web_driver.facts_text(page)
    downloads = [web_driver.download(page, "PLY") for page in pages]
    assert [name for name, _ in downloads] == ["astronaut.ply", "head.ply"]
    assert len(downloads[0][1]) != len(downloads[1][1])
    assert web_driver.view_meta(pages[0]) == results[0]  # the other upload changed nothing
    for context in contexts:
        context.close()


def _y4m(path: Path, photo: Path) -> Path:
    """A one-frame Y4M video of ``photo``: what Chromium's fake camera plays."""
    import cv2

    from face3d_mesh.image import load_image

    rgb = load_image(photo)
    rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # Y, then U and V planes
    h, w = rgb.shape[:2]
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F1:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + yuv.tobytes())
    return path


def test_a_photo_taken_with_the_camera_gives_a_face(server, playwright, tmp_path):
    video = _y4m(tmp_path / "camera.y4m", ASTRONAUT)
    chromium = playwright.chromium.launch(
        executable_path=web_driver.chromium_path(),
        args=[
            "--no-sandbox",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        context = chromium.new_context(viewport={"width": 1100, "height": 900})
        context.grant_permissions(["camera"], origin=server.url)
        page = web_driver.open_app(context, server.url)
        page.get_by_text("Take a photo with my camera").click()
        take = page.get_by_role("button", name="Take Photo")
        take.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => { const v = document.querySelector('video'); return v && v.videoWidth > 0; }",
            timeout=60_000,
        )
        take.click()
        web_driver.wait_for_view(page)
        assert "camera photo" in web_driver.facts_text(page)
        assert web_driver.drawn_fraction(page) > 0.1
    finally:
        chromium.close()

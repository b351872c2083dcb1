"""load_image: formats, modes, orientation and every class of bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from face3d_mesh.errors import ImageError
from face3d_mesh.image import exif_focal_length_px, load_image, load_photo


def _gradient(h=40, w=60):
    v, u = np.mgrid[0:h, 0:w]
    return np.stack([u * 4, v * 6, (u + v) * 2], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("ext", ["png", "bmp", "tiff", "webp"])
def test_lossless_formats_round_trip(tmp_path, ext):
    rgb = _gradient()
    path = tmp_path / f"img.{ext}"
    Image.fromarray(rgb).save(path, **({"lossless": True} if ext == "webp" else {}))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_is_close(tmp_path):
    rgb = _gradient()
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    out = load_image(tmp_path / "a.jpg")
    assert np.abs(out.astype(int) - rgb).mean() < 3


def test_exif_orientation_is_applied(tmp_path):
    rgb = _gradient(40, 60)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape == (60, 40, 3)
    expected = np.rot90(rgb, k=-1)
    assert np.abs(out.astype(int) - expected).mean() < 3


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_load_photo_reads_the_focal_length_in_the_same_pass(tmp_path, ext):
    rgb = _gradient(40, 60)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # shown rotated: the focal length belongs to the rotated photo
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    img.save(tmp_path / f"f.{ext}", exif=exif)
    Image.fromarray(rgb).save(tmp_path / f"plain.{ext}")

    photo = load_photo(tmp_path / f"f.{ext}")
    assert photo.rgb.shape == (60, 40, 3)
    assert photo.focal_length_px == pytest.approx(28 * np.hypot(40, 60) / 43.267)
    assert photo.focal_length_px == exif_focal_length_px(tmp_path / f"f.{ext}", (60, 40))
    np.testing.assert_array_equal(photo.rgb, load_image(tmp_path / f"f.{ext}"))
    assert load_photo(tmp_path / f"plain.{ext}").focal_length_px is None
    assert load_photo(rgb).focal_length_px is None  # an array has no EXIF


def test_grayscale_rgba_palette_cmyk(tmp_path):
    gray = (np.arange(40 * 60) % 256).reshape(40, 60).astype(np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))

    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :30, 3] = 255  # left opaque red, right transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[0, 59], [255, 255, 255])  # composited on white

    Image.fromarray(_gradient()).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (40, 60, 3)

    Image.fromarray(_gradient()).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    out = load_image(tmp_path / "c.jpg")
    assert np.abs(out.astype(int) - _gradient()).mean() < 6


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    data = np.linspace(0, 65535, 40 * 60).reshape(40, 60).astype(np.uint16)
    Image.fromarray(data).save(tmp_path / "d16.png")
    out = load_image(tmp_path / "d16.png")
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert 120 < out[20, 30, 0] < 136  # mid-grey, not clipped to white
    arr = load_image(np.stack([data] * 3, axis=-1))
    assert arr.dtype == np.uint8 and arr[-1, -1, 0] == 255


def test_array_input_is_copied_and_validated():
    rgb = _gradient()
    out = load_image(rgb)
    assert out is not rgb and np.shares_memory(out, rgb) is False
    np.testing.assert_array_equal(out, rgb)
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ImageError, match="uint8"):
        load_image(np.zeros((40, 40, 3), np.float32))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, I am not an image"), "not an image"),
    ],
)
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_truncated_file(tmp_path, astronaut_path):
    Image.open(astronaut_path).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(tmp_path / "cut.jpg")


def test_unsupported_format_and_folder(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "anim.gif")
    with pytest.raises(ImageError, match="unsupported image format GIF"):
        load_image(tmp_path / "anim.gif")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    # A 1-bit 20000×20000 PNG is tiny on disk but 400 megapixels once decoded.
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="megapixels"):
        load_image(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="megapixels"):
        load_image(_gradient(), max_pixels=1000)

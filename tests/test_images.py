"""qfeat.pipeline.images.open_image: every format and mode to 8-bit RGB, EXIF, huge images,
and a clear error kind for every bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from qfeat.errors import ItemError
from qfeat.pipeline.images import open_image


def gradient(w: int = 48, h: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], axis=2).astype(
        np.uint8
    )


@pytest.mark.parametrize(
    "suffix, kwargs, tol",
    [
        (".png", {}, 0),
        (".bmp", {}, 0),
        (".tiff", {}, 0),
        (".webp", {"lossless": True}, 0),
        (".jpg", {"quality": 95}, 12),
    ],
)
def test_formats_round_trip(tmp_path, suffix, kwargs, tol):
    rgb = gradient()
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path, **kwargs)
    out = open_image(path)
    assert out.dtype == np.uint8 and out.shape == (32, 48, 3)
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= tol


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = gradient()[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = open_image(tmp_path / "g.png")
    assert out.shape == (32, 48, 3)
    assert (out[:, :, 0] == gray).all() and (out[:, :, 1] == gray).all()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 48 * 32).reshape(32, 48).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # mode I;16
    out = open_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.shape == (32, 48, 3)
    np.testing.assert_allclose(out[:, :, 0], np.round(values / 65535 * 255), atol=1)
    assert out.max() == 255 and out.min() == 0  # a clip to 255 would saturate most pixels


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:5, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = open_image(tmp_path / "a.png")
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[9, 9]) == (255, 255, 255)


def test_cmyk_and_palette(tmp_path):
    rgb = gradient()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    for name in ("c.jpg", "p.png"):
        out = open_image(tmp_path / name)
        assert out.shape == (32, 48, 3)
        assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 12, name


def test_exif_orientation_is_applied(tmp_path):
    rgb = gradient(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(rgb).save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = open_image(tmp_path / "o.jpg")
    assert out.shape == (40, 20, 3)
    expected = np.rot90(rgb, k=-1)
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 6


def test_max_side_downscales_keeping_aspect(tmp_path):
    Image.fromarray(gradient(400, 100)).save(tmp_path / "wide.png")
    out = open_image(tmp_path / "wide.png", max_side=100)
    assert out.shape == (25, 100, 3)


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path):
    """12000x9000 JPEG: the decoded bitmap never exists at full size (324 MB)."""
    path = tmp_path / "huge.jpg"
    img = Image.new("RGB", (12000, 9000), (30, 120, 200))
    img.paste((250, 250, 0), (2000, 2000, 6000, 5000))
    img.save(path, quality=50)
    del img
    code = textwrap.dedent(
        f"""
        from qfeat.pipeline.images import open_image
        out = open_image({str(path)!r}, max_side=2048)
        hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]
        print(out.shape, int(hwm.split()[1]) // 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    shape, peak_mb = done.stdout.rsplit(" ", 1)
    assert shape == "(1536, 2048, 3)"
    assert int(peak_mb) < 250, f"peak memory {peak_mb} MB: the full bitmap alone is 324 MB"


def test_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    import qfeat.pipeline.images as images

    Image.fromarray(gradient()).save(tmp_path / "x.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(ItemError) as err:
        open_image(tmp_path / "x.png")
    assert err.value.kind == "too_large" and "x.png" in str(err.value)


def test_bad_inputs_have_kinds_and_name_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(gradient(64, 64)).save(good, quality=90)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.jpg").write_bytes(data[:20] + bytes(range(256)) * 8)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image at all\n")
    cases = {
        "truncated.jpg": "decode_error",
        "corrupt.jpg": "decode_error",
        "empty.png": "empty_file",
        "text.png": "decode_error",
        "missing.jpg": "missing",
    }
    for name, kind in cases.items():
        with pytest.raises(ItemError) as err:
            open_image(tmp_path / name)
        assert err.value.kind == kind, name
        assert name in str(err.value)
    assert open_image(good).shape == (64, 64, 3)


def test_datasets_check_and_the_stages_share_one_pixel_limit(tmp_path, monkeypatch):
    """Issue 24.9: `datasets check` used Pillow's bomb limit (~179 M pixels), the stages
    qfeat's 400 M, so they disagreed on the same file."""
    from PIL import Image as PILImage

    import qfeat.pipeline.images as images
    from qfeat.pipeline.datasets.check import image_problem

    path = tmp_path / "x.png"
    Image.fromarray(gradient()).save(path)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 50)  # Pillow's guard is not the rule
    assert image_problem(path) is None and open_image(path).shape[2] == 3
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # qfeat's own limit is, for both
    assert "above qfeat's limit" in image_problem(path)
    with pytest.raises(ItemError, match="above qfeat's limit"):
        open_image(path)

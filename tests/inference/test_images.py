import base64
import io

import numpy as np
import pytest
from PIL import Image

from clip_reid.inference import InvalidImageError, decode_image


def _pixels(height=40, width=20, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def rgb() -> Image.Image:
    return Image.fromarray(_pixels())


def test_every_input_form_gives_the_same_rgb_image(tmp_path, rgb):
    png = _encoded(rgb)
    path = tmp_path / "crop.png"
    path.write_bytes(png)
    text = base64.b64encode(png).decode()
    forms = [path, str(path), png, bytearray(png), text, f"data:image/png;base64,{text}",
             rgb, np.asarray(rgb)]
    for form in forms:
        image = decode_image(form)
        assert image.mode == "RGB" and image.size == (20, 40)
        assert np.array_equal(np.asarray(image), np.asarray(rgb)), type(form)


def test_jpeg_bytes_and_base64_with_line_breaks(rgb):
    jpeg = _encoded(rgb, "JPEG")
    wrapped = base64.encodebytes(jpeg).decode()  # MIME style: a newline every 76 characters
    assert "\n" in wrapped
    assert np.array_equal(np.asarray(decode_image(wrapped)), np.asarray(decode_image(jpeg)))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1"])
def test_convertible_modes_become_rgb(rgb, mode):
    converted = rgb.convert(mode)
    assert decode_image(converted).mode == "RGB"
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(_encoded(converted, fmt)).mode == "RGB"


@pytest.mark.parametrize("mode", ["I;16", "F"])
def test_high_bit_depth_modes_are_rejected(mode):
    image = Image.new(mode, (20, 40))
    with pytest.raises(InvalidImageError, match=f"unsupported pixel mode '{mode}'.*8-bit"):
        decode_image(image, name="item 3")


def test_missing_path_names_the_file(tmp_path):
    with pytest.raises(InvalidImageError, match="nowhere.jpg.*no such file"):
        decode_image(tmp_path / "nowhere.jpg")


def test_string_that_is_neither_a_file_nor_base64_says_both_were_tried():
    with pytest.raises(InvalidImageError, match=r"item 3.*photos/x\.jpg.*neither an existing "
                                                r"file nor valid base64 \(tried both\)"):
        decode_image("photos/x.jpg", name="item 3")


def test_valid_base64_of_non_image_bytes():
    text = base64.b64encode(b"hello, not an image").decode()
    with pytest.raises(InvalidImageError, match="not an existing file, and decoded as base64"):
        decode_image(text)


def test_bad_data_url():
    with pytest.raises(InvalidImageError, match="data URL is not valid base64"):
        decode_image("data:image/png;base64,@@@@")


def test_corrupt_and_truncated_data_are_rejected(tmp_path, rgb):
    png = _encoded(rgb)
    with pytest.raises(InvalidImageError, match="not a readable image"):
        decode_image(b"GIF89a but not really")
    with pytest.raises(InvalidImageError, match="not a readable image.*truncated"):
        decode_image(png[: len(png) // 2])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InvalidImageError, match="broken.jpg.*not a readable image"):
        decode_image(broken)
    with pytest.raises(InvalidImageError, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize(
    "array", [_pixels().astype(np.float32), _pixels()[..., 0], np.zeros((40, 20, 4), np.uint8)]
)
def test_arrays_of_wrong_shape_or_dtype_are_rejected(array):
    with pytest.raises(InvalidImageError, match="HxWx3 uint8"):
        decode_image(array)


def test_tiny_images_are_rejected_with_a_configurable_minimum(rgb):
    small = Image.fromarray(_pixels(height=40, width=10))
    with pytest.raises(InvalidImageError, match="40 pixels is too small.*minimum side 16"):
        decode_image(small)
    assert decode_image(small, min_side=8).size == (10, 40)


def test_decompression_bombs_are_refused(monkeypatch, rgb):
    png = _encoded(Image.fromarray(_pixels(height=200, width=100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # 20,000 px: over twice the limit
    with pytest.raises(InvalidImageError, match="decompression bomb"):
        decode_image(png)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15_000)  # over the limit: PIL only warns
    with pytest.raises(InvalidImageError, match="decompression bomb"):
        decode_image(png)


def test_unsupported_type():
    with pytest.raises(InvalidImageError, match="unsupported input type int"):
        decode_image(42)


def test_invalid_image_error_is_a_value_error():
    assert issubclass(InvalidImageError, ValueError)


def test_paths_can_be_refused_for_servers(tmp_path, rgb):
    path = tmp_path / "a.png"
    rgb.save(path)
    for item in (str(path), path):
        with pytest.raises(InvalidImageError, match="file paths are not accepted"):
            decode_image(item, "upload", allow_paths=False)
    encoded = base64.b64encode(path.read_bytes()).decode()
    assert decode_image(encoded, allow_paths=False).size == rgb.size

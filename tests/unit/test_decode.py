"""Decoding real files made with Pillow: formats, modes, orientation, drafts, bad input, URLs."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image, ImageFile

from indexer.access import AccessPolicy
from indexer.decode import DecodedImage, decode_image, load_image, read_image_bytes
from indexer.errors import ImageDecodeError

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def halves(size: tuple[int, int] = (30, 20)) -> Image.Image:
    """An RGB image, red on the left half, blue on the right."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1]))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a 1-bit greyscale image of any size but holds no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def reason_of(data: bytes, **kwargs: object) -> str:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, **kwargs)
    return caught.value.reason


def assert_near(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> None:
    assert len(pixel) == len(expected)
    assert all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True)), pixel


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("TIFF", {}),
        ("GIF", {}),
    ],
)
def test_lossless_formats_decode_exactly(fmt: str, params: dict[str, object]) -> None:
    decoded = decode_image(encode(halves(), fmt, **params))

    assert isinstance(decoded, DecodedImage)
    assert (decoded.format, decoded.width, decoded.height) == (fmt, 30, 20)
    assert (decoded.image.mode, decoded.image.size) == ("RGB", (30, 20))
    assert decoded.image.getpixel((0, 0)) == RED
    assert decoded.image.getpixel((29, 19)) == BLUE


def test_jpeg() -> None:
    decoded = decode_image(encode(halves(), "JPEG", quality=95))

    assert (decoded.format, decoded.width, decoded.height) == ("JPEG", 30, 20)
    assert decoded.image.mode == "RGB"
    assert_near(decoded.image.getpixel((2, 10)), RED)
    assert_near(decoded.image.getpixel((27, 10)), BLUE)


def test_sha256_is_of_the_file_bytes() -> None:
    data = encode(halves(), "PNG")

    assert decode_image(data).sha256 == hashlib.sha256(data).hexdigest()


def test_greyscale_and_bilevel() -> None:
    grey = decode_image(encode(Image.new("L", (4, 3), 77), "PNG"))
    bilevel = Image.new("1", (4, 3), 0)
    bilevel.putpixel((3, 2), 1)
    black_and_white = decode_image(encode(bilevel, "PNG")).image

    assert grey.image.mode == "RGB"
    assert grey.image.getpixel((0, 0)) == (77, 77, 77)
    assert black_and_white.getpixel((0, 0)) == (0, 0, 0)
    assert black_and_white.getpixel((3, 2)) == WHITE


def test_alpha_is_composited_over_white() -> None:
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (255, 0, 0, 128)])
    grey_alpha = Image.new("LA", (2, 1))
    grey_alpha.putdata([(0, 0), (0, 128)])

    colour = decode_image(encode(rgba, "PNG")).image
    grey = decode_image(encode(grey_alpha, "PNG")).image

    assert [colour.getpixel((x, 0)) for x in range(3)] == [WHITE, BLUE, (255, 127, 127)]
    assert [grey.getpixel((x, 0)) for x in range(2)] == [WHITE, (127, 127, 127)]


def test_palette_transparency_becomes_white() -> None:
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([*RED, *BLUE])
    palette.putpixel((1, 1), 1)
    data = encode(palette, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"

    image = decode_image(data).image

    assert [image.getpixel(xy) for xy in [(0, 0), (1, 0), (0, 1), (1, 1)]] == [WHITE] * 3 + [BLUE]


def test_cmyk() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in ink

    from_jpeg = decode_image(encode(cmyk, "JPEG", quality=95))
    from_tiff = decode_image(encode(cmyk, "TIFF"))

    assert from_jpeg.format == "JPEG"
    assert from_jpeg.image.mode == "RGB"
    assert_near(from_jpeg.image.getpixel((8, 8)), RED)
    assert from_tiff.image.getpixel((8, 8)) == RED


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 0x8080, 0xFFFF, 0x00FF]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"

    image = decode_image(data).image

    assert [image.getpixel((x, 0)) for x in range(4)] == [
        (0, 0, 0),
        (128, 128, 128),  # mid-grey stays mid-grey
        WHITE,
        (0, 0, 0),  # 255 of 65535 is black, not white
    ]


@pytest.mark.parametrize(
    ("mode", "array", "expected"),
    [
        ("I;16B", np.array([0, 0x8080, 0xFFFF], dtype=">u2"), [0, 128, 255]),
        ("I", np.array([0, 0x8080, 0xFFFF], dtype=np.int32), [0, 128, 255]),  # 16-bit data
        ("I", np.array([0, 100, 255], dtype=np.int32), [0, 100, 255]),  # 8-bit data
        ("I", np.array([-1000, 0, 1000], dtype=np.int32), [0, 128, 255]),  # stretched
        ("F", np.array([0.0, 0.5, 1.0], dtype=np.float32), [0, 128, 255]),  # unit floats
        ("F", np.array([-1.0, 0.0, 1.0], dtype=np.float32), [0, 128, 255]),  # stretched
    ],
)
def test_wide_greyscale_tiff_is_scaled_to_eight_bits(
    mode: str, array: np.ndarray, expected: list[int]
) -> None:
    data = encode(Image.frombytes(mode, (3, 1), array.tobytes()), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == mode

    image = decode_image(data).image

    assert [image.getpixel((x, 0)) for x in range(3)] == [(v, v, v) for v in expected]


@pytest.mark.parametrize(
    "mode", ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "I", "I;16", "F", "LAB"]
)
def test_every_mode_becomes_rgb(mode: str) -> None:
    data = encode(Image.new(mode, (7, 5)), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == mode

    decoded = decode_image(data)

    assert (decoded.image.mode, decoded.image.size) == ("RGB", (7, 5))


def test_ycbcr_colour() -> None:
    data = encode(Image.new("YCbCr", (4, 4), (76, 85, 255)), "TIFF")  # red in YCbCr

    assert_near(decode_image(data).image.getpixel((0, 0)), RED, tolerance=3)


@pytest.mark.parametrize(
    ("fmt", "params"), [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})]
)
def test_animations_give_their_first_frame(fmt: str, params: dict[str, object]) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE, WHITE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **params)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3

    decoded = decode_image(data)

    assert decoded.format == fmt
    assert decoded.image.size == (8, 8)
    assert decoded.image.getpixel((4, 4)) == RED


def rotated_jpeg(size: tuple[int, int], orientation: int) -> bytes:
    """A blue JPEG with a red square in its stored top-left corner and an EXIF orientation."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 3, size[1] // 3))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif)


def test_exif_orientation_is_applied() -> None:
    decoded = decode_image(rotated_jpeg((60, 40), orientation=6))

    # Orientation 6: turn 90° clockwise to view, so the stored top-left is now top-right.
    assert (decoded.width, decoded.height) == (40, 60)
    assert decoded.image.size == (40, 60)
    assert_near(decoded.image.getpixel((36, 4)), RED)
    assert_near(decoded.image.getpixel((4, 4)), BLUE)
    assert_near(decoded.image.getpixel((36, 56)), BLUE)


def test_upright_jpeg_is_not_turned() -> None:
    decoded = decode_image(rotated_jpeg((60, 40), orientation=1))

    assert (decoded.width, decoded.height, decoded.image.size) == (60, 40, (60, 40))
    assert_near(decoded.image.getpixel((4, 4)), RED)


def test_jpeg_is_drafted_to_the_target_size_but_reports_its_full_size() -> None:
    data = encode(halves((1600, 1200)), "JPEG", quality=90)

    drafted = decode_image(data, target_size=224)
    full = decode_image(data)

    assert (drafted.width, drafted.height) == (1600, 1200)
    assert drafted.image.size == (400, 300)  # DCT scaling by 4: the largest still >= 224
    assert min(drafted.image.size) >= 224
    assert drafted.image.mode == "RGB"
    assert_near(drafted.image.getpixel((10, 150)), RED)
    assert (full.width, full.height, full.image.size) == (1600, 1200, (1600, 1200))


def test_draft_happens_before_exif_rotation() -> None:
    decoded = decode_image(rotated_jpeg((1600, 1200), orientation=6), target_size=224)

    assert (decoded.width, decoded.height) == (1200, 1600)
    assert decoded.image.size == (300, 400)
    assert_near(decoded.image.getpixel((290, 10)), RED)


def test_small_jpeg_is_not_drafted_below_the_target() -> None:
    decoded = decode_image(encode(halves((300, 250)), "JPEG"), target_size=224)

    assert decoded.image.size == (300, 250)


def test_target_size_leaves_other_formats_alone() -> None:
    decoded = decode_image(encode(halves((900, 600)), "PNG"), target_size=224)

    assert decoded.image.size == (900, 600)


def test_images_over_max_pixels_are_refused_from_their_header() -> None:
    small = encode(Image.new("RGB", (100, 100)), "PNG")

    assert reason_of(small, max_pixels=9_999) == "too large: 100x100 pixels (limit 9999)"
    assert decode_image(small, max_pixels=10_000).image.size == (100, 100)


def test_decompression_bombs_are_refused_before_decoding() -> None:
    # Header-only files: decoding them would fail as truncated, so each reason below proves
    # that the size was checked first. Warnings are errors so none escapes either.
    limit_before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Over Pillow's own hard limit (2 * MAX_IMAGE_PIXELS): Pillow refuses while opening.
        huge = reason_of(png_header_only(20_000, 20_000))
        # Over ours, under Pillow's: our check refuses.
        large = reason_of(png_header_only(12_000, 12_000))
        # Over Pillow's warning threshold, under ours: accepted, then found to hold no pixels.
        allowed = reason_of(png_header_only(10_000, 9_500))

    assert huge == "too large: 400000000 pixels (limit 100000000)"
    assert large == "too large: 12000x12000 pixels (limit 100000000)"
    assert allowed.startswith("truncated or corrupt image: ")
    assert limit_before == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_pillows_hard_limit_is_reported_when_max_pixels_is_higher() -> None:
    reason = reason_of(png_header_only(20_000, 20_000), max_pixels=500_000_000)

    assert reason == f"too large: 400000000 pixels (limit {2 * Image.MAX_IMAGE_PIXELS})"


def test_truncated_files_fail_with_a_reason() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
    jpeg = encode(noise, "JPEG")
    png = encode(noise, "PNG")

    assert reason_of(jpeg[: len(jpeg) // 2]).startswith("truncated or corrupt image: ")
    assert reason_of(png[: len(png) // 2]).startswith("truncated or corrupt image: ")
    assert reason_of(jpeg[:200]).startswith("truncated or corrupt image: ")


def test_empty_and_non_images_fail_with_a_reason(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")

    assert reason_of(b"") == "empty file"
    with pytest.raises(ImageDecodeError) as caught:
        load_image(str(empty))
    assert (caught.value.path, caught.value.reason) == (str(empty), "empty file")
    with pytest.raises(ImageDecodeError) as caught:
        load_image(str(text))
    assert caught.value.reason == "not an image (cannot identify format)"
    assert str(caught.value) == f"{text}: not an image (cannot identify format)"


def test_load_image_reads_and_decodes(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    data = encode(halves((1600, 1200)), "JPEG")
    path.write_bytes(data)

    decoded = load_image(str(path), target_size=224)

    assert (decoded.width, decoded.height, decoded.image.size) == (1600, 1200, (400, 300))
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()


def test_read_image_bytes_from_paths_and_file_uris(tmp_path: Path) -> None:
    path = tmp_path / "a b%.png"
    path.write_bytes(b"12345")

    assert read_image_bytes(str(path)) == b"12345"
    assert read_image_bytes(path.as_uri()) == b"12345"
    assert read_image_bytes("file://localhost" + path.as_uri()[len("file://") :]) == b"12345"


@pytest.mark.parametrize(
    ("make", "policy", "reason"),
    [
        (lambda tmp: str(tmp / "missing.jpg"), None, "no such file"),
        (lambda tmp: str(tmp), None, "not a regular file (a folder)"),
        (lambda tmp: str(tmp / "big.jpg"), AccessPolicy(max_bytes=4), "larger than 4 bytes"),
        (lambda tmp: str(tmp / "empty.jpg"), None, "empty file"),
        (lambda tmp: "ftp://example.com/a.jpg", None, "unsupported URL scheme 'ftp'"),
        (lambda tmp: "file://server/a.jpg", None, "not a local file URL (host 'server')"),
        (
            lambda tmp: "file://otherhost/etc/passwd",
            None,
            "not a local file URL (host 'otherhost')",
        ),
        (lambda tmp: "/dev/zero", None, "not a regular file (a character device)"),
        (lambda tmp: str(tmp / "pipe.jpg"), None, "not a regular file (a FIFO)"),
        (
            lambda tmp: str(tmp / "big.jpg"),
            AccessPolicy(roots=("/nowhere",)),
            "outside the folders this run may read",
        ),
        (
            lambda tmp: "http://example.com/a.jpg",
            AccessPolicy(fetch_urls=False),
            "URL fetching is off (api.fetch_image_urls)",
        ),
    ],
)
def test_read_image_bytes_errors(
    tmp_path: Path, make, policy: AccessPolicy | None, reason: str
) -> None:
    (tmp_path / "big.jpg").write_bytes(b"12345")
    (tmp_path / "empty.jpg").write_bytes(b"")
    os.mkfifo(tmp_path / "pipe.jpg")  # refused at once: a reader would wait for a writer
    uri = make(tmp_path)

    with pytest.raises(ImageDecodeError) as caught:
        read_image_bytes(uri, access=policy)

    assert (caught.value.path, caught.value.reason) == (uri, reason)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_read_image_bytes_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"12345")
    path.chmod(0)

    with pytest.raises(ImageDecodeError, match="permission denied"):
        read_image_bytes(str(path))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes, bool]]] = {}  # path: (status, body, length?)

    def do_GET(self) -> None:
        status, body, send_length = self.routes.get(self.path, (404, b"", True))
        if status != 200:
            self.send_error(status)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if send_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def web() -> Iterator[str]:
    """A web server on 127.0.0.1 in a thread; returns its base URL."""
    photo = encode(halves(), "PNG")
    handler = type(
        "Handler",
        (_Handler,),
        {
            "routes": {
                "/photo.png": (200, photo, True),
                "/stream.png": (200, photo, False),
                "/big": (200, b"x" * 1000, True),
                "/big-stream": (200, b"x" * 1000, False),
                "/empty": (200, b"", True),
                "/secret": (403, b"", True),
            }
        },
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_read_image_bytes_over_http(web: str) -> None:
    photo = encode(halves(), "PNG")

    assert read_image_bytes(f"{web}/photo.png") == photo
    assert read_image_bytes(f"{web}/stream.png") == photo  # no Content-Length
    decoded = load_image(f"{web}/photo.png")
    assert (decoded.format, decoded.image.getpixel((0, 0))) == ("PNG", RED)


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ("/missing.jpg", "HTTP 404"),
        ("/secret", "HTTP 403"),
        ("/big", "larger than 100 bytes"),
        ("/big-stream", "larger than 100 bytes"),
        ("/empty", "empty file"),
    ],
)
def test_http_errors(web: str, route: str, reason: str) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        read_image_bytes(web + route, access=AccessPolicy(max_bytes=100))

    assert (caught.value.path, caught.value.reason) == (web + route, reason)


def test_download_failure_is_a_decode_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(ImageDecodeError) as caught:
        read_image_bytes(f"http://127.0.0.1:{port}/a.jpg", access=AccessPolicy(deadline=5))

    assert caught.value.reason.startswith("download failed: ")
    assert "refused" in caught.value.reason

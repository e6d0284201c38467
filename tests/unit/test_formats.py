"""HEIC/HEIF, AVIF and camera RAW (DNG) files: decoded like JPEGs, their metadata read, their
broken versions skipped with a reason. Every file is made by the test (tests/format_files.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from format_files import make_avif, make_dng, make_heic, make_jpeg, photo_exif
from PIL import Image

from indexer.camera_raw import sniff_raw_format
from indexer.decode import decode_image, read_metadata
from indexer.errors import ImageDecodeError
from indexer.formats import IMAGE_EXTENSIONS, RAW_EXTENSIONS, raw_format_of_name
from indexer.heif_extents import missing_item_data

LISBON = (38.7223, -9.1393)


def mean_colour(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))


def test_the_formats_are_in_the_one_list() -> None:
    for ext in (".heic", ".heif", ".avif", *RAW_EXTENSIONS):
        assert ext in IMAGE_EXTENSIONS
    assert raw_format_of_name("/photos/IMG_0001.CR3") == "CR3"
    assert raw_format_of_name("a.jpg") is None


def test_heic_decodes_with_its_exif() -> None:
    exif = photo_exif(make="Apple", model="iPhone 15", taken="2024:05:01 10:00:00", gps=LISBON)
    data = make_heic(640, 480, exif=exif)
    decoded = decode_image(data, uri="IMG_0001.HEIC", target_size=224, with_metadata=True)
    assert (decoded.format, decoded.width, decoded.height) == ("HEIF", 640, 480)
    assert decoded.image.mode == "RGB" and decoded.image.size == (640, 480)
    reference = Image.open(io.BytesIO(make_jpeg(640, 480)))
    assert np.abs(mean_colour(decoded.image) - mean_colour(reference)).max() < 6
    meta = decoded.metadata
    assert meta["camera"] == "Apple iPhone 15" and meta["taken"] == "2024-05-01T10:00:00"
    assert (meta["lat"], meta["lon"]) == pytest.approx(LISBON, abs=1e-3)
    assert read_metadata(data, uri="x.heic")["camera"] == "Apple iPhone 15"


def test_a_tiled_heic_decodes_whole() -> None:
    decoded = decode_image(make_heic(1024, 768, tile=256), uri="grid.heic")
    assert decoded.image.size == (1024, 768)


def test_avif_decodes_with_its_exif() -> None:
    data = make_avif(320, 240, exif=photo_exif(make="Google", model="Pixel 9"))
    decoded = decode_image(data, uri="a.avif", with_metadata=True)
    assert (decoded.format, decoded.image.size) == ("AVIF", (320, 240))
    assert decoded.metadata["camera"] == "Google Pixel 9"


def test_dng_reads_its_preview_when_large_enough() -> None:
    data = make_dng(1280, 960, preview=(1024, 768), taken="2023:06:01 12:00:00", gps=LISBON)
    decoded = decode_image(data, uri="/p/DSC_1.dng", target_size=224, with_metadata=True)
    assert decoded.format == "DNG"
    assert (decoded.width, decoded.height) == (1280, 960)  # the sensor's size, not the preview's
    assert min(decoded.image.size) >= 224 and decoded.image.size[0] <= 1024  # JPEG draft
    meta = decoded.metadata
    assert meta["camera"] == "Anyshot Test DNG" and meta["taken"] == "2023-06-01T12:00:00"
    assert (meta["lat"], meta["lon"]) == pytest.approx(LISBON, abs=1e-3)
    assert read_metadata(data, uri="x.dng") == meta


def test_dng_without_a_preview_is_developed_at_half_size() -> None:
    data = make_dng(640, 480, preview=None)
    decoded = decode_image(data, uri="x.dng", target_size=224, with_metadata=True)
    assert decoded.format == "DNG" and decoded.image.size == (320, 240)
    assert decoded.metadata["camera"] == "Anyshot Test DNG"
    # Developed from the mosaic, the picture is the preview's (white balance aside).
    with_preview = decode_image(make_dng(640, 480, preview=(640, 480)), uri="x.dng")
    developed = np.asarray(decoded.image, np.float64)
    shown = np.asarray(with_preview.image.resize((320, 240)), np.float64)
    assert np.corrcoef(developed[..., 0].ravel(), shown[..., 0].ravel())[0, 1] > 0.9


def test_a_preview_smaller_than_the_model_needs_is_not_used() -> None:
    data = make_dng(1280, 960, preview=(160, 120))
    assert decode_image(data, uri="x.dng", target_size=224).image.size == (640, 480)
    assert decode_image(data, uri="x.dng", target_size=100).image.size == (160, 120)


def test_dng_orientation_turns_the_picture() -> None:
    data = make_dng(640, 480, preview=(640, 480), orientation=6)
    decoded = decode_image(data, uri="x.dng", target_size=224)
    assert (decoded.width, decoded.height) == (480, 640)
    assert decoded.image.size == (240, 320)  # the preview, turned, at JPEG draft size
    developed = decode_image(make_dng(640, 480, preview=None, orientation=6), uri="x.dng")
    assert developed.image.size == (240, 320)


def test_a_dng_is_known_by_its_bytes_too() -> None:
    data = make_dng(640, 480, preview=None)
    assert sniff_raw_format(data) == "DNG"
    assert decode_image(data, uri="upload").format == "DNG"
    assert sniff_raw_format(make_jpeg(8, 8)) is None
    assert sniff_raw_format(b"FUJIFILMCCD-RAW 0201") == "RAF"
    assert sniff_raw_format(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01") == "CR3"


def test_a_raw_larger_than_the_limit_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match=r"too large: 640x480 pixels \(limit 1000\)"):
        decode_image(make_dng(640, 480), uri="x.dng", max_pixels=1000)


# -- bad input ---------------------------------------------------------------------------------


def reason(data: bytes, name: str) -> str:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, uri=name, target_size=224, with_metadata=True)
    return caught.value.reason


def test_a_heic_with_missing_tiles_is_skipped() -> None:
    data = make_heic(1024, 768, tile=256)
    for cut in (1, len(data) // 3):
        assert "missing data" in reason(data[: len(data) - cut], "cut.heic")
        assert missing_item_data(data[: len(data) - cut]) is not None
    assert missing_item_data(data) is None


def test_a_truncated_heic_and_avif_are_skipped() -> None:
    heic, avif = make_heic(), make_avif()
    assert reason(heic[: len(heic) // 2], "half.heic")
    assert reason(avif[: len(avif) // 2], "half.avif")


def test_a_heic_with_damaged_tile_data_never_crashes() -> None:
    data = bytearray(make_heic(1024, 768, tile=256))
    start = data.find(b"mdat") + 4
    middle = start + (len(data) - start) // 2
    data[middle : middle + 500] = bytes(500)
    try:  # HEVC conceals damaged slices: decoded, or skipped with a reason; never more
        assert decode_image(bytes(data), uri="x.heic").image.size == (1024, 768)
    except ImageDecodeError as exc:
        assert exc.reason


def test_files_that_claim_a_format_and_are_not_one() -> None:
    assert reason(b"", "empty.dng") == "empty file"
    assert reason(b"dear diary\n" * 10, "notes.heic") == "not an image (cannot identify format)"
    assert reason(b"dear diary\n" * 10, "notes.dng") == "not an image (cannot identify format)"
    assert reason(b"\x00\x00\x00\x18ftypheic\x00\x00", "stub.heic")
    # A JPEG named .dng is a JPEG: the content decides, as for any other image.
    assert decode_image(make_jpeg(64, 48), uri="wrong.dng").format == "JPEG"


def test_a_truncated_dng_is_skipped_with_a_reason() -> None:
    data = make_dng(640, 480, preview=None)
    for size in (8, 300, len(data) // 2):
        assert reason(data[:size], "cut.dng")
    with_preview = make_dng(640, 480, preview=(640, 480))
    text = reason(with_preview[:200], "cut.dng")
    assert "DNG" in text or "not an image" in text


def test_garbage_raw_metadata_is_dropped_not_fatal() -> None:
    data = bytearray(make_dng(640, 480, preview=(320, 240), taken="2023:06:01 12:00:00"))
    at = data.find(b"2023:06:01")
    data[at : at + 10] = b"9999:99:99"
    meta = read_metadata(bytes(data), uri="x.dng")
    assert "taken" not in meta and meta["camera"] == "Anyshot Test DNG"
    assert read_metadata(b"II*\x00\xff\xff\xff\xff", uri="x.dng") == {"meta_version": 1}


def test_a_heic_thumbnail_serves_a_small_model() -> None:
    data = make_heic(1024, 768, tile=256, thumbnail=320)
    small = decode_image(data, uri="x.heic", target_size=224)
    assert small.image.size == (320, 240) and (small.width, small.height) == (1024, 768)
    assert decode_image(data, uri="x.heic", target_size=256).image.size == (1024, 768)


def test_format_filters_name_the_new_formats() -> None:
    from search.filters import parse_filters

    where = parse_filters(["format=heic,avif,dng,CR3"])
    assert where.formats == ("HEIF", "AVIF", "DNG", "CR3")

"""Photo metadata read from real EXIF/XMP blocks: what is kept, and what garbage is dropped."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from photo_files import LISBON, Rational, exif_block, write_photo, write_trip, xmp_packet
from PIL import Image, PngImagePlugin

from indexer.decode import decode_image, read_metadata
from indexer.photo_metadata import METADATA_VERSION, read_photo_metadata
from indexer.places import add_places, place_keys


def metadata_of(path: Path) -> dict:
    return decode_image(path.read_bytes(), with_metadata=True).metadata


def test_a_phone_photo_gives_every_key(tmp_path: Path):
    photos = write_trip(tmp_path)
    found = metadata_of(photos["lisbon"])
    assert found["taken"] == "2023-06-15T14:30:00+01:00"
    assert found["taken_ts"] == 1686839400.0  # the wall clock, counted as UTC
    assert math.isclose(found["lat"], LISBON[0], abs_tol=1e-5)
    assert math.isclose(found["lon"], LISBON[1], abs_tol=1e-5)
    assert found["location"] == {"lon": found["lon"], "lat": found["lat"]}
    assert found["alt"] == 45.5
    assert found["camera"] == "Apple iPhone 12"
    assert found["camera_lc"] == "apple iphone 12"
    assert found["keywords"] == ["Holiday", "beach"]
    assert found["keywords_lc"] == ["holiday", "beach"]
    assert found["title"] == "Tram 28"
    assert found["meta_version"] == METADATA_VERSION


def test_a_camera_whose_model_repeats_the_make_names_it_once(tmp_path: Path):
    assert metadata_of(write_trip(tmp_path)["porto"])["camera"] == "Canon EOS 5D"


def test_missing_metadata_is_absent_not_zero(tmp_path: Path):
    found = metadata_of(write_trip(tmp_path)["plain"])
    assert found == {"meta_version": METADATA_VERSION}
    png = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(png)
    assert metadata_of(png) == {"meta_version": METADATA_VERSION}


def test_date_digitized_when_no_original_and_never_mtime(tmp_path: Path):
    path = write_photo(tmp_path / "d.jpg", exif=exif_block(digitized="2021:01:02 03:04:05"))
    assert metadata_of(path)["taken"] == "2021-01-02T03:04:05"
    xmp_only = write_photo(tmp_path / "x.jpg", xmp=xmp_packet(created="2020-05-06T07:08:09Z"))
    assert metadata_of(xmp_only)["taken"] == "2020-05-06T07:08:09+00:00"


@pytest.mark.parametrize(
    "fields",
    [
        {"taken": "0000:00:00 00:00:00"},
        {"taken": "2023:13:45 10:00:00"},
        {"taken": "2023:02:30 10:00:00"},
        {"taken": "1700:01:01 00:00:00"},
        {"taken": "2999:01:01 00:00:00"},
        {"taken": "yesterday"},
        {"taken": "    "},
        {"taken": 12345},
        {"taken": b"\xff\xfe\x00garbage"},
    ],
)
def test_impossible_or_mistyped_dates_are_dropped(tmp_path: Path, fields: dict):
    path = write_photo(tmp_path / "bad.jpg", exif=exif_block(**fields, make="Nikon"))
    found = metadata_of(path)
    assert "taken" not in found and "taken_ts" not in found
    assert found["camera"] == "Nikon"  # the other fields stay


def test_a_bad_offset_keeps_the_date_without_one(tmp_path: Path):
    path = write_photo(
        tmp_path / "o.jpg", exif=exif_block(taken="2023:06:15 14:30:00", offset="+99:99")
    )
    assert metadata_of(path)["taken"] == "2023-06-15T14:30:00"


@pytest.mark.parametrize(
    "gps_raw",
    [
        {
            1: "N",
            2: (Rational(38, 1), Rational(43, 0), Rational(0, 0)),
            3: "W",
            4: (Rational(9, 1),),
        },
        {1: "N", 2: (Rational(0, 0),), 3: "W", 4: (Rational(0, 0),)},  # zero denominators: NaN
        {1: "N", 2: (Rational(95, 1),), 3: "E", 4: (Rational(10, 1),)},  # latitude over 90
        {1: "N", 2: (Rational(10, 1),), 3: "E", 4: (Rational(200, 1),)},  # longitude over 180
        {1: "X", 2: (Rational(10, 1),), 3: "E", 4: (Rational(10, 1),)},  # unknown reference
        {1: "N", 2: Rational(38, 1), 3: "W", 4: (Rational(9, 1),)},  # one number, not a triple
        {1: "N", 2: (Rational(0, 1),), 3: "E", 4: (Rational(0, 1),)},  # 0°,0°: "no fix"
        {2: (Rational(10, 1),)},  # latitude without longitude
    ],
)
def test_broken_gps_is_dropped_whole(tmp_path: Path, gps_raw: dict):
    path = write_photo(
        tmp_path / "g.jpg", exif=exif_block(gps_raw=gps_raw, taken="2023:06:15 14:30:00")
    )
    found = metadata_of(path)
    assert not {"lat", "lon", "location", "alt"} & set(found)
    assert found["taken"] == "2023-06-15T14:30:00"


def test_nan_altitude_is_dropped_and_the_position_kept(tmp_path: Path):
    exif = exif_block(gps=LISBON, gps_raw={6: Rational(0, 0)})
    found = metadata_of(write_photo(tmp_path / "a.jpg", exif=exif))
    assert "alt" not in found and "lat" in found


def test_empty_or_control_text_fields_are_dropped(tmp_path: Path):
    exif = exif_block(make=b"\x00\x00\x00", model="\x01\x02", lens="   ")
    found = metadata_of(write_photo(tmp_path / "t.jpg", exif=exif))
    assert not {"camera", "lens"} & set(found)


def test_corrupt_exif_keeps_the_image(tmp_path: Path):
    good = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(good, "JPEG", exif=b"Exif\x00\x00MM\x00*garbage" * 4)
    decoded = decode_image(good.getvalue(), with_metadata=True)
    assert decoded.image.size == (16, 16)
    assert decoded.metadata == {"meta_version": METADATA_VERSION}


def test_a_huge_xmp_packet_is_not_parsed(tmp_path: Path):
    packet = xmp_packet(keywords=["big"]) + b" " * (50 << 20)  # 50 MB
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode())
    path = tmp_path / "big.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    data = path.read_bytes()
    assert read_metadata(data) in ({"meta_version": METADATA_VERSION}, {})
    decoded = decode_image(data, with_metadata=True)  # the image itself still decodes
    assert decoded.image.size == (8, 8) and "keywords" not in decoded.metadata


def test_xmp_with_entities_is_not_parsed(tmp_path: Path):
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa">]>' + xmp_packet(
        keywords=["&a;&a;"]
    )
    path = write_photo(tmp_path / "e.jpg", xmp=evil)
    assert "keywords" not in metadata_of(path)


def test_broken_xmp_keeps_the_exif(tmp_path: Path):
    exif = exif_block(taken="2023:06:15 14:30:00")
    path = write_photo(tmp_path / "b.jpg", exif=exif, xmp=b"<x:xmpmeta><rdf:RDF><unclosed")
    assert metadata_of(path)["taken"] == "2023-06-15T14:30:00"


def test_not_an_image_has_no_metadata():
    assert read_metadata(b"not an image at all") == {}


def test_metadata_is_read_only_when_asked(tmp_path: Path):
    data = write_trip(tmp_path)["lisbon"].read_bytes()
    assert decode_image(data).metadata == {}
    with Image.open(io.BytesIO(data)) as image:
        assert read_photo_metadata(image)["camera"] == "Apple iPhone 12"


def test_places_from_the_shipped_gazetteer():
    payloads = [
        {"lat": 38.7223, "lon": -9.1393},
        {"lat": 41.1496, "lon": -8.6109},
        {"lat": 35.6895, "lon": 139.6917},
        {"uri": "no gps"},
    ]
    assert add_places(payloads) == 3
    assert payloads[0]["country"] == "PT" and "lisbon" in payloads[0]["place_lc"]
    assert payloads[1]["place"] == "Porto" and payloads[1]["country"] == "PT"
    assert payloads[2]["country"] == "JP"
    assert payloads[3] == {"uri": "no gps"}


def test_mid_ocean_names_no_place():
    far = {"latitude": 38.7, "longitude": -9.1, "city": "Lisbon", "country_code": "PT"}
    assert place_keys(30.0, -40.0, far) == {}
    near_coast = place_keys(38.7, -9.9, far)  # ~70 km off: the country, not the city
    assert near_coast.get("country") == "PT" and "place" not in near_coast

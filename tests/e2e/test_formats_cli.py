"""The contract "`.heic` and `.dng` files in a folder are indexed like JPEGs": through `anyshot
index` (decoded in its worker processes), found by `anyshot search --image` with any of these
formats as the example, and as an HTTP upload; broken ones skipped with a reason."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runs import json_lines, run
from fastapi.testclient import TestClient
from format_files import make_avif, make_dng, make_heic, make_jpeg, photo_exif

from indexer.config import build_settings
from search.api import create_app

LISBON = (38.7223, -9.1393)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, random_model_name: str):
    """(photos folder, store, index summary): one photo of each format and three broken ones."""
    root = tmp_path_factory.mktemp("formats")
    photos = root / "photos"
    photos.mkdir()
    iphone = photo_exif(make="Apple", model="iPhone 15", taken="2024:05:01 10:00:00", gps=LISBON)
    files = {
        "jpeg.jpg": make_jpeg(640, 480, seed=1),
        "iphone.HEIC": make_heic(1024, 768, seed=2, tile=256, exif=iphone),
        "pixel.avif": make_avif(640, 480, seed=3),
        "camera.dng": make_dng(
            1280, 960, preview=(1024, 768), seed=4, taken="2023:06:01 12:00:00", gps=LISBON
        ),
        "undeveloped.DNG": make_dng(640, 480, preview=None, seed=5),
        "empty.dng": b"",
        "notes.heic": b"shopping list: bread, milk\n",
    }
    cut = make_heic(1024, 768, seed=6, tile=256)
    files["cut.heic"] = cut[: len(cut) * 2 // 3]
    for name, data in files.items():
        (photos / name).write_bytes(data)
    store = str(root / "store")
    code, out, _ = run(
        "index", str(photos), "--model", random_model_name, "--store", store, "--json",
        "--workers", "2",
    )  # fmt: skip
    assert code == 0
    return photos, store, json.loads(out.strip().splitlines()[-1])


def test_heic_dng_and_avif_are_indexed_like_jpegs(indexed):
    _, store, summary = indexed
    assert (summary["indexed"], summary["skipped"]) == (5, 3)
    reasons = {Path(s["uri"]).name: s["reason"] for s in summary["skipped_images"]}
    assert reasons["empty.dng"] == "empty file"
    assert reasons["notes.heic"] == "not an image (cannot identify format)"
    assert reasons["cut.heic"].startswith("missing data")

    code, out, _ = run("search", "a photo", "--store", store, "-k", "10", "--json")
    assert code == 0
    payloads = {Path(h["uri"]).name: h["payload"] for h in json_lines(out)}
    assert {name: p["format"] for name, p in payloads.items()} == {
        "jpeg.jpg": "JPEG",
        "iphone.HEIC": "HEIF",
        "pixel.avif": "AVIF",
        "camera.dng": "DNG",
        "undeveloped.DNG": "DNG",
    }
    assert (payloads["camera.dng"]["width"], payloads["camera.dng"]["height"]) == (1280, 960)
    for name, taken in (("iphone.HEIC", "2024-05-01T10:00:00"), ("camera.dng", "2023-06-01")):
        assert payloads[name]["taken"].startswith(taken)
        assert (payloads[name]["region"], payloads[name]["country"]) == ("Lisbon", "PT")
    assert payloads["iphone.HEIC"]["camera"] == "Apple iPhone 15"


def test_each_format_is_a_query_image_that_finds_itself(indexed):
    photos, store, _ = indexed
    for name in ("iphone.HEIC", "camera.dng", "undeveloped.DNG", "pixel.avif"):
        code, out, err = run(
            "search", "--image", str(photos / name), "--store", store, "-k", "1", "--json"
        )
        assert code == 0, err
        hit = json_lines(out)[0]
        assert hit["uri"] == str(photos / name)
        assert hit["score"] == pytest.approx(1.0, abs=1e-3)


def test_a_bad_query_image_is_a_one_line_error(indexed):
    photos, store, _ = indexed
    for name in ("notes.heic", "cut.heic", "empty.dng"):
        code, _, err = run("search", "--image", str(photos / name), "--store", store)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err


def test_http_uploads_take_heic_and_dng(indexed):
    photos, store, _ = indexed
    settings = build_settings(store=store, workers=0)
    with TestClient(create_app(settings)) as http:
        for name in ("iphone.HEIC", "camera.dng"):
            reply = http.post(
                "/search/image",
                files={"file": (name, (photos / name).read_bytes(), "application/octet-stream")},
                data={"k": "1"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["hits"][0]["uri"] == os.fspath(photos / name)
        broken = http.post(
            "/search/image",
            files={"file": ("cut.heic", (photos / "cut.heic").read_bytes(), "image/heic")},
        )
        assert broken.status_code == 400 and "missing data" in broken.text


def test_the_server_hands_out_a_heic_and_thumbnails_of_every_format(indexed):
    photos, store, _ = indexed
    settings = build_settings(store=store, workers=0)
    with TestClient(create_app(settings)) as http:
        hits = http.get("/search", params={"q": "a photo", "k": 10}).json()["hits"]
        heic = next(h for h in hits if h["uri"].endswith("iphone.HEIC"))
        original = http.get(heic["image_url"])
        assert original.status_code == 200, original.text
        assert original.headers["content-type"] == "image/heif"
        assert original.content == (photos / "iphone.HEIC").read_bytes()
        for name in ("camera.dng", "undeveloped.DNG"):  # downloaded as what they are
            dng = next(h for h in hits if h["uri"].endswith(name))
            assert http.get(dng["image_url"]).headers["content-type"] == "image/x-adobe-dng"
        for hit in hits:  # thumbnails are JPEG or PNG, whatever the file's format
            thumb = http.get(hit["thumbnail_url"])
            assert thumb.status_code == 200, (hit["uri"], thumb.text)

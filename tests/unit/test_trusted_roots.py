"""Trusted roots (what a server may serve) and lossless URIs for any file name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from indexer.config import StoreSettings
from indexer.errors import ConfigError
from indexer.schema import ImageRecord, ModelIdentity, path_uri, point_id, uri_path
from indexer.stores.opening import open_store
from indexer.trusted_roots import (
    TRUSTED_ROOTS_DOCUMENT,
    compact_roots,
    origin_of,
    read_trusted_roots,
    root_of,
    roots_of_records,
    split_roots,
    trust_roots,
)

IDENTITY = ModelIdentity(name="tiny", pretrained=None, dim=4)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Example.org/a/b.jpg?x=1", "https://example.org"),
        ("http://example.org:80/x", "http://example.org"),
        ("https://example.org:443/x", "https://example.org"),
        ("http://example.org:8080/x", "http://example.org:8080"),
        ("http://[::1]:8000/x", "http://[::1]:8000"),
        ("file:///etc/passwd", None),
        ("javascript:alert(1)", None),
        ("http://example.org:99999/x", None),
        ("/local/path.jpg", None),
    ],
)
def test_origins(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_roots_of_a_run_are_real_folders_and_origins(tmp_path: Path) -> None:
    photos, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    (photos / "a").mkdir(parents=True)
    elsewhere.mkdir()
    (photos / "linked").symlink_to(elsewhere)
    records = [
        ImageRecord(str(photos / "a" / "1.jpg")),
        ImageRecord(str(photos / "linked" / "2.jpg")),
        ImageRecord("https://images.example.org/3.jpg"),
        ImageRecord("ftp://nowhere/4.jpg"),
    ]
    roots = roots_of_records(records, folder=str(photos))
    assert roots == {
        os.path.realpath(photos),
        os.path.realpath(photos / "a"),
        os.path.realpath(elsewhere),
        "https://images.example.org",
    }
    folders = sorted([os.path.realpath(photos), os.path.realpath(elsewhere)])
    assert compact_roots(roots) == [*folders, "https://images.example.org"]


def test_compacting_keeps_sibling_folders_apart() -> None:
    assert compact_roots(["/data/photos-private", "/data/photos", "/data/photos/2024"]) == [
        "/data/photos",
        "/data/photos-private",
    ]


def test_a_root_given_by_a_person(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert root_of("pictures") == os.path.realpath(tmp_path / "pictures")
    assert root_of("https://Example.org/some/page") == "https://example.org"
    with pytest.raises(ConfigError):
        root_of("ftp://example.org/")


@pytest.mark.parametrize("location", ["edge", ":memory:"])
def test_trusted_roots_are_kept_with_the_collection(tmp_path: Path, location: str) -> None:
    settings = StoreSettings(location=str(tmp_path / "store") if location == "edge" else location)
    with open_store(settings) as store:
        store.bind_model(IDENTITY)
        assert read_trusted_roots(store) == ()
        first = trust_roots(store, ["/data/photos/2024", "https://example.org"])
        assert first == ("/data/photos/2024", "https://example.org")
        second = trust_roots(store, ["/data/photos"])
        assert second == ("/data/photos", "https://example.org")
        assert read_trusted_roots(store) == second
        assert split_roots(second) == (("/data/photos",), frozenset({"https://example.org"}))
        written = store.read_document(TRUSTED_ROOTS_DOCUMENT)
        assert trust_roots(store, ["/data/photos/x"]) == second  # nothing new: not rewritten
        assert store.read_document(TRUSTED_ROOTS_DOCUMENT) == written


def test_a_broken_document_trusts_nothing(tmp_path: Path) -> None:
    with open_store(StoreSettings(location=str(tmp_path / "store"))) as store:
        store.bind_model(IDENTITY)
        store.write_document(TRUSTED_ROOTS_DOCUMENT, {"roots": "/"})
        assert read_trusted_roots(store) == ()
        store.write_document(TRUSTED_ROOTS_DOCUMENT, {"roots": [1, None, "", "/data"]})
        assert read_trusted_roots(store) == ("/data",)


# -- URIs of any file name -----------------------------------------------------------------------


def test_a_name_that_is_not_utf8_gets_a_lossless_uri(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/bad\xffname.png"
    path = os.fsdecode(raw)  # what os.scandir gives: a surrogate escape
    uri = path_uri(path)
    assert uri.startswith("file://") and uri.endswith("/bad%FFname.png")
    uri.encode("utf-8")  # storable in Qdrant, Parquet and JSON
    assert os.fsencode(uri_path(uri)) == raw
    Path(path).write_bytes(b"x")
    assert Path(uri_path(uri)).read_bytes() == b"x"
    assert point_id(uri) == point_id(uri)
    assert isinstance(point_id(path), int)  # never fails, even on the raw form


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("/data/50% off.jpg", "/data/50% off.jpg"),
        ("/data/naïve café.jpg", "/data/naïve café.jpg"),
        ("file:///data/a%20b.jpg", "/data/a b.jpg"),
        ("file://localhost/data/x.jpg", "/data/x.jpg"),
        ("file://otherhost/etc/passwd", None),
        ("https://example.org/x.jpg", None),
        ("javascript:alert(1)", None),
        ("relative/x.jpg", None),
        ("../../etc/passwd", None),
        ("", None),
    ],
)
def test_uri_paths(uri: str, path: str | None) -> None:
    assert uri_path(uri) == path


def test_utf8_paths_keep_their_uri_and_id() -> None:
    for path in ("/data/50% off.jpg", "/data/naïve café.jpg", "/data/a b.jpg"):
        assert path_uri(path) == path
    # ids of existing collections do not move
    assert point_id("/data/x.jpg") == point_id(path_uri("/data/x.jpg"))
    assert np.uint64(point_id("/data/x.jpg")) < 2**53

"""Metadata filters on both store backends, from payloads read out of real photo files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from photo_files import write_trip

from indexer.config import StoreSettings
from indexer.decode import decode_image
from indexer.errors import QueryError
from indexer.places import add_places
from indexer.schema import ImagePayload, ModelIdentity, point_id
from indexer.stores.interface import PayloadFilter, VectorStore
from indexer.stores.opening import open_store
from search.filters import parse_filters
from search.listing import list_images

DIM = 8
MODEL = ModelIdentity(name="test-model", pretrained=None, dim=DIM)


@pytest.fixture(scope="module")
def trip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """name → payload of the four trip photos, as an index run writes them."""
    photos = write_trip(tmp_path_factory.mktemp("trip"))
    payloads = {}
    for name, path in photos.items():
        decoded = decode_image(path.read_bytes(), with_metadata=True)
        payload = ImagePayload(
            str(path), path.stat().st_size, 1.7e9, decoded.sha256, 64, 48, "JPEG"
        ).to_dict()
        payloads[name] = payload | decoded.metadata
    add_places(list(payloads.values()))
    return payloads


@pytest.fixture(params=["edge", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path, trip: dict[str, dict]) -> VectorStore:
    location = str(tmp_path / "store") if request.param == "edge" else ":memory:"
    opened = open_store(StoreSettings(location=location))
    opened.bind_model(MODEL)
    vectors = np.random.default_rng(0).normal(size=(len(trip), DIM)).astype(np.float32)
    opened.upsert([point_id(p["uri"]) for p in trip.values()], vectors, list(trip.values()))
    yield opened
    opened.close()


def names(store: VectorStore, *expressions: str) -> set[str]:
    where = parse_filters(expressions)
    found = {Path(p.payload["uri"]).stem for p in store.scroll(where=where)}
    searched = store.search(np.ones(DIM, np.float32), limit=10, where=where)
    assert {Path(p.payload["uri"]).stem for p in searched} == found
    assert store.count(where) == len(found)
    return found


@pytest.mark.parametrize(
    ("expressions", "expected"),
    [
        (("taken>=2023-06-01",), {"lisbon", "paris"}),
        (("taken<2023",), {"porto"}),
        (("taken<2024", "taken>=2023-07"), {"paris"}),
        (("taken=2023-06",), {"lisbon"}),
        (("taken<=2023-06-15",), {"lisbon", "porto"}),
        (("taken>2023-06-15",), {"paris"}),
        (("place=Lisbon",), {"lisbon"}),
        (("place=porto,PARIS",), {"porto", "paris"}),
        (("country=pt",), {"lisbon", "porto"}),
        (("country=FR",), {"paris"}),
        (("camera=iPhone",), {"lisbon"}),
        (("camera=eos 5",), {"porto"}),
        (("keyword=HOLIDAY",), {"lisbon"}),
        (("keyword=mountains",), set()),
        (("near=38.72,-9.14,5",), {"lisbon"}),
        (("near=40,-9,300",), {"lisbon", "porto"}),
        (("has=gps",), {"lisbon", "porto", "paris"}),
        (("has=taken",), {"lisbon", "porto", "paris"}),
        (("has=text",), set()),
        (("taken>=2023-01-01", "country=PT"), {"lisbon"}),
    ],
)
def test_each_filter_on_both_backends(store: VectorStore, expressions, expected):
    assert names(store, *expressions) == expected


def test_the_payload_keys_of_the_contract(trip: dict[str, dict]):
    lisbon = trip["lisbon"]
    for key in ("taken", "taken_ts", "lat", "lon", "place", "region", "country", "camera"):
        assert key in lisbon, key
    assert lisbon["country"] == "PT" and lisbon["region"] == "Lisbon"
    assert "keywords" in lisbon
    plain = trip["plain"]
    for key in ("taken", "taken_ts", "lat", "lon", "place", "country", "camera", "keywords"):
        assert key not in plain, key


def test_listing_sorted_by_date_on_both_backends(store: VectorStore):
    where = parse_filters(["has=gps"])
    newest = list_images(store, where, k=10, sort="-taken").hits
    assert [Path(h.uri).stem for h in newest] == ["paris", "lisbon", "porto"]
    oldest = list_images(store, where, k=2, offset=1, sort="taken").hits
    assert [Path(h.uri).stem for h in oldest] == ["lisbon", "paris"]
    assert all(h.score == 0.0 for h in newest)
    unsorted = list_images(store, parse_filters(["country=PT"]), k=10).hits
    assert {Path(h.uri).stem for h in unsorted} == {"lisbon", "porto"}


def test_a_listing_needs_a_filter(store: VectorStore):
    with pytest.raises(QueryError, match="or filters alone"):
        list_images(store, PayloadFilter(), k=10)


@pytest.mark.parametrize(
    "near", [(91.0, 0.0, 5.0), (0.0, 181.0, 5.0), (1.0, 1.0, -5.0), (float("nan"), 0.0, 1.0)]
)
def test_bad_near_built_in_python_is_refused_by_the_store(store: VectorStore, near):
    with pytest.raises(QueryError):
        store.count(PayloadFilter(near=near))

"""Photo metadata as users meet it: `anyshot index` then `anyshot search --filter`, the Python
client's ``where=`` and the HTTP ``filter``; listings by filter alone; the metadata-only pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runs import json_lines, run
from fastapi.testclient import TestClient
from photo_files import write_trip

from indexer.config import build_settings
from indexer.errors import QueryError
from indexer.indexing import plan_index, refresh_metadata
from indexer.schema import PAYLOAD_KEYS, ImageRecord, point_id
from indexer.stores.opening import open_store
from search.api import create_app
from search.client import ImageSearch

ADVERSARIAL = [
    ("near=91,0,5", "latitude is -90..90"),
    ("near=a,b,c", "near= takes LAT,LON,KM"),
    ("near=1,2,-5", "more than 0"),
    ("near=1,2", "near= takes LAT,LON,KM"),
    ("taken>=yesterday", "is not a date"),
    ("taken>=2023-02-30", "is not a date"),
    ("taken>=2023-06-01T10:00+01:00", "without an offset"),
    ("country=Portugal", "not a country code"),
    ("has=wings", "has= takes gps, taken, text"),
    ("camera<iPhone", "camera takes '='"),
]


def stems(hits: list[dict]) -> list[str]:
    return [Path(h["uri"]).stem for h in hits]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, random_model_name: str) -> tuple[Path, str]:
    """(photos folder, store): the trip photos indexed through the CLI, as the contract says."""
    root = tmp_path_factory.mktemp("trip")
    write_trip(root / "photos")
    store = str(root / "store")
    code, out, _ = run(
        "index", str(root / "photos"), "--model", random_model_name, "--store", store, "--json"
    )
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["indexed"] == 4
    return root / "photos", store


def test_index_records_the_contract_keys(indexed):
    _, store = indexed
    code, out, _ = run("search", "--filter", "has=gps", "--store", store, "-k", "10", "--json")
    assert code == 0
    by_name = {Path(h["uri"]).stem: h["payload"] for h in json_lines(out)}
    lisbon = by_name["lisbon"]
    assert lisbon["taken"] == "2023-06-15T14:30:00+01:00"
    assert (lisbon["country"], lisbon["region"], lisbon["camera"]) == (
        "PT",
        "Lisbon",
        "Apple iPhone 12",
    )
    assert {"lat", "lon", "place", "taken_ts", "location"} <= lisbon.keys()
    assert by_name["porto"]["place"] == "Porto"
    assert by_name["paris"]["country"] == "FR" and "camera" not in by_name["paris"]


def test_contract_search_with_filters(indexed):
    _, store = indexed
    code, out, _ = run(
        "search", "x", "--filter", "taken>=2023-01-01", "--filter", "country=PT",
        "--store", store, "--json",
    )  # fmt: skip
    assert code == 0 and stems(json_lines(out)) == ["lisbon"]
    code, out, _ = run("search", "x", "--filter", "near=48.85,2.35,10", "--store", store, "--json")
    assert code == 0 and stems(json_lines(out)) == ["paris"]


def test_listing_by_filter_alone_sorted_by_date(indexed):
    _, store = indexed
    code, out, _ = run(
        "search", "--filter", "country=PT", "--sort", "taken", "--store", store, "--json"
    )
    assert code == 0 and stems(json_lines(out)) == ["porto", "lisbon"]
    code, out, _ = run(
        "search", "--filter", "has=taken", "--sort", "-taken", "--store", store, "--json"
    )
    assert stems(json_lines(out)) == ["paris", "lisbon", "porto"]
    assert all(hit["score"] == 0.0 for hit in json_lines(out))
    # with a query, the k best are put in date order, the undated last
    code, out, _ = run("search", "x", "--sort", "-taken", "-k", "4", "--store", store, "--json")
    assert stems(json_lines(out)) == ["paris", "lisbon", "porto", "plain"]


@pytest.mark.parametrize(("expression", "message"), ADVERSARIAL)
def test_adversarial_filters_are_one_line_errors_on_the_cli(indexed, expression, message):
    _, store = indexed
    for args in (("x",), ()):
        code, out, err = run("search", *args, "--filter", expression, "--store", store)
        assert code == 1 and out == ""
        assert message in err and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err


def test_a_search_without_query_or_filter_is_still_refused(indexed):
    _, store = indexed
    code, _, err = run("search", "--sort", "taken", "--store", store)
    assert code == 1 and "give exactly one query" in err


def test_python_client_where_and_sort(indexed):
    _, store = indexed
    with ImageSearch(build_settings(store=store, workers=0)) as client:
        hits = client.search(where=["country=pt", "taken<2023"])
        assert stems([h.to_dict() for h in hits]) == ["porto"]
        listed = client.search(where="has=gps", sort="-taken", k=2)
        assert stems([h.to_dict() for h in listed]) == ["paris", "lisbon"]
        for expression, message in ADVERSARIAL:
            with pytest.raises(QueryError, match=message.replace("(", r"\(")):
                client.search("x", where=[expression])
        with pytest.raises(QueryError, match="sort by one of"):
            client.search(where="has=gps", sort="size")


def test_http_filters_listing_and_adversarial_4xx(indexed):
    _, store = indexed
    with TestClient(create_app(build_settings(store=store, workers=0))) as http:
        reply = http.get("/search", params={"filter": ["place=porto"], "sort": "-taken"})
        assert reply.status_code == 200 and stems(reply.json()["hits"]) == ["porto"]
        body = {"text": "x", "filters": ["near=38.72,-9.14,5", "has=taken"]}
        assert stems(http.post("/search", json=body).json()["hits"]) == ["lisbon"]
        body = {"filters": ["has=gps"], "sort": "taken", "k": 1}
        assert stems(http.post("/search", json=body).json()["hits"]) == ["porto"]
        for expression, message in ADVERSARIAL:
            reply = http.get("/search", params={"q": "x", "filter": expression})
            assert reply.status_code == 400, expression
            error = reply.json()["error"]
            assert message in error and "\n" not in error
        assert http.get("/search", params={"filter": "has=gps", "sort": "size"}).status_code == 422
        assert http.get("/search").status_code == 400  # neither a query nor a filter


def test_a_store_indexed_before_metadata_gets_it_without_re_embedding(
    tmp_path: Path, random_model_name: str
):
    photos = write_trip(tmp_path / "photos")
    store = str(tmp_path / "store")
    run("index", str(tmp_path / "photos"), "--model", random_model_name, "--store", store)
    ids = [point_id(str(p)) for p in photos.values()]
    # What an older anyshot stored: the same vectors, payloads without any metadata.
    with open_store(build_settings(store=store).store) as opened:
        before = {p.id: p for p in opened.retrieve(ids, with_vectors=True)}
        old = {pid: {k: p.payload[k] for k in PAYLOAD_KEYS} for pid, p in before.items()}
        opened.upsert(ids, np.stack([before[i].vector for i in ids]), [old[i] for i in ids])
        assert "taken" not in opened.retrieve(ids[:1])[0].payload
        # The metadata-only pass needs no model: the store and the files.
        records = plan_index(_records(photos), opened).stale_metadata
        assert len(records) == 4
        assert refresh_metadata(opened, records) == 4
        after = {p.id: p for p in opened.retrieve(ids, with_vectors=True)}
        for pid in ids:
            assert np.array_equal(after[pid].vector, before[pid].vector)
            assert {k: after[pid].payload[k] for k in PAYLOAD_KEYS} == old[pid]
        assert after[point_id(str(photos["lisbon"]))].payload["country"] == "PT"
        opened.upsert(ids, np.stack([before[i].vector for i in ids]), [old[i] for i in ids])
    # ... and through `anyshot index`: nothing re-embedded, the metadata added once.
    code, out, _ = run("index", str(tmp_path / "photos"), "--store", store, "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and (report["indexed"], report["unchanged"]) == (0, 4)
    code, out, _ = run("search", "--filter", "country=PT", "--store", store, "--json")
    assert sorted(stems(json_lines(out))) == ["lisbon", "porto"]
    with open_store(build_settings(store=store).store) as opened:
        assert plan_index(_records(photos), opened).stale_metadata == []


def _records(photos: dict[str, Path]) -> list[ImageRecord]:
    return [ImageRecord(str(p), p.stat().st_size, p.stat().st_mtime) for p in photos.values()]

"""Hostile requests to the endpoints of the one face: concepts, tags, duplicates, and snapshots in
parts (``GET /export/*``, ``POST /load``, ``POST /load/documents``).

What an attacker with the API (or without the key) tries: oversized or odd names and labels,
pixel bombs as concept examples, crafted and damaged shards through ``POST /load`` (every check
of ``anyshot load`` applies), trusting folders outside ``api.index_roots``, bringing trusted
roots in through a snapshot's documents, and export pages out of range. Each asserts the exact
refusal and that nothing changed.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from adversary import png_declaring
from fastapi.testclient import TestClient
from PIL import Image

from indexer.config import build_settings
from indexer.parquet_store import CHECKSUM_METADATA_KEY, ParquetShardWriter
from indexer.schema import ModelIdentity, point_id
from indexer.trusted_roots import TRUSTED_ROOTS_DOCUMENT
from search.api import create_app
from search.messages import PARQUET_MEDIA_TYPE, UPLOADED_SHARD

UPLOAD_LIMIT = 300_000
PARQUET = {"content-type": PARQUET_MEDIA_TYPE}


def settings_for(store: Path, **api: object):
    settings = build_settings(store=str(store), workers=0)
    settings.api = type(settings.api).model_validate(api)
    return settings


def error_of(reply) -> tuple[int, str]:
    body = reply.json()
    assert set(body) == {"error", "type"} and body["error"], body
    return reply.status_code, body["type"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Site:
    """A server over a copy of the collection, limited to the folder ``allowed``."""

    http: TestClient
    store: Path
    images: Path
    allowed: Path
    outside: Path
    model: ModelIdentity

    def points(self) -> int:
        return self.http.get("/info").json()["points"]

    def shard(self, folder: Path, uris: list[str], *, vectors: np.ndarray | None = None) -> bytes:
        """The bytes of a shard of the collection's model, written by anyshot's own writer."""
        rows = np.random.default_rng(len(uris)).normal(size=(len(uris), self.model.dim))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        path = ParquetShardWriter(folder, self.model).write(
            [point_id(uri) for uri in uris],
            (rows if vectors is None else vectors).astype(np.float32),
            [{"uri": uri, "format": "PNG"} for uri in uris],
        )
        return path.read_bytes()

    def load(self, data: bytes, **params: object):
        return self.http.post("/load", params=params, content=data, headers=PARQUET)


@pytest.fixture
def site(tiny_store_template, tmp_path) -> Iterator[Site]:
    images, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    allowed = tmp_path / "allowed"
    (allowed / "photos").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "photos" / "escape").symlink_to(outside, target_is_directory=True)
    settings = settings_for(
        store, index_roots=[str(allowed)], max_upload_bytes=UPLOAD_LIMIT, max_query_pixels=10**6
    )
    with TestClient(create_app(settings)) as http:
        model = ModelIdentity.from_dict(http.get("/info").json()["model"])
        yield Site(http, store, images, allowed, outside, model)


# -- concepts -------------------------------------------------------------------------------------


def test_concept_requests_out_of_bounds_are_refused_and_store_nothing(site: Site) -> None:
    http = site.http
    image = b64((site.images / "ring-blue-006.png").read_bytes())
    one = {"examples": [{"image": image}]}
    assert error_of(http.put("/concepts/" + "n" * 1001, json=one)) == (422, "ValidationError")
    escape = http.put("/concepts/%1B%5B31mred", json=one)
    assert error_of(escape) == (400, "QueryError")
    assert escape.json()["error"] == (
        "a concept's name may not contain control characters: '\\x1b[31mred'"
    )
    many = {"examples": [{"id": 1}] * 65}
    assert error_of(http.put("/concepts/many", json=many)) == (422, "ValidationError")
    long_label = {"examples": [{"image": image, "label": "x" * 4001}]}
    assert error_of(http.put("/concepts/label", json=long_label)) == (422, "ValidationError")
    extra = {"examples": [{"image": image, "path": "/etc/passwd"}]}
    assert error_of(http.put("/concepts/extra", json=extra)) == (422, "ValidationError")
    garbage = http.put("/concepts/garbage", json={"examples": [{"image": b64(b"%PDF-1.4")}]})
    assert garbage.json() == {
        "error": "the example image is not an image Pillow can read",
        "type": "QueryError",
    }
    too_big = http.put("/concepts/big", json={"examples": [{"image": "A" * UPLOAD_LIMIT}]})
    assert error_of(too_big) == (413, "TooLarge")
    assert http.get("/concepts").json() == []


def test_a_pixel_bomb_as_a_concept_example_is_refused_before_decoding(site: Site) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (600, 600), "blue").save(buffer, format="PNG")
    small = b64(buffer.getvalue())  # 360,000 pixels each: two fit the budget, three do not
    huge = {"examples": [{"image": b64(png_declaring(9999, 9999))}]}
    bomb = site.http.put("/concepts/bomb", json=huge)
    assert error_of(bomb) == (400, "QueryError")
    assert bomb.json()["error"] == (
        "the example image is too large: it decodes to 99980001 pixels, over the request's "
        "budget of 1000000 (api.max_query_pixels)"
    )
    three = site.http.put("/concepts/three", json={"examples": [{"image": small}] * 3})
    assert error_of(three) == (400, "QueryError")
    assert "over what is left of the request's budget of 1000000" in three.json()["error"]
    assert site.http.get("/concepts").json() == []


# -- tags -----------------------------------------------------------------------------------------


def test_tag_requests_out_of_bounds_are_refused(site: Site) -> None:
    http = site.http
    assert error_of(http.post("/tags", json={"labels": ["x" * 1001]})) == (422, "ValidationError")
    many = {"labels": [f"label {i}" for i in range(10_001)]}
    assert error_of(http.post("/tags", json=many)) == (422, "ValidationError")
    assert error_of(http.post("/tags", json={"labels": []})) == (422, "ValidationError")
    bell = http.post("/tags", json={"labels": ["ring", "star\x07"]})
    assert bell.json() == {
        "error": "a label may not contain control characters: 'star\\x07'",
        "type": "QueryError",
    }
    no_top = http.post("/tags", json={"labels": ["a"], "top": 0})
    assert error_of(no_top) == (422, "ValidationError")
    assert error_of(http.post("/duplicates", json={"threshold": 0})) == (422, "ValidationError")
    assert http.get("/tags").json() == {}


def test_tagging_while_an_index_run_writes_is_busy(site: Site, tmp_path: Path) -> None:
    """Two writes over the whole collection would overwrite each other's points: 429."""
    client = site.http.app.state.server.client
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(site.images / "ring-blue-006.png", more / "copy.png")
    started, release = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        started.set()
        assert release.wait(30)

    run = threading.Thread(target=client.index, args=(more,), kwargs={"progress": progress})
    run.start()
    try:
        assert started.wait(60)
        busy = site.http.post("/tags", json={"labels": ["ring", "star"]})
        assert error_of(busy) == (429, "BusyError")
        assert busy.headers["retry-after"] == "1"
        assert site.load(b"PAR1").status_code == 429
    finally:
        release.set()
        run.join(60)
    assert site.http.post("/tags", json={"labels": ["ring", "star"]}).json()["images"] == 121


# -- POST /load -----------------------------------------------------------------------------------


def test_damaged_foreign_and_empty_bodies_load_nothing(site: Site, tmp_path: Path) -> None:
    good = site.shard(tmp_path / "good", ["/photos/a.png", "/photos/b.png"])
    flipped = bytearray(good)
    # A byte in the middle of the vectors' data (the footer has bytes no reader looks at).
    group = pq.ParquetFile(io.BytesIO(good)).metadata.row_group(0)
    chunk = group.column(group.num_columns - 1)  # the embedding column, written last
    assert chunk.path_in_schema.startswith("embedding")
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    flipped[start + chunk.total_compressed_size // 2] ^= 0xFF
    other = ModelIdentity("other-model", None, site.model.dim)
    foreign = ParquetShardWriter(tmp_path / "foreign", other).write(
        [point_id("/photos/c.png")],
        np.eye(1, site.model.dim, dtype=np.float32),
        [{"uri": "/photos/c.png"}],
    )
    cases = {
        bytes(flipped): "unreadable Parquet shard",
        b"PAR1 this is not parquet PAR1": "unreadable Parquet shard",
        foreign.read_bytes(): "embeddings of model 'other-model'",
    }
    for body, reason in cases.items():
        report = site.load(body).json()
        assert (report["loaded"], report["points"]) == (0, 120), report
        (bad,) = report["bad_shards"]
        assert bad["path"] == UPLOADED_SHARD and bad["reason"].startswith(reason), bad
    assert site.load(b"").json() == {
        "error": "the body is empty: send one Parquet shard",
        "type": "QueryError",
    }


def test_a_changed_value_fails_the_uploaded_shards_checksum(site: Site, tmp_path: Path) -> None:
    """A shard rewritten with another uri but its old checksum: refused whole."""
    path = tmp_path / "shard.parquet"
    path.write_bytes(site.shard(tmp_path / "w", ["/photos/a.png"]))
    table = pq.read_table(path)
    checksum = table.schema.metadata[CHECKSUM_METADATA_KEY]
    changed = table.set_column(1, "uri", [["/etc/shadow"]])
    metadata = table.schema.metadata | {CHECKSUM_METADATA_KEY: checksum}
    changed = changed.replace_schema_metadata(metadata)
    pq.write_table(changed, path)
    report = site.load(path.read_bytes()).json()
    assert report["bad_shards"] == [
        {
            "path": UPLOADED_SHARD,
            "reason": "checksum mismatch: the shard was changed or damaged after it was written",
        }
    ]
    assert report["loaded"] == 0


def test_rows_of_an_uploaded_shard_are_checked_one_by_one(site: Site, tmp_path: Path) -> None:
    uris = ["/photos/ok.png", "/photos/nan.png", "relative/x.png"]
    rows = np.random.default_rng(0).normal(size=(3, site.model.dim))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows[1, 0] = np.nan
    report = site.load(site.shard(tmp_path / "rows", uris, vectors=rows)).json()
    assert (report["loaded"], report["rejected"], report["points"]) == (1, 2, 121)
    assert [(r["shard"], r["row"]) for r in report["rejected_rows"]] == [
        (UPLOADED_SHARD, 1),
        (UPLOADED_SHARD, 2),
    ]
    assert site.http.get(f"/images/{point_id('/photos/ok.png')}").status_code == 404  # untrusted


def test_a_shard_over_the_upload_limit_is_refused_unread(site: Site) -> None:
    reply = site.load(b"PAR1" + b"x" * UPLOAD_LIMIT)
    assert error_of(reply) == (413, "TooLarge")

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 65536

    chunked = site.http.post("/load", content=chunks(), headers=PARQUET)
    assert error_of(chunked) == (413, "TooLarge")
    assert site.points() == 120


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("/etc", "/etc is outside the folders this server may index"),
        ("ESCAPE", "ESCAPE is outside the folders this server may index"),
        ("photos", "the folder to trust must be an absolute path on the server, not 'photos'"),
        ("https://example.com", "https://example.com is outside the folders this server may index"),
        ("/x\0y", "the folder to trust must be a path without NUL characters"),
    ],
)
def test_trust_outside_the_index_roots_is_refused_before_loading(
    site: Site, tmp_path: Path, entry: str, message: str
) -> None:
    entry = entry.replace("ESCAPE", str(site.allowed / "photos" / "escape"))
    message = message.replace("ESCAPE", str(site.allowed / "photos" / "escape"))
    shard = site.shard(tmp_path / "t", [str(site.outside / "secret.png")])
    reply = site.load(shard, trust=entry)
    assert error_of(reply) == (400, "ConfigError")
    assert reply.json()["error"] == message
    assert site.points() == 120


def test_trust_inside_the_index_roots_serves_only_what_is_an_image_there(
    site: Site, tmp_path: Path
) -> None:
    photos = site.allowed / "photos"
    shutil.copy(site.images / "ring-blue-006.png", photos / "ring.png")
    (photos / "notes.png").write_text("not an image")
    inside = [str(photos / "ring.png"), str(photos / "notes.png")]
    outside = str(site.outside / "secret.png")
    shutil.copy(site.images / "ring-blue-006.png", outside)
    report = site.load(site.shard(tmp_path / "t", [*inside, outside]), trust=str(photos)).json()
    assert report["loaded"] == 3 and os.path.realpath(photos) in report["trusted"]
    assert site.http.get(f"/images/{point_id(inside[0])}").status_code == 200
    assert site.http.get(f"/images/{point_id(inside[1])}").status_code == 404
    assert site.http.get(f"/images/{point_id(outside)}").status_code == 404
    too_many = site.load(b"PAR1", trust=[str(photos)] * 33)
    assert error_of(too_many) == (422, "ValidationError")


def test_documents_never_bring_trusted_roots_nor_bad_concepts(site: Site) -> None:
    dim = site.model.dim
    unit = [1.0] + [0.0] * (dim - 1)
    documents = {
        "format": 1,
        "model": site.model.to_dict(),
        "documents": {
            TRUSTED_ROOTS_DOCUMENT: {"roots": ["/"]},
            "concepts": {
                "format": 1,
                "concepts": [
                    {"name": "short", "examples": [], "created": 1.0, "vectors": [[1.0]]},
                    {"name": "fine", "examples": ["id:1"], "created": 1.0, "vectors": [unit]},
                ],
            },
        },
    }
    report = site.http.post("/load/documents", json=documents).json()
    assert report["concepts"] == ["fine"]
    assert report["rejected_documents"] == [
        {
            "document": TRUSTED_ROOTS_DOCUMENT,
            "name": None,
            "reason": "a snapshot may not carry this document: it stays with its store",
        },
        {
            "document": "concepts",
            "name": "short",
            "reason": f"a vector is not a list of {dim} numbers (the collection's dimension)",
        },
    ]
    assert site.http.get(f"/images/{point_id('/etc/passwd')}").status_code == 404
    exported = site.http.get("/export/documents").json()
    assert list(exported["documents"]) == ["concepts"]  # never the trusted roots
    malformed = site.http.post("/load/documents", json={"format": "one", "documents": []})
    assert error_of(malformed) == (422, "ValidationError")


# -- GET /export ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 10_001},
        {"after": -1},
        {"after": 2**64},
        {"after": "../../etc"},
        {"path": "/etc/passwd", "limit": "x"},
    ],
)
def test_export_pages_out_of_range_are_refused(site: Site, params: dict) -> None:
    assert error_of(site.http.get("/export/points", params=params)) == (422, "ValidationError")


def test_export_pages_need_the_key_like_everything_else(tiny_store_template, tmp_path) -> None:
    store = tmp_path / "store"
    shutil.copytree(tiny_store_template[1], store)
    with TestClient(create_app(settings_for(store, api_key="k"))) as http:
        for method, path in [
            ("GET", "/export/points"),
            ("GET", "/export/documents"),
            ("POST", "/load"),
            ("POST", "/load/documents"),
            ("PUT", "/concepts/x"),
            ("DELETE", "/concepts/x"),
            ("POST", "/tags"),
            ("GET", "/info"),
        ]:
            reply = http.request(method, path, content=b"x" * 10)
            assert error_of(reply) == (401, "Unauthorized"), path

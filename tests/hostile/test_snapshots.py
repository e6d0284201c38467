"""Crafted and damaged snapshots: ``anyshot load`` takes the good shards and rows, reports the rest.

A snapshot may come from anywhere. Each case builds shards on disk (with anyshot's own writer,
or byte by byte with pyarrow), loads them into a real store, and asserts exactly what was
loaded, which rows were rejected and why, and which shards were skipped and why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adversary import assert_no_traceback, run_anyshot
from click.testing import CliRunner

from indexer.config import StoreSettings
from indexer.parquet_store import (
    CHECKSUM_METADATA_KEY,
    EXTRA_COLUMN,
    PAYLOAD_COLUMNS,
    ParquetShardWriter,
    parquet_schema,
    read_shard,
    shard_checksum,
)
from indexer.schema import ModelIdentity, point_id
from indexer.stores.interface import VectorStore
from indexer.stores.opening import open_store
from indexer.transfer import LoadReport, export_collection, load_collection
from indexer.trusted_roots import read_trusted_roots, trust_roots
from indexer.video import frame_id
from search.cli import main

DIM = 8
MODEL = ModelIdentity(name="snapshot-model", pretrained=None, dim=DIM)
OTHER_MODEL = ModelIdentity(name="other-model", pretrained=None, dim=DIM)


def unit_rows(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def payload(uri: str, **extra) -> dict:
    return {
        "uri": uri,
        "size": 100,
        "mtime": 1.7e9,
        "format": "PNG",
        "width": 4,
        "height": 3,
    } | extra


def shard_rows(uris: list[str], seed: int = 0) -> tuple[list[int], np.ndarray, list[dict]]:
    return [point_id(u) for u in uris], unit_rows(len(uris), seed), [payload(u) for u in uris]


def write_shard(
    folder: Path,
    uris: list[str],
    *,
    model: ModelIdentity = MODEL,
    ids: list[int] | None = None,
    vectors: np.ndarray | None = None,
    payloads: list[dict] | None = None,
    seed: int = 0,
) -> Path:
    """A shard written by anyshot's own writer (with its checksums), rows as given."""
    default_ids, default_vectors, default_payloads = shard_rows(uris, seed)
    return ParquetShardWriter(folder, model).write(
        default_ids if ids is None else ids,
        default_vectors if vectors is None else vectors,
        default_payloads if payloads is None else payloads,
    )


def crafted_table(
    uris: list[str],
    *,
    model: ModelIdentity = MODEL,
    seed: int = 0,
    extra: list[str | None] | None = None,
) -> pa.Table:
    """The table anyshot would write, for shards built by hand (``extra``: the raw texts of
    the extra column)."""
    ids, _, payloads = shard_rows(uris, seed)
    vectors = np.random.default_rng(seed).normal(size=(len(uris), model.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    schema = parquet_schema(model)
    columns = {"id": pa.array(ids, pa.uint64())}
    for name in PAYLOAD_COLUMNS:
        columns[name] = [p.get(name) for p in payloads]
    columns[EXTRA_COLUMN] = extra if extra is not None else [None] * len(uris)
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(-1)), model.dim
    )
    return pa.Table.from_pydict(columns, schema=schema)


def load(folder: Path, store: VectorStore, **kwargs) -> LoadReport:
    return load_collection(folder, store, **kwargs)


@pytest.fixture
def store(tmp_path: Path):
    with open_store(StoreSettings(location=str(tmp_path / "store"), reserve_free_mb=0)) as opened:
        yield opened


def reasons(report: LoadReport) -> list[tuple[int, str | None, str]]:
    return [(r["row"], r["uri"], r["reason"]) for r in report.rejected_rows]


# -- rows ------------------------------------------------------------------------------------------


def test_non_finite_zero_and_not_unit_vectors_are_rejected(tmp_path, store) -> None:
    uris = [f"/photos/{i}.jpg" for i in range(6)]
    vectors = unit_rows(6)
    vectors[1, 3] = np.nan
    vectors[2, 0] = np.inf
    vectors[3] = 0.0
    vectors[4] *= 2.0
    write_shard(tmp_path / "snap", uris, vectors=vectors)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (2, 4, [])
    assert reasons(report) == [
        (1, uris[1], "vector with NaN or infinite values"),
        (2, uris[2], "vector with NaN or infinite values"),
        (3, uris[3], "vector norm 0, not 1 (embeddings are unit vectors)"),
        (4, uris[4], "vector norm 2, not 1 (embeddings are unit vectors)"),
    ]
    assert sorted(p.payload["uri"] for p in store.scroll()) == [uris[0], uris[5]]


def test_ids_that_are_not_the_ids_of_their_uris_are_rejected(tmp_path, store) -> None:
    uris = ["/photos/a.jpg", "/photos/b.jpg", "/photos/c.jpg"]
    ids = [point_id(uris[0]), point_id("/etc/other"), 12345]
    write_shard(tmp_path / "snap", uris, ids=ids)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (1, 2, [])
    assert reasons(report) == [
        (1, uris[1], f"id {point_id('/etc/other')} is not the id of its uri ({point_id(uris[1])})"),
        (2, uris[2], f"id 12345 is not the id of its uri ({point_id(uris[2])})"),
    ]
    assert [p.id for p in store.scroll()] == [point_id(uris[0])]


def test_uris_other_than_local_paths_and_web_urls_are_rejected(tmp_path, store) -> None:
    uris = [
        "/etc/shadow",  # a valid local path: loaded, but never trusted (see below)
        "file:///photos/ok.jpg",
        "file://localhost/photos/also-ok.jpg",
        "https://images.example.org/cat.jpg",
        "file://otherhost/etc/passwd",
        "javascript:alert(1)",
        "relative/photo.jpg",
        "../../etc/passwd",
        "/photos/../etc/passwd",
        "/photos/./x.jpg",
        "file:///photos/%2E%2E/etc/passwd",
        "file:///photos/a%00b.jpg",
        "ftp://example.org/x.jpg",
        "http:///no-host.jpg",
        "data:image/png;base64,AAAA",
    ]
    write_shard(tmp_path / "snap", uris)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (4, 11, [])
    assert reasons(report) == [
        (4, uris[4], "file:// URL on another host"),
        (
            5,
            uris[5],
            "unsupported uri scheme 'javascript': only absolute paths, file:// and http(s) URLs",
        ),
        (6, uris[6], "relative path: a uri is an absolute path, a file:// URL or an http(s) URL"),
        (7, uris[7], "relative path: a uri is an absolute path, a file:// URL or an http(s) URL"),
        (8, uris[8], "path with '.' or '..' parts"),
        (9, uris[9], "path with '.' or '..' parts"),
        (10, uris[10], "path with '.' or '..' parts"),
        (11, uris[11], "path holds a NUL character"),
        (
            12,
            uris[12],
            "unsupported uri scheme 'ftp': only absolute paths, file:// and http(s) URLs",
        ),
        (13, uris[13], "http(s) URL without a host"),
        (
            14,
            uris[14],
            "unsupported uri scheme 'data': only absolute paths, file:// and http(s) URLs",
        ),
    ]
    assert sorted(p.payload["uri"] for p in store.scroll()) == sorted(uris[:4])
    # Loading trusts nothing: /etc/shadow is searchable but lies under no trusted root.
    assert read_trusted_roots(store) == ()


def test_huge_payload_strings_and_bad_payload_values_are_rejected(tmp_path, store) -> None:
    uris = [f"/photos/{i}.jpg" for i in range(7)]
    payloads = [payload(u) for u in uris]
    payloads[1]["format"] = "P" * 1_000_000
    payloads[2]["tags"] = ["t"] * 1001
    payloads[3]["tags"] = ["x" * 5000]
    payloads[4]["mtime"] = float("nan")
    payloads[5]["size"] = -7
    payloads[6]["sha256"] = "f" * 300
    write_shard(tmp_path / "snap", uris, payloads=payloads)
    long_uri = "/photos/" + "a" * 9000
    write_shard(tmp_path / "snap", [long_uri], seed=1)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (1, 7, [])
    assert [(r["row"], r["reason"]) for r in report.rejected_rows] == [
        (1, "format is not a text of at most 256 characters"),
        (2, "tags is not a list of at most 1000 texts"),
        (3, "a tag is not a text of at most 1024 characters"),
        (4, "mtime nan is not a finite time"),
        (5, "size -7 is not a byte count"),
        (6, "sha256 is not a text of at most 256 characters"),
        (0, "uri longer than 8192 characters"),
    ]
    assert report.rejected_rows[-1]["uri"] == long_uri[:200]  # samples stay small


def test_extra_keys_are_checked_like_the_columns(tmp_path, store) -> None:
    """Metadata and video keys travel in the extra column: each is checked for its type and
    range, unknown keys are refused, and a frame's id must be the id of its uri and time."""
    uris = [f"/media/{i}.mp4" for i in range(12)]
    frame = {"kind": "video", "t": 4.0, "duration": 8.0, "frames": 3, "codec": "h264"}
    payloads = [payload(u, **frame) for u in uris]
    ids = [frame_id(u, 4.0) for u in uris]
    payloads[1]["t"] = -1.0
    payloads[2]["kind"] = "movie"
    payloads[3]["lat"], payloads[3]["lon"] = 91.0, 0.0
    payloads[4]["taken"] = "yesterday"
    payloads[5]["keywords"] = ["k" * 5000]
    payloads[6]["location"] = {"lon": 0.0, "lat": 0.0, "evil": 1}
    payloads[7]["description"] = "d" * 100_001
    payloads[8]["frames"] = True
    del payloads[9]["t"]
    ids[10] = point_id(uris[10])  # an image's id on a frame
    payloads[11] = payload(uris[11], taken="2023-06-15T14:30:00+01:00", lat=38.7, lon=-9.1)
    ids[11] = point_id(uris[11])  # a photo with metadata: loaded
    write_shard(tmp_path / "snap", uris, ids=ids, payloads=payloads)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected) == (2, 10)
    assert [(r["row"], r["reason"]) for r in report.rejected_rows] == [
        (1, "t is not a time in seconds"),
        (2, 'kind is not "video"'),
        (3, "lat is not a latitude"),
        (4, "taken is not an ISO 8601 date"),
        (5, "keywords is not a list of texts"),
        (6, "location is not {lon, lat} in range"),
        (7, "description is not a text"),
        (8, "frames is not a frame count"),
        (9, "a video frame without its time t"),
        (10, f"id {ids[10]} is not the id of its uri and time ({frame_id(uris[10], 4.0)})"),
    ]
    frame_point = store.retrieve([ids[0]])[0]
    assert frame_point.payload["t"] == 4.0 and frame_point.payload["kind"] == "video"
    assert store.retrieve([ids[11]])[0].payload["lat"] == 38.7


def test_unknown_keys_and_a_broken_extra_column_are_refused(tmp_path, store) -> None:
    uris = ["/photos/a.jpg", "/photos/b.jpg"]
    write_shard(tmp_path / "one", uris, payloads=[payload(uris[0]), payload(uris[1], evil=1)])
    report = load(tmp_path / "one", store)
    assert [(r["row"], r["reason"]) for r in report.rejected_rows] == []  # never written
    assert report.loaded == 2 and "evil" not in store.retrieve([point_id(uris[1])])[0].payload
    cases = {
        "part-1.parquet": '{"lat": 1.0',  # not JSON
        "part-2.parquet": '["lat", 1.0]',  # not an object
        "part-3.parquet": "[" * 100_000 + "]" * 100_000,  # nests past the parser's depth
    }
    folder = tmp_path / "two"
    folder.mkdir()
    for name, text in cases.items():
        table = crafted_table(["/photos/c.jpg"], extra=[text])
        metadata = dict(table.schema.metadata) | {
            CHECKSUM_METADATA_KEY: shard_checksum(table).encode()
        }
        pq.write_table(table.replace_schema_metadata(metadata), folder / name)
    good = crafted_table(["/photos/d.jpg"], extra=['{"unknown": 1}'])
    pq.write_table(good, folder / "part-4.parquet")
    report = load(folder, store)
    assert [Path(b["path"]).name for b in report.bad_shards] == [
        "part-1.parquet", "part-2.parquet", "part-3.parquet"
    ]  # fmt: skip
    assert all("row 0: the extra column is not" in b["reason"] for b in report.bad_shards)
    assert [(r["row"], r["reason"]) for r in report.rejected_rows] == [
        (0, "unknown payload key 'unknown'")
    ]


def test_duplicate_ids_in_one_shard_keep_the_first_row(tmp_path, store) -> None:
    uris = ["/photos/a.jpg", "/photos/b.jpg", "/photos/a.jpg"]
    write_shard(tmp_path / "snap", uris)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (2, 1, [])
    assert reasons(report) == [(2, "/photos/a.jpg", "duplicate of row 0 of this shard")]
    [first] = store.retrieve([point_id("/photos/a.jpg")], with_vectors=True)
    np.testing.assert_allclose(first.vector, unit_rows(3)[0], atol=1e-6)


def test_rejected_row_samples_are_capped(tmp_path, store) -> None:
    uris = [f"relative/{i}.jpg" for i in range(50)]
    write_shard(tmp_path / "snap", uris)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (0, 50, [])
    assert len(report.rejected_rows) == 20
    assert store.model() is None  # nothing taken: the store was not even created


# -- shards ----------------------------------------------------------------------------------------


def good_shard(folder: Path, name: str, uris: list[str], seed: int = 0) -> Path:
    path = write_shard(folder, uris, seed=seed)
    return path.rename(folder / name)


def test_damaged_foreign_and_special_shards_are_skipped_and_the_good_ones_loaded(
    tmp_path, store
) -> None:
    snap = tmp_path / "snap"
    good_shard(snap, "part-0001-good.parquet", ["/photos/1.jpg", "/photos/2.jpg"])
    good_shard(snap, "part-0009-good.parquet", ["/photos/9.jpg"], seed=9)

    (snap / "part-0002-text.parquet").write_text("this is not parquet\n" * 10)
    (snap / "part-0003-empty-file.parquet").write_bytes(b"")
    os.symlink("/dev/zero", snap / "part-0004-zero.parquet")
    os.mkfifo(snap / "part-0005-fifo.parquet")
    other = write_shard(snap, ["/photos/o.jpg"], model=OTHER_MODEL)
    other.rename(snap / "part-0006-other-model.parquet")
    pq.write_table(
        crafted_table(["/photos/n.jpg"]).replace_schema_metadata({}),
        snap / "part-0007-no-metadata.parquet",
    )
    wrong_dim = crafted_table(["/photos/w.jpg"], model=ModelIdentity("x", None, 4))
    wrong_dim = wrong_dim.replace_schema_metadata(parquet_schema(MODEL).metadata)
    pq.write_table(wrong_dim, snap / "part-0008-wrong-dimension.parquet")

    report = load(snap, store)
    assert (report.loaded, report.rejected, report.shards) == (3, 0, 9)
    assert report.bad_shards == [
        {
            "path": str(snap / "part-0002-text.parquet"),
            "reason": "unreadable Parquet shard: Parquet magic bytes not found in footer. "
            "Either the file is corrupted or this is not a parquet file.",
        },
        {
            "path": str(snap / "part-0003-empty-file.parquet"),
            "reason": "unreadable Parquet shard: Parquet file size is 0 bytes",
        },
        {
            "path": str(snap / "part-0004-zero.parquet"),
            "reason": "not a regular file (a character device)",
        },
        {"path": str(snap / "part-0005-fifo.parquet"), "reason": "not a regular file (a FIFO)"},
        {
            "path": str(snap / "part-0006-other-model.parquet"),
            "reason": "embeddings of model 'other-model', but the store holds 'snapshot-model'",
        },
        {
            "path": str(snap / "part-0007-no-metadata.parquet"),
            "reason": "not an anyshot shard (no model metadata)",
        },
        {
            "path": str(snap / "part-0008-wrong-dimension.parquet"),
            "reason": "vectors of dimension 4, but the shard's model snapshot-model has "
            "dimension 8",
        },
    ]
    assert sorted(p.payload["uri"] for p in store.scroll()) == [
        "/photos/1.jpg",
        "/photos/2.jpg",
        "/photos/9.jpg",
    ]


def test_an_empty_shard_loads_nothing_and_is_not_bad(tmp_path, store) -> None:
    write_shard(tmp_path / "snap", [])
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards, report.shards) == (0, 0, [], 1)
    assert report.complete


def flip_bytes(path: Path, count: int = 40) -> None:
    """Flip ``count`` bytes in the middle of a file (as the issue's reporter did)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for offset in range(middle, middle + count):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_and_a_truncated_shard_beside_good_ones(tmp_path, store) -> None:
    snap = tmp_path / "snap"
    many = [f"/photos/{i}.jpg" for i in range(200)]
    flipped = good_shard(snap, "part-0001-flipped.parquet", many)
    good_shard(snap, "part-0002-good.parquet", ["/photos/good.jpg"], seed=2)
    truncated = good_shard(snap, "part-0003-truncated.parquet", many, seed=3)
    flip_bytes(flipped)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    report = load(snap, store)
    assert (report.loaded, report.rejected) == (1, 0)
    assert [bad["path"] for bad in report.bad_shards] == [str(flipped), str(truncated)]
    assert report.bad_shards[0]["reason"].startswith("unreadable Parquet shard: ")
    assert "CRC checksum verification failed" in report.bad_shards[0]["reason"]
    assert report.bad_shards[1]["reason"] == (
        "unreadable Parquet shard: Parquet magic bytes not found in footer. "
        "Either the file is corrupted or this is not a parquet file."
    )
    assert [p.payload["uri"] for p in store.scroll()] == ["/photos/good.jpg"]


def test_a_changed_value_fails_the_shard_checksum(tmp_path, store) -> None:
    """Rewritten with valid pages but a changed vector: only the shard checksum sees it."""
    path = write_shard(tmp_path / "snap", ["/photos/a.jpg", "/photos/b.jpg"])
    table = pq.read_table(path)
    vectors = unit_rows(2, seed=5)
    changed = table.set_column(
        table.schema.get_field_index("embedding"),
        table.schema.field("embedding"),
        pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
    )
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), path)
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected) == (0, 0)
    assert report.bad_shards == [
        {
            "path": str(path),
            "reason": "checksum mismatch: the shard was changed or damaged after it was written",
        }
    ]


def test_shards_of_older_versions_load_with_row_checks_only(tmp_path, store) -> None:
    """No checksum (older versions): loaded, counted as unchecked; zeroed vectors (what the
    issue's 40 flipped bytes produced) are still refused by the row checks."""
    table = crafted_table(["/photos/a.jpg", "/photos/b.jpg", "/photos/c.jpg"])
    vectors = unit_rows(3)
    vectors[1] = 0.0
    table = table.set_column(
        table.schema.get_field_index("embedding"),
        table.schema.field("embedding"),
        pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
    )
    (tmp_path / "snap").mkdir()
    pq.write_table(table, tmp_path / "snap" / "part-0001-old.parquet")  # no checksum at all
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (2, 1, [])
    assert report.unchecked_shards == 1
    assert reasons(report) == [
        (1, "/photos/b.jpg", "vector norm 0, not 1 (embeddings are unit vectors)")
    ]


def test_a_valid_checksum_does_not_excuse_bad_rows(tmp_path, store) -> None:
    """An attacker can compute checksums too: rows are checked whatever the checksum says."""
    table = crafted_table(["/photos/a.jpg", "javascript:alert(1)"])
    metadata = dict(table.schema.metadata) | {CHECKSUM_METADATA_KEY: shard_checksum(table).encode()}
    (tmp_path / "snap").mkdir()
    path = tmp_path / "snap" / "part-0001.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    assert read_shard(path).checksum is not None
    report = load(tmp_path / "snap", store)
    assert (report.loaded, report.rejected, report.bad_shards) == (1, 1, [])


def test_written_shards_carry_a_value_checksum(tmp_path) -> None:
    """(Page checksums: see the flipped-bytes case, which only a CRC catches.)"""
    path = write_shard(tmp_path / "snap", ["/photos/a.jpg"])
    written = pq.read_schema(path).metadata[CHECKSUM_METADATA_KEY]
    assert written == shard_checksum(pq.read_table(path)).encode()
    assert written.startswith(b"sha256:")


# -- trusted roots and the CLI ---------------------------------------------------------------------


def test_export_never_carries_trusted_roots_and_load_trusts_only_what_it_is_told(tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    uris = [str(photos / f"{i}.jpg") for i in range(3)]
    with open_store(StoreSettings(location=str(tmp_path / "a"), reserve_free_mb=0)) as source:
        source.bind_model(MODEL)
        ids, vectors, payloads = shard_rows(uris)
        source.upsert(ids, vectors, payloads)
        trust_roots(source, [str(photos), "/srv/secret"])
        export_collection(source, tmp_path / "snap")
        assert read_trusted_roots(source) == ("/srv/secret", str(photos))
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == [
        p.name for p in sorted((tmp_path / "snap").glob("part-*.parquet"))
    ]
    with open_store(StoreSettings(location=str(tmp_path / "b"), reserve_free_mb=0)) as target:
        report = load_collection(tmp_path / "snap", target)
        assert (report.loaded, report.trusted) == (3, [])
        assert read_trusted_roots(target) == ()
    with open_store(StoreSettings(location=str(tmp_path / "c"), reserve_free_mb=0)) as trusted:
        report = load_collection(
            tmp_path / "snap", trusted, trust=[str(photos), "https://Images.Example.org:443/x"]
        )
        assert report.trusted == [str(photos), "https://images.example.org"]
        assert read_trusted_roots(trusted) == (str(photos), "https://images.example.org")


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_load_reports_rejections_as_json_and_exits_1(tmp_path) -> None:
    snap = tmp_path / "snap"
    good_shard(snap, "part-0001-good.parquet", ["/photos/a.jpg", "relative.jpg"])
    (snap / "part-0002-bad.parquet").write_text("junk")
    store = str(tmp_path / "store")
    env = {"ANYSHOT_STORE__RESERVE_FREE_MB": "0"}
    result = CliRunner(env=env).invoke(
        main, ["load", str(snap), "--store", store, "--trust", str(tmp_path), "--json"]
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout.splitlines()[-1])
    assert (report["loaded"], report["rejected"], report["points"]) == (1, 1, 1)
    assert [b["path"] for b in report["bad_shards"]] == [str(snap / "part-0002-bad.parquet")]
    assert report["rejected_rows"] == [
        {
            "shard": str(snap / "part-0001-good.parquet"),
            "row": 1,
            "uri": "relative.jpg",
            "reason": "relative path: a uri is an absolute path, a file:// URL or an http(s) URL",
        }
    ]
    assert report["trusted"] == [str(tmp_path)]
    assert result.stderr.strip() == (
        f"error: 1 rows and 1 shards of {snap} were rejected (see rejected_rows and bad_shards "
        "in the JSON above); the rest was loaded"
    )


def test_cli_load_of_a_clean_snapshot_exits_0(tmp_path) -> None:
    good_shard(tmp_path / "snap", "part-0001.parquet", ["/photos/a.jpg", "/photos/b.jpg"])
    code, out, err = cli("load", str(tmp_path / "snap"), "--store", str(tmp_path / "s"))
    assert (code, err) == (0, "")
    assert (
        out.strip() == "loaded 2 rows; rejected 0 rows and 0 of 1 shards; the store holds 2 images"
    )


def test_cli_load_refuses_a_bad_trust_entry_before_loading(tmp_path) -> None:
    good_shard(tmp_path / "snap", "part-0001.parquet", ["/photos/a.jpg"])
    code, out, err = cli(
        "load", str(tmp_path / "snap"), "--store", str(tmp_path / "s"), "--trust", "ftp://x/y"
    )
    assert (code, out) == (1, "")
    assert err.strip() == "error: cannot trust 'ftp://x/y': give a folder or an http(s) origin"
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_real_anyshot_load_of_a_hostile_snapshot_prints_no_traceback(tmp_path) -> None:
    snap = tmp_path / "snap"
    good_shard(snap, "part-0001-good.parquet", ["/photos/a.jpg", "javascript:x"])
    os.symlink("/dev/zero", snap / "part-0002-zero.parquet")
    (snap / "part-0003-junk.parquet").write_bytes(os.urandom(4096))
    result = run_anyshot(
        "load",
        str(snap),
        "--store",
        str(tmp_path / "store"),
        "--json",
        env={"ANYSHOT_STORE__RESERVE_FREE_MB": "0"},
        timeout=120,
    )
    assert_no_traceback(result.stdout, result.stderr)
    assert result.returncode == 1
    report = json.loads(result.stdout.splitlines()[-1])
    assert (report["loaded"], report["rejected"], len(report["bad_shards"])) == (1, 1, 2)
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: 1 rows and 2 shards of ")

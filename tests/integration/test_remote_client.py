"""``RemoteImageSearch`` at its edges: a server that cannot be reached, a server that is not
anyshot, and an export page that arrives damaged or with another checksum than it claims.

The main paths run against the real API (tests/e2e/test_one_face.py, test_connect.py); these
cases need a server that misbehaves, so they use small local HTTP servers that do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from shape_collection import free_port

from indexer.errors import ParquetError, StoreError
from indexer.parquet_store import list_shards
from search import RemoteImageSearch
from search.messages import SHARD_CHECKSUM_HEADER, TOTAL_POINTS_HEADER


@contextmanager
def http_server(replies: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[str]:
    """Answer GET PATH with (status, headers, body); other paths 404 with an HTML page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = replies.get(
                self.path.split("?")[0], (404, {"Content-Type": "text/html"}, b"<h1>nope</h1>")
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_cannot_be_reached_is_one_store_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with RemoteImageSearch(url) as client, pytest.raises(StoreError) as failed:
        client.search("a red circle")
    message = str(failed.value)
    assert message.startswith(f"cannot reach the anyshot server at {url}: ")
    assert "\n" not in message


def test_a_reply_that_is_not_anyshot_says_what_answered() -> None:
    with http_server({}) as url, RemoteImageSearch(url) as client:
        with pytest.raises(StoreError) as failed:
            client.info()
        assert not client.healthy()
    assert str(failed.value) == f"the server at {url} answered 404 to GET /info: <h1>nope</h1>"


def export_page(body: bytes, checksum: str | None) -> dict[str, tuple[int, dict, bytes]]:
    headers = {"Content-Type": "application/vnd.apache.parquet", TOTAL_POINTS_HEADER: "3"}
    if checksum is not None:
        headers[SHARD_CHECKSUM_HEADER] = checksum
    return {"/export/points": (200, headers, body)}


def real_shard(tmp_path: Path) -> tuple[bytes, str]:
    """The bytes of a real three-point shard, and its checksum."""
    import numpy as np

    from indexer.parquet_store import ParquetShardWriter, read_shard
    from indexer.schema import ModelIdentity, point_id

    uris = [f"/p/{i}.jpg" for i in range(3)]
    writer = ParquetShardWriter(tmp_path / "made", ModelIdentity("m", None, 4))
    path = writer.write(
        [point_id(u) for u in uris], np.eye(4, dtype=np.float32)[:3], [{"uri": u} for u in uris]
    )
    return path.read_bytes(), str(read_shard(path).checksum)


@pytest.mark.parametrize("damage", ["garbage", "another checksum"])
def test_a_damaged_export_page_leaves_nothing_behind(tmp_path, damage) -> None:
    data, checksum = real_shard(tmp_path)
    if damage == "garbage":
        data = data[: len(data) // 2]
    else:
        checksum = "sha256:" + "0" * 64
    snapshot = tmp_path / "snapshot"
    with (
        http_server(export_page(data, checksum)) as url,
        RemoteImageSearch(url) as client,
        pytest.raises(ParquetError) as failed,
    ):
        client.export(snapshot)
    assert str(failed.value).startswith(f"a shard from {url} arrived damaged: ")
    assert list_shards(snapshot) == [] and not any(snapshot.iterdir())

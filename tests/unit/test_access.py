"""What may be read: regular files only, real paths under roots, URLs by policy with a deadline."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from indexer.access import (
    AccessPolicy,
    fetch_url,
    read_local_file,
    resolve_roots,
    within_roots,
)
from indexer.config import ApiSettings, IndexSettings
from indexer.errors import ImageDecodeError

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(ImageDecodeError) as caught:
        call(*args, **kwargs)
    return caught.value.reason


def finishes(call, seconds: float = 10.0) -> object:
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it does not return."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(_capture(call)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    return outcome[0]


def _capture(call) -> object:
    try:
        return call()
    except Exception as exc:
        return exc


# -- local files ----------------------------------------------------------------------------------


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    assert read_local_file(str(path)) == PNG
    assert read_local_file(str(path), roots=resolve_roots([tmp_path])) == PNG


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    outcome = finishes(lambda: read_local_file(str(fifo)))
    assert isinstance(outcome, ImageDecodeError)
    assert outcome.reason == "not a regular file (a FIFO)"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/dev/zero", "not a regular file (a character device)"),
        ("/dev/null", "not a regular file (a character device)"),
        ("/", "not a regular file (a folder)"),
    ],
)
def test_devices_and_folders_are_refused_without_reading(path: str, reason: str) -> None:
    assert finishes(lambda: refusal(read_local_file, path)) == reason


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        reason = finishes(lambda: refusal(read_local_file, str(path)))
    assert reason.startswith("not a regular file")


def test_missing_empty_and_large_files(tmp_path: Path) -> None:
    assert refusal(read_local_file, str(tmp_path / "nope.png")) == "no such file"
    (tmp_path / "empty.png").write_bytes(b"")
    assert refusal(read_local_file, str(tmp_path / "empty.png")) == "empty file"
    (tmp_path / "big.png").write_bytes(PNG * 10)
    assert refusal(read_local_file, str(tmp_path / "big.png"), max_bytes=100) == (
        "larger than 100 bytes"
    )


def test_a_link_out_of_the_roots_is_refused_after_resolving(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(PNG)
    (root / "inside.png").write_bytes(PNG)
    (root / "link.png").symlink_to(outside / "secret.png")
    (root / "folder-link").symlink_to(outside)
    roots = resolve_roots([root])
    assert read_local_file(str(root / "inside.png"), roots=roots) == PNG
    for path in (root / "link.png", root / "folder-link" / "secret.png", outside / "secret.png"):
        assert refusal(read_local_file, str(path), roots=roots) == (
            "outside the folders this run may read"
        )
    # ".." cannot climb out either: the check is on the file the kernel opened
    climbing = f"{root}/../outside/secret.png"
    assert refusal(read_local_file, climbing, roots=roots) == (
        "outside the folders this run may read"
    )
    # without roots, anything readable is read
    assert read_local_file(str(root / "link.png")) == PNG


def test_a_link_into_the_roots_is_read(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "real.png").write_bytes(PNG)
    (tmp_path / "alias.png").symlink_to(root / "real.png")
    assert read_local_file(str(tmp_path / "alias.png"), roots=resolve_roots([root])) == PNG


def test_within_roots_compares_whole_folder_names() -> None:
    assert within_roots("/data/photos/a.jpg", ["/data/photos"])
    assert within_roots("/data/photos", ["/data/photos"])
    assert not within_roots("/data/photos-private/a.jpg", ["/data/photos"])
    assert within_roots("/anything", ["/"])
    assert not within_roots("/etc/shadow", [])


# -- URLs -----------------------------------------------------------------------------------------


class ImageServer(ThreadingHTTPServer):
    """A local web server: /img.png, /big (no length), /slow (a byte a second), redirects."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ImageServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        port = self.server.server_address[1]
        if self.path == "/img.png":
            self._reply(200, PNG, {"Content-Length": str(len(PNG))})
        elif self.path == "/big":
            self.send_response(200)
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"x" * 65536)
        elif self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(60):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
        elif self.path == "/to-loopback":
            self._reply(302, b"", {"Location": f"http://127.0.0.1:{port}/img.png"})
        elif self.path == "/loop":
            self._reply(302, b"", {"Location": "/loop"})
        else:
            self._reply(404, b"", {})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def web() -> Iterator[ImageServer]:
    server = ImageServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_person_indexing_a_list_may_fetch_from_their_own_network(web: ImageServer) -> None:
    assert fetch_url(f"{web.base}/img.png", AccessPolicy()) == PNG
    assert refusal(fetch_url, f"{web.base}/missing.png", AccessPolicy()) == "HTTP 404"


def test_a_server_refuses_loopback_before_connecting(web: ImageServer) -> None:
    policy = AccessPolicy.for_server(ApiSettings(fetch_image_urls=True))
    reason = refusal(fetch_url, f"{web.base}/img.png", policy)
    assert reason.startswith("refused: 127.0.0.1 is not a public address")
    assert web.requests == []  # not even a request reached it


def test_a_server_with_fetching_off_fetches_nothing(web: ImageServer) -> None:
    policy = AccessPolicy.for_server(ApiSettings())
    assert refusal(fetch_url, f"{web.base}/img.png", policy) == (
        "URL fetching is off (api.fetch_image_urls)"
    )
    assert web.requests == []


@pytest.mark.parametrize("allowed", ["127.0.0.1", "127.0.0.0/8", "localhost"])
def test_allowed_hosts_open_a_private_host(web: ImageServer, allowed: str) -> None:
    api = ApiSettings(fetch_image_urls=True, fetch_allowed_hosts=[allowed])
    host = "localhost" if allowed == "localhost" else "127.0.0.1"
    url = f"http://{host}:{web.server_address[1]}/img.png"
    assert fetch_url(url, AccessPolicy.for_server(api)) == PNG


def test_each_redirect_is_checked_again(web: ImageServer) -> None:
    # localhost is allowed by name; the redirect goes to 127.0.0.1, which is not
    api = ApiSettings(fetch_image_urls=True, fetch_allowed_hosts=["localhost"])
    url = f"http://localhost:{web.server_address[1]}/to-loopback"
    reason = refusal(fetch_url, url, AccessPolicy.for_server(api))
    assert reason.startswith("refused: 127.0.0.1 is not a public address")
    assert web.requests == ["/to-loopback"]
    assert refusal(fetch_url, f"{web.base}/loop", AccessPolicy()) == "more than 5 redirects"


def test_a_trickling_server_meets_the_total_deadline(web: ImageServer) -> None:
    policy = AccessPolicy(deadline=1.0, connect_timeout=5.0)
    outcome = finishes(lambda: fetch_url(f"{web.base}/slow", policy), seconds=15)
    assert isinstance(outcome, ImageDecodeError)
    assert outcome.reason == "download took longer than 1 s"


def test_a_body_without_length_is_capped_while_read(web: ImageServer) -> None:
    policy = AccessPolicy(max_bytes=100_000)
    assert refusal(fetch_url, f"{web.base}/big", policy) == "larger than 100000 bytes"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.org/a.png", "unsupported URL scheme 'ftp'"),
        ("file:///etc/passwd", "unsupported URL scheme 'file'"),
        ("gopher://127.0.0.1:70/", "unsupported URL scheme 'gopher'"),
    ],
)
def test_only_http_urls_are_fetched(url: str, reason: str) -> None:
    assert refusal(fetch_url, url, AccessPolicy()) == reason


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_non_public_addresses_are_refused_to_a_server(address: str) -> None:
    policy = AccessPolicy(private_hosts=False)
    assert policy.address_refusal("host", address) is not None
    assert AccessPolicy().address_refusal("host", address) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert AccessPolicy(private_hosts=False).address_refusal("host", address) is None


def test_policies_come_from_settings(tmp_path: Path) -> None:
    server = AccessPolicy.for_server(
        ApiSettings(download_deadline=7, max_upload_bytes=5_000_000), roots=[tmp_path]
    )
    assert server.roots == (os.path.realpath(tmp_path),)
    assert (server.fetch_urls, server.private_hosts, server.deadline) == (False, False, 7)
    assert server.max_bytes == 5_000_000
    assert AccessPolicy.for_server(ApiSettings()).roots is None
    local = AccessPolicy.for_index(IndexSettings(download_deadline=9))
    assert (local.roots, local.fetch_urls, local.private_hosts, local.deadline) == (
        None,
        True,
        True,
        9,
    )

"""Hostile inputs to index runs: links and lists that reach outside the allowed folders, special
files, odd names, files that change under the run, folders that cannot be read, and processes
killed mid-run.

Each test asserts the exact outcome: indexed, skipped with this reason, refused, or kept.
In-process runs use the tiny random model (``embedder``) and a real embedded store; the
checks about processes (orphans, permissions, Prefect's output) run the real ``anyshot``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from adversary import ANYSHOT, BASE_ENV, assert_no_traceback, run_anyshot, serving
from click.testing import CliRunner
from PIL import Image

from indexer.access import AccessPolicy
from indexer.config import ApiSettings, IndexSettings, StoreSettings, build_settings
from indexer.embed import Embedder
from indexer.errors import SourceError
from indexer.indexing import IndexReport, index_source
from indexer.schema import path_uri, point_id, uri_path
from indexer.stores.interface import VectorStore
from indexer.stores.opening import open_store
from indexer.trusted_roots import read_trusted_roots
from search.cli import main

OUTSIDE = "outside the folders this run may read"


# -- helpers --------------------------------------------------------------------------------------


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (40, 32)) -> Path:
    """A small PNG that differs by ``seed``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    image.putpixel((seed % size[0], 0), (255, 255, 255))
    image.save(path, format="PNG")
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VectorStore]:
    """A fresh embedded store (Qdrant Edge) in a folder."""
    with open_store(StoreSettings(location=str(tmp_path / "store"))) as opened:
        yield opened


def run_index(
    source: Path | str,
    store: VectorStore,
    embedder: Embedder,
    *,
    access: AccessPolicy | None = None,
    progress: Callable[[int, int], None] | None = None,
    **index: object,
) -> IndexReport:
    settings = IndexSettings(**({"workers": 0} | index))
    policy = {"access": access} if access is not None else {}
    return index_source(
        source, embedder=embedder, store=store, settings=settings, progress=progress, **policy
    )


def at_start(action: Callable[[], None]) -> Callable[[int, int], None]:
    """A progress callback that acts once, after discovery and planning, before any read."""

    def progress(done: int, total: int) -> None:
        if done == 0:
            action()

    return progress


def stored_uris(store: VectorStore) -> list[str]:
    return sorted(str(p.payload["uri"]) for p in store.scroll())


def problems_of(report: IndexReport | dict) -> list[tuple[str, str]]:
    summary = report if isinstance(report, dict) else report.to_dict()
    return [(p["path"], p["reason"]) for p in summary["problems"]]


def counts(report: IndexReport | dict) -> tuple[int, int, int, int]:
    summary = report if isinstance(report, dict) else report.to_dict()
    return tuple(summary[k] for k in ("indexed", "unchanged", "removed", "skipped"))


def cli_index(*args: str) -> tuple[int, dict | None, str]:
    """``anyshot index ... --json`` through click's runner: (exit code, summary, stderr)."""
    result = CliRunner().invoke(main, ["index", *args, "--workers", "0", "--json"])
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if result.exit_code == 0 and lines else None
    return result.exit_code, summary, result.stderr


class CountingHandler(http.server.BaseHTTPRequestHandler):
    """Serves one PNG at any path and counts the requests."""

    requests: ClassVar[list[str]] = []
    body: ClassVar[bytes] = b""

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A web server on 127.0.0.1 serving a PNG: (base URL, the paths it was asked for)."""
    handler = type(
        "Handler",
        (CountingHandler,),
        {"requests": [], "body": write_png(tmp_path / "served.png", 9).read_bytes()},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    server.shutdown()
    server.server_close()
    thread.join()


# -- item 2: what a run may read ------------------------------------------------------------------


def test_links_out_of_the_roots_are_reported_not_followed(tmp_path, store, embedder) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    inside = write_png(root / "inside.png", 1)
    write_png(outside / "secret.png", 2)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "secret.png").symlink_to(outside / "secret.png")
    (root / "ok-link.png").symlink_to(inside)  # a link that stays inside is fine

    report = run_index(root, store, embedder, access=AccessPolicy(roots=(str(root),)))

    assert counts(report) == (2, 0, 0, 1)  # the folder link is not a file: not counted
    assert problems_of(report) == [
        (str(root / "escape"), f"symlink {OUTSIDE}"),
        (str(root / "secret.png"), f"symlink {OUTSIDE}"),
    ]
    assert stored_uris(store) == [str(inside), str(root / "ok-link.png")]
    assert read_trusted_roots(store) == (str(root),)


def test_a_list_file_is_held_to_the_roots(tmp_path, store, embedder, web) -> None:
    base, requests = web
    root, outside = tmp_path / "root", tmp_path / "outside"
    near = write_png(root / "near.png", 1)
    far = write_png(outside / "far.png", 2)
    os.mkfifo(root / "pipe.png")
    listing = root / "list.txt"
    listing.write_text(
        "\n".join(
            [
                "near.png",
                str(far),
                "../outside/far.png",
                f"{base}/remote.png",
                "file://otherhost/etc/passwd",
                "/dev/zero",
                "pipe.png",
                far.as_uri(),
            ]
        )
    )
    server_policy = AccessPolicy.for_server(ApiSettings(), roots=[root])  # URL fetching off

    report = run_index(listing, store, embedder, access=server_policy)

    assert counts(report) == (1, 0, 0, 7)
    assert problems_of(report) == [
        (str(far), OUTSIDE),
        (str(far), OUTSIDE),
        (f"{base}/remote.png", "URL fetching is off (api.fetch_image_urls)"),
        ("file://otherhost/etc/passwd", "not a local file URL (host 'otherhost')"),
        ("/dev/zero", "not a regular file (a character device)"),
        (str(root / "pipe.png"), "not a regular file (a FIFO)"),
        (str(far), OUTSIDE),
    ]
    assert stored_uris(store) == [str(near)]
    assert requests == []  # nothing was fetched, not even to learn that it fails

    outside_list = outside / "list.txt"
    outside_list.write_text(f"{near}\n")
    with pytest.raises(SourceError) as caught:
        run_index(outside_list, store, embedder, access=server_policy)
    assert str(caught.value) == f"{outside_list}: {OUTSIDE}"


def test_urls_a_server_fetches_must_be_public(tmp_path, store, embedder, web) -> None:
    base, requests = web
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{base}/a.png\n")
    policy = AccessPolicy.for_server(ApiSettings(fetch_image_urls=True), roots=[tmp_path])

    report = run_index(listing, store, embedder, access=policy)

    assert counts(report) == (0, 0, 0, 1)
    [(path, reason)] = problems_of(report)
    assert path == f"{base}/a.png"
    assert reason.startswith("refused: 127.0.0.1 is not a public address (127.0.0.1)")
    assert requests == []

    # The person at the keyboard may index from their own network.
    report = run_index(listing, store, embedder)
    assert counts(report) == (1, 0, 0, 0)
    assert requests == ["/a.png"]
    assert read_trusted_roots(store) == (base,)


def test_a_link_swapped_in_after_discovery_is_refused(tmp_path, store, embedder) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_png(root / "a.png", 1)
    victim = write_png(root / "b.png", 2)
    secret = write_png(outside / "secret.png", 3)

    def swap() -> None:
        victim.unlink()
        victim.symlink_to(secret)

    report = run_index(
        root, store, embedder, access=AccessPolicy(roots=(str(root),)), progress=at_start(swap)
    )

    assert counts(report) == (1, 0, 0, 1)
    assert problems_of(report) == [(str(victim), OUTSIDE)]
    assert stored_uris(store) == [str(root / "a.png")]


# -- item 7: never lose indexed data --------------------------------------------------------------


def test_a_linked_folder_whose_target_is_gone_keeps_its_images(tmp_path, store, embedder) -> None:
    root, drive = tmp_path / "root", tmp_path / "drive"
    write_png(root / "here.png", 1)
    for seed in range(3):
        write_png(drive / f"{seed}.png", 10 + seed)
    (root / "drive").symlink_to(drive, target_is_directory=True)
    assert counts(run_index(root, store, embedder)) == (4, 0, 0, 0)
    shutil.rmtree(drive)  # unmounted
    gone = write_png(root / "gone.png", 5)
    assert counts(run_index(root, store, embedder)) == (1, 4, 0, 0)
    gone.unlink()  # positively gone: removed

    report = run_index(root, store, embedder)

    assert counts(report) == (0, 4, 1, 0)
    assert problems_of(report) == [(str(root / "drive"), "broken symlink")]
    assert stored_uris(store) == [str(root / "drive" / f"{i}.png") for i in range(3)] + [
        str(root / "here.png")
    ]

    pruned = run_index(root, store, embedder, prune=True)
    assert counts(pruned) == (0, 1, 3, 0)
    assert stored_uris(store) == [str(root / "here.png")]


def test_an_empty_source_folder_is_not_emptied_in_the_store(tmp_path) -> None:
    images, location = tmp_path / "images", str(tmp_path / "store")
    for seed in range(3):
        write_png(images / f"{seed}.png", seed)
    code, summary, _ = cli_index(str(images), "--store", location, "--model", "anyshot-tiny")
    assert code == 0 and counts(summary) == (3, 0, 0, 0)
    for path in images.iterdir():
        path.unlink()
    (images / "notes.txt").write_text("not an image")

    code, summary, stderr = cli_index(str(images), "--store", location)

    assert code == 1 and summary is None
    assert stderr == (
        f"error: {images} holds no images now, but the store holds 3 images from it: not "
        "removing them all (an unmounted drive?); index with --prune "
        "(ANYSHOT_INDEX__PRUNE=true) to remove them\n"
    )
    with open_store(StoreSettings(location=location)) as opened:
        assert opened.count() == 3

    code, summary, _ = cli_index(str(images), "--store", location, "--prune")
    assert code == 0 and counts(summary) == (0, 0, 3, 0)

    code, _, stderr = cli_index(str(tmp_path / "missing"), "--store", location)
    assert (code, stderr) == (1, f"error: {tmp_path / 'missing'}: no such file or folder\n")


@pytest.mark.slow
def test_an_unreadable_subfolder_keeps_its_images(tmp_path, needs_permissions) -> None:
    """chmod 000 on a subfolder, seen by a process without root's override: kept, reported."""
    images, store = tmp_path / "images", tmp_path / "store"
    for seed in range(2):
        write_png(images / f"top-{seed}.png", seed)
    for seed in range(3):
        write_png(images / "locked" / f"{seed}.png", 10 + seed)
    first = run_anyshot("index", str(images), "--store", str(store), "--model", "anyshot-tiny")
    assert first.returncode == 0, first.stderr
    (images / "locked").chmod(0)
    try:
        kept = run_anyshot(
            "index", str(images), "--store", str(store), "--json", drop_privileges=True
        )
        pruned = run_anyshot(
            "index", str(images), "--store", str(store), "--prune", "--json", drop_privileges=True
        )
    finally:
        (images / "locked").chmod(0o755)

    assert kept.returncode == 0, kept.stderr
    assert_no_traceback(kept.stdout, kept.stderr)
    summary = json.loads(kept.stdout.strip().splitlines()[-1])
    assert counts(summary) == (0, 5, 0, 0)
    assert problems_of(summary) == [
        (str(images / "locked"), "cannot read folder: permission denied")
    ]
    assert pruned.returncode == 0, pruned.stderr
    assert counts(json.loads(pruned.stdout.strip().splitlines()[-1])) == (0, 2, 3, 0)


# -- items 11, 12, 17: names, special files, files that change -------------------------------------


def test_names_that_are_not_utf8_are_indexed_losslessly(tmp_path) -> None:
    images, location = tmp_path / "images", str(tmp_path / "store")
    write_png(images / "a.png", 1)
    write_png(images / "z.png", 2)
    raw_name = os.fsdecode(b"bad\xffname.png")
    raw_folder = os.fsdecode(b"caf\xe9")
    odd = write_png(images / raw_name, 3)
    deeper = write_png(images / raw_folder / "x.png", 4)

    code, summary, stderr = cli_index(str(images), "--store", location, "--model", "anyshot-tiny")

    assert code == 0, stderr
    assert counts(summary) == (4, 0, 0, 0) and summary["problems"] == []
    odd_uri = "file://" + str(images) + "/bad%FFname.png"
    deeper_uri = "file://" + str(images) + "/caf%E9/x.png"
    assert path_uri(str(odd)) == odd_uri and uri_path(odd_uri) == str(odd)
    with open_store(StoreSettings(location=location)) as opened:
        assert stored_uris(opened) == sorted(
            [str(images / "a.png"), str(images / "z.png"), odd_uri, deeper_uri]
        )
        [point] = opened.retrieve([point_id(odd_uri)])
        assert point.payload["size"] == odd.stat().st_size

    code, summary, _ = cli_index(str(images), "--store", location)
    assert counts(summary) == (0, 4, 0, 0)  # read back through their URIs: unchanged
    odd.unlink()
    deeper.unlink()
    code, summary, _ = cli_index(str(images), "--store", location)
    assert counts(summary) == (0, 2, 2, 0)  # and removed once gone


def test_post_index_takes_names_that_are_not_utf8(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from search.api import create_app

    images = tmp_path / "images"
    write_png(images / "a.png", 1)
    odd = write_png(images / os.fsdecode(b"bad\xffname.png"), 2)
    settings = build_settings(store=str(tmp_path / "store"), model="anyshot-tiny", workers=0)
    with TestClient(create_app(settings)) as client:
        reply = client.post("/index", json={"source": str(images)})
        assert reply.status_code == 202, reply.text
        job = reply.json()
        deadline = time.monotonic() + 120
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/index/{job['id']}").json()

    assert job["state"] == "done", job
    assert counts(job["report"]) == (2, 0, 0, 0) and job["report"]["problems"] == []
    with open_store(StoreSettings(location=str(tmp_path / "store"))) as opened:
        assert stored_uris(opened) == [str(images / "a.png"), path_uri(str(odd))]


@pytest.mark.slow
def test_a_source_not_utf8_is_not_handed_to_a_running_server(tiny_store, tmp_path) -> None:
    """While ``anyshot serve`` holds the store, ``anyshot index`` hands the run to it; a path
    that a request cannot carry is refused in one line."""
    _, store = tiny_store
    folder = write_png(tmp_path / os.fsdecode(b"caf\xe9") / "a.png", 1).parent
    with serving(store):
        result = subprocess.run(
            [ANYSHOT, "index", os.fsencode(folder), "--store", str(store)],
            capture_output=True,
            env=os.environ | BASE_ENV,
            timeout=300,
        )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr
    assert_no_traceback(stderr)
    assert stderr.splitlines()[-1].endswith(
        "a path that is not UTF-8 cannot be sent to the server; index it with the server "
        "stopped, or index a folder above it"
    )


def test_special_files_in_a_walk_are_reported_and_counted(tmp_path, store, embedder) -> None:
    images = tmp_path / "images"
    write_png(images / "a.png", 1)
    os.mkfifo(images / "pipe.jpg")
    os.mkfifo(images / "pipe.txt")  # not an image name: not looked at
    (images / "empty.png").write_bytes(b"")
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(images / "sock.png"))

        report = run_index(images, store, embedder)

    assert counts(report) == (1, 0, 0, 4)
    assert problems_of(report) == [
        (str(images / "pipe.jpg"), "not a regular file (a FIFO)"),
        (str(images / "sock.png"), "not a regular file (a socket)"),
        (str(images / "corrupt.jpg"), "not an image (cannot identify format)"),
        (str(images / "empty.png"), "empty file"),
    ]
    assert report.to_dict()["skipped_images"] == [
        {"uri": str(images / "corrupt.jpg"), "reason": "not an image (cannot identify format)"},
        {"uri": str(images / "empty.png"), "reason": "empty file"},
    ]


def test_a_fifo_swapped_in_during_a_run_does_not_hang_it(tmp_path, store, embedder) -> None:
    images = tmp_path / "images"
    write_png(images / "a.png", 1)
    victim = write_png(images / "b.png", 2)

    def swap() -> None:
        victim.unlink()
        os.mkfifo(victim)  # a reader that opened it would wait for a writer for ever

    report = run_index(images, store, embedder, progress=at_start(swap))

    assert counts(report) == (1, 0, 0, 1)
    assert problems_of(report) == [(str(victim), "not a regular file (a FIFO)")]


def test_a_file_that_vanishes_before_it_is_read(tmp_path, store, embedder) -> None:
    images = tmp_path / "images"
    write_png(images / "a.png", 1)
    victim = write_png(images / "b.png", 2)

    report = run_index(images, store, embedder, progress=at_start(victim.unlink))

    assert counts(report) == (1, 0, 0, 1)
    assert problems_of(report) == [(str(victim), "no such file")]
    assert counts(run_index(images, store, embedder)) == (0, 1, 0, 0)


def test_a_file_that_grows_while_read(tmp_path, store, embedder) -> None:
    """A PNG appended to throughout the run: decoded from what was read (trailing bytes are
    ignored), and re-read by the next run since its size changed."""
    images = tmp_path / "images"
    write_png(images / "a.png", 1)
    growing = write_png(images / "growing.png", 2)
    stop = threading.Event()

    def append() -> None:
        with growing.open("ab") as file:
            while not stop.is_set():
                file.write(b"\0" * 4096)
                file.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=append)
    report = run_index(images, store, embedder, progress=at_start(writer.start))
    stop.set()
    writer.join()

    assert counts(report) == (2, 0, 0, 0)
    again = run_index(images, store, embedder)
    assert again.indexed + again.unchanged == 2 and again.skipped == 0


def test_odd_names_newlines_percent_signs_and_a_long_name(tmp_path) -> None:
    images, location = tmp_path / "images", str(tmp_path / "store")
    names = ["new\nline.png", "100% real%20.png", "file:%2F%2Fx.png", "x" * 251 + ".png"]
    for seed, name in enumerate(names):
        write_png(images / name, seed)

    code, summary, stderr = cli_index(str(images), "--store", location, "--model", "anyshot-tiny")

    assert code == 0, stderr
    assert counts(summary) == (4, 0, 0, 0)
    with open_store(StoreSettings(location=location)) as opened:
        assert stored_uris(opened) == sorted(str(images / name) for name in names)


def test_a_tree_deeper_than_path_max_is_reported_not_fatal(tmp_path, store, embedder) -> None:
    """Folders of 200-character names, 24 deep, one image in each: paths pass PATH_MAX (4096
    bytes with the final NUL) part way down. What can be named is indexed; the first entry that
    cannot is reported; the run goes on."""
    images = tmp_path / "images"
    image = write_png(images / "top.png", 1).read_bytes()
    names = [f"{level:02d}" + "d" * 198 for level in range(24)]
    folder_fd = os.open(images, os.O_RDONLY)
    try:
        for name in names:  # relative to the open folder: no path grows past PATH_MAX here
            os.mkdir(name, dir_fd=folder_fd)
            next_fd = os.open(name, os.O_RDONLY, dir_fd=folder_fd)
            os.close(folder_fd)
            folder_fd = next_fd
            file_fd = os.open("in.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder_fd)
            with os.fdopen(file_fd, "wb") as file:
                file.write(image)
    finally:
        os.close(folder_fd)
    longest = 4095
    folders = [str(images.joinpath(*names[: level + 1])) for level in range(24)]
    walked = [folder for folder in folders if len(folder) <= longest]
    first_too_long = folders[len(walked)]
    indexed = [f"{folder}/in.png" for folder in walked if len(folder) + 7 <= longest]
    expected = [(f"{walked[-1]}/in.png", "cannot stat: file name too long")] * (
        len(indexed) < len(walked)
    ) + [(first_too_long, "cannot stat: file name too long")]

    report = run_index(images, store, embedder)

    assert report.indexed == 1 + len(indexed)
    assert sorted(problems_of(report)) == sorted(expected)
    assert report.skipped == len(expected) - 1  # the folder is not counted as a file


def test_a_symlink_loop_zero_byte_and_blank_lists(tmp_path, store, embedder) -> None:
    images = tmp_path / "images"
    image = write_png(images / "a.png", 1)
    (images / "loop").symlink_to(images, target_is_directory=True)
    (images / "self.png").symlink_to("self.png")
    report = run_index(images, store, embedder)
    assert counts(report) == (1, 0, 0, 1)
    assert problems_of(report) == [
        (str(images / "loop"), "symlink loop"),
        (str(images / "self.png"), "symlink loop"),
    ]

    empty_list = tmp_path / "empty.txt"
    empty_list.write_bytes(b"")
    assert counts(run_index(empty_list, store, embedder)) == (0, 0, 0, 0)

    blank_list = tmp_path / "blank.txt"
    blank_list.write_text("\n" * 10_000 + f"{image}\n" + "  \n" * 10_000)
    report = run_index(blank_list, store, embedder)
    assert counts(report) == (0, 1, 0, 0) and problems_of(report) == []


def test_the_json_summary_lists_every_file_not_indexed(tmp_path) -> None:
    images, location = tmp_path / "images", str(tmp_path / "store")
    write_png(images / "a.png", 1)
    (images / "broken.jpg").write_text("not an image")
    os.mkfifo(images / "pipe.png")
    (images / "gone.png").symlink_to(tmp_path / "nowhere.png")

    code, summary, _ = cli_index(str(images), "--store", location, "--model", "anyshot-tiny")

    assert code == 0
    assert {k: summary[k] for k in ("indexed", "unchanged", "removed", "skipped")} == {
        "indexed": 1,
        "unchanged": 0,
        "removed": 0,
        "skipped": 3,
    }
    assert isinstance(summary["seconds"], float)
    assert summary["problems"] == [
        {"path": str(images / "gone.png"), "reason": "broken symlink"},
        {"path": str(images / "pipe.png"), "reason": "not a regular file (a FIFO)"},
        {"path": str(images / "broken.jpg"), "reason": "not an image (cannot identify format)"},
    ]
    assert summary["skipped_images"] == [
        {"uri": str(images / "broken.jpg"), "reason": "not an image (cannot identify format)"}
    ]


# -- item 15: no orphans --------------------------------------------------------------------------


def processes_with(marker: str) -> dict[int, str]:
    """Processes whose environment holds ``marker``: {pid: command line}."""
    found: dict[int, str] = {}
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                if needle not in file.read():
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat", "rb") as file:
                state = file.read().rsplit(b")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != b"Z":  # a zombie has exited; only its parent has not reaped it yet
            found[int(entry)] = command
    return found


def wait_for_workers(marker: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        workers = [c for c in processes_with(marker).values() if "spawn_main" in c]
        if len(workers) >= 2:
            return
        assert process.poll() is None, "the run ended before its workers were seen"
        assert time.monotonic() < deadline, "no decoding workers appeared"
        time.sleep(0.02)


def assert_all_exit(marker: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # do not leave them behind for the next test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == {}, f"orphans left running: {left}"


@pytest.fixture(scope="module")
def many_images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("many") / "images"
    for seed in range(400):
        write_png(folder / f"{seed:04d}.png", seed, size=(96, 96))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "kill-TERM"])
def test_killing_an_index_run_leaves_no_orphans(many_images, tmp_path, signum) -> None:
    marker = f"ANYSHOT_TEST_MARKER_{uuid.uuid4().hex}"
    env = os.environ | BASE_ENV | {marker: "1", "ANYSHOT_INDEX__WORKERS": "2"}
    command = [ANYSHOT, "index", str(many_images), "--store", str(tmp_path / "store")]
    command += ["--model", "anyshot-tiny", "--batch-size", "4"]
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_workers(marker, run)
        run.send_signal(signum)
        run.wait(timeout=30)
        assert_all_exit(marker)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        run.stderr.close()


@pytest.mark.slow
def test_killing_a_server_while_it_indexes_leaves_no_orphans(many_images, tmp_path) -> None:
    import httpx

    marker = f"ANYSHOT_TEST_MARKER_{uuid.uuid4().hex}"
    env = {
        marker: "1",
        "ANYSHOT_INDEX__WORKERS": "2",
        "ANYSHOT_INDEX__BATCH_SIZE": "4",
        "ANYSHOT_MODEL__NAME": "anyshot-tiny",
    }
    with serving(tmp_path / "store", env=env) as server:
        reply = httpx.post(f"{server.url}/index", json={"source": str(many_images)}, timeout=30)
        assert reply.status_code == 202, reply.text
        wait_for_workers(marker, server.process)
        server.process.kill()
        server.process.wait(timeout=30)
        assert_all_exit(marker)


# -- item 17: Prefect's temporary server prints no telemetry traceback ----------------------------


@pytest.mark.slow
def test_the_prefect_runner_prints_no_traceback(tmp_path) -> None:
    images = tmp_path / "images"
    for seed in range(3):
        write_png(images / f"{seed}.png", seed)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_API_URL")
        and not k.startswith("PREFECT_")
    }
    env |= {
        "HF_HUB_OFFLINE": "1",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    command = [ANYSHOT, "index", str(images), "--store", str(tmp_path / "store")]
    command += ["--model", "anyshot-tiny", "--runner", "prefect", "--workers", "0", "--json"]

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)

    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    assert "sqlalchemy" not in result.stderr.lower()
    assert counts(json.loads(result.stdout.strip().splitlines()[-1])) == (3, 0, 0, 0)

    # A run that fails inside the flow: one line, as with the inline runner.
    command[2] = str(tmp_path / "missing")
    failed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)

    assert failed.returncode == 1
    assert_no_traceback(failed.stdout, failed.stderr)
    assert f"error: {tmp_path / 'missing'}: no such file or folder\n" in failed.stderr

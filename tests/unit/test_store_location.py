"""Store locations are parsed in one place; ``server.json`` is read and written in one place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.errors import StoreError
from indexer.stores.holder import (
    SERVER_FILE,
    ServerAddress,
    advertise_server,
    find_server,
    live_server,
    withdraw_server,
)
from indexer.stores.location import StoreLocation


@pytest.mark.parametrize(
    ("given", "kind", "text"),
    [
        (":memory:", "memory", ":memory:"),
        ("  :memory:\n", "memory", ":memory:"),
        ("http://qdrant:6333", "server", "http://qdrant:6333"),
        ("HTTPS://qdrant.example:443/", "server", "HTTPS://qdrant.example:443/"),
        ("/data/index", "folder", "/data/index"),
        ("relative/index", "folder", "relative/index"),
        ("C:/odd:name", "folder", "C:/odd:name"),
        ("memory", "folder", "memory"),
    ],
)
def test_locations_are_one_of_three_kinds(given: str, kind: str, text: str) -> None:
    location = StoreLocation.parse(given)
    assert (location.kind, location.text, str(location)) == (kind, text, text)
    assert [location.is_folder, location.is_memory, location.is_server] == [
        kind == "folder",
        kind == "memory",
        kind == "server",
    ]


def test_a_folder_location_names_an_absolute_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert StoreLocation.parse("index").folder == tmp_path / "index"
    assert StoreLocation.parse("~/index").folder == tmp_path / "home" / "index"
    assert StoreLocation.parse(":memory:").folder is None
    assert StoreLocation.parse("http://q:6333").folder is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "ftp://host/index",
            "unsupported store location 'ftp://host/index': use a folder, "
            ":memory: or an http(s):// URL",
        ),
        ("   ", "the store location is empty: give a folder, :memory: or a URL"),
    ],
)
def test_other_locations_are_refused(given: str, message: str) -> None:
    with pytest.raises(StoreError) as refused:
        StoreLocation.parse(given)
    assert str(refused.value) == message


def test_server_file_names_the_server_while_its_process_lives(tmp_path: Path) -> None:
    assert find_server(tmp_path) is None
    path = advertise_server(tmp_path, "http://127.0.0.1:8000/")
    assert path == tmp_path / SERVER_FILE
    here = ServerAddress(url="http://127.0.0.1:8000", pid=os.getpid())
    assert find_server(tmp_path) == live_server(tmp_path) == here
    withdraw_server(tmp_path)
    assert not path.exists() and find_server(tmp_path) is None

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(gone.stdout)
    path.write_text(f'{{"url": "http://127.0.0.1:9", "pid": {dead}}}')
    assert find_server(tmp_path) == ServerAddress("http://127.0.0.1:9", dead)
    assert live_server(tmp_path) is None  # a file left by a server that was killed
    withdraw_server(tmp_path)  # not ours: left alone
    assert path.exists()
    path.write_text("{not json")
    assert find_server(tmp_path) is None

"""Discovery on real trees in tmp_path: folders, links, hidden names, list files, sources."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import stat
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer.access import AccessPolicy
from indexer.discover import DiscoveryProblem, discover, discover_images, read_image_list
from indexer.errors import SourceError
from indexer.formats import IMAGE_EXTENSIONS
from indexer.schema import ImageRecord, path_uri, uri_path

NOBODY = 65534


def touch(path: Path, data: bytes = b"img") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def uris(records: Iterator[ImageRecord] | list[ImageRecord]) -> list[str]:
    return [record.uri for record in records]


class Problems(list[DiscoveryProblem]):
    """An ``on_problem`` callback that keeps what it is given."""

    def __call__(self, problem: DiscoveryProblem) -> None:
        self.append(problem)


def run_unprivileged(func: Callable[[], Any]) -> Any:
    """Run ``func`` where permission bits apply and return its result.

    Root ignores permission bits, so as root ``func`` runs in a forked child that has dropped to
    the ``nobody`` user; the result comes back pickled through a pipe.
    """
    if os.geteuid() != 0:
        return func()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read_end)
        try:
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            except OSError as exc:
                payload = pickle.dumps(("skip", f"cannot drop root privileges: {exc}"))
            else:
                payload = pickle.dumps(("ok", func()))
        except BaseException as exc:
            payload = pickle.dumps(("error", repr(exc)))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(payload)
    if status == "skip":
        pytest.skip(value)
    if status == "error":
        pytest.fail(f"unprivileged call failed: {value}")
    return value


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the ``nobody`` user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="anyshot-discover-"))
    path.chmod(0o755)
    yield path
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o755)
    shutil.rmtree(path)


def test_walks_nested_folders_depth_first_in_name_order(tmp_path: Path) -> None:
    for name in [
        "b.jpg",
        "a.png",
        "z.gif",
        "notes.txt",
        "raw.xmp",  # a RAW file's sidecar: not an image
        "noext",
        "a-dir/e.webp",
        "sub/c.JPG",
        "sub/x.jpeg.bak",
        "sub/deeper/d.PnG",
        "sub/deeper/f.Tiff",
        "sub/deeper/g.tif",
        "sub/deeper/h.BMP",
        "sub/deeper/i.jpeg",
        "sub/deeper/jpg",
    ]:
        touch(tmp_path / name)

    found = uris(discover_images(tmp_path))

    expected = [
        "a-dir/e.webp",  # "-" sorts before "."
        "a.png",
        "b.jpg",
        "sub/c.JPG",
        "sub/deeper/d.PnG",
        "sub/deeper/f.Tiff",
        "sub/deeper/g.tif",
        "sub/deeper/h.BMP",
        "sub/deeper/i.jpeg",
        "z.gif",
    ]
    assert found == [str(tmp_path / name) for name in expected]


def test_image_extensions_are_what_this_installation_decodes() -> None:
    from PIL import features

    always = [".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"]
    avif = [".avif"] if features.check_module("avif") else []
    heif = [".heic", ".heif", ".hif"]  # pillow-heif, a dependency
    raw = [".arw", ".cr2", ".cr3", ".dng", ".nef", ".orf", ".raf", ".rw2"]  # rawpy (LibRaw)
    assert sorted(IMAGE_EXTENSIONS) == sorted(always + avif + heif + raw)
    assert ".txt" not in IMAGE_EXTENSIONS and ".xmp" not in IMAGE_EXTENSIONS


def test_discovery_and_queries_share_one_list_of_images(tmp_path: Path) -> None:
    from PIL import features

    from search.query import parse_query

    names = ["a.JPG", "b.png", "c.heic", "d.txt", "e.avif", "f.DNG", "g.xmp"]
    if not features.check_module("avif"):
        names.remove("e.avif")
    for name in names:
        touch(tmp_path / name)  # discovery goes by name; decoding says what the bytes are
    found = [Path(record.uri).name for record in discover_images(tmp_path)]
    as_images = [n for n in names if parse_query(f"+{n}")[0].kind == "image"]
    assert found == as_images == [n for n in names if not n.endswith((".txt", ".xmp"))]


def test_order_is_deterministic_and_sorted_by_path_components(tmp_path: Path) -> None:
    names = ["m/1.jpg", "m.jpg", "m-1/2.jpg", "B.jpg", "a.jpg", "m/0/3.jpg", "m/z.jpg", "_.jpg"]
    for name in names:
        touch(tmp_path / name)

    first = uris(discover_images(tmp_path))

    assert first == uris(discover_images(tmp_path))
    assert first == sorted(first, key=lambda uri: Path(uri).parts)
    assert len(first) == len(names)


def test_records_carry_absolute_uri_size_and_mtime(tmp_path: Path, monkeypatch) -> None:
    image = touch(tmp_path / "photos" / "a.jpg", b"x" * 123)
    os.utime(image, (1_600_000_000.5, 1_600_000_000.5))
    empty = touch(tmp_path / "photos" / "empty.png", b"")
    monkeypatch.chdir(tmp_path)

    records = list(discover_images("photos"))  # a relative root gives absolute URIs

    assert records == [
        ImageRecord(str(image), 123, 1_600_000_000.5),
        ImageRecord(str(empty), 0, empty.stat().st_mtime),  # zero bytes: decode rejects it
    ]


def test_hidden_files_and_folders_are_skipped_unless_asked(tmp_path: Path) -> None:
    for name in ["visible.jpg", ".hidden.jpg", ".cache/a.jpg", "sub/.b.png", "sub/c.png"]:
        touch(tmp_path / name)

    assert uris(discover_images(tmp_path)) == [
        str(tmp_path / "sub/c.png"),
        str(tmp_path / "visible.jpg"),
    ]
    assert uris(discover_images(tmp_path, include_hidden=True)) == [
        str(tmp_path / ".cache/a.jpg"),
        str(tmp_path / ".hidden.jpg"),
        str(tmp_path / "sub/.b.png"),
        str(tmp_path / "sub/c.png"),
        str(tmp_path / "visible.jpg"),
    ]


def test_a_hidden_root_is_still_walked(tmp_path: Path) -> None:
    image = touch(tmp_path / ".photos" / "a.jpg")

    assert uris(discover_images(tmp_path / ".photos")) == [str(image)]


def test_symlinks_are_followed_and_keep_the_path_the_user_sees(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "far.jpg")
    target = touch(outside / "target.png")
    root = tmp_path / "root"
    touch(root / "near.jpg")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "shortcut.png").symlink_to(target)

    assert uris(discover_images(root)) == [
        str(root / "linked/far.jpg"),
        str(root / "linked/target.png"),
        str(root / "near.jpg"),
        str(root / "shortcut.png"),
    ]
    assert uris(discover_images(root, follow_symlinks=False)) == [str(root / "near.jpg")]


def test_symlink_loops_are_reported_not_followed(tmp_path: Path, caplog) -> None:
    touch(tmp_path / "a" / "img.jpg")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "self.jpg").symlink_to("self.jpg")  # the kernel's ELOOP
    problems = Problems()

    with caplog.at_level(logging.WARNING, logger="indexer.discover"):
        found = uris(discover_images(tmp_path, on_problem=problems))

    assert found == [str(tmp_path / "a/img.jpg")]
    assert problems == [
        DiscoveryProblem(str(tmp_path / "a/loop"), "symlink loop", folder=True),
        DiscoveryProblem(str(tmp_path / "a/up"), "symlink loop", folder=True),
        DiscoveryProblem(str(tmp_path / "self.jpg"), "symlink loop"),  # a file by its name
    ]
    assert [record.levelname for record in caplog.records] == ["WARNING"] * 3
    assert caplog.records[0].getMessage() == f"skipped {tmp_path / 'a/loop'}: symlink loop"


def test_a_folder_reached_twice_is_walked_once(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "img.jpg")
    (tmp_path / "b").symlink_to(tmp_path / "a", target_is_directory=True)
    problems = Problems()

    assert uris(discover_images(tmp_path, on_problem=problems)) == [str(tmp_path / "a/img.jpg")]
    assert problems == []  # an alias is not a problem


def test_broken_symlinks_are_reported(tmp_path: Path) -> None:
    touch(tmp_path / "ok.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "gone-folder").symlink_to(tmp_path / "missing", target_is_directory=True)
    problems = Problems()

    assert uris(discover_images(tmp_path, on_problem=problems)) == [str(tmp_path / "ok.jpg")]
    assert problems == [
        DiscoveryProblem(str(tmp_path / "gone-folder"), "broken symlink", folder=True),
        DiscoveryProblem(str(tmp_path / "gone.jpg"), "broken symlink"),
    ]
    assert uris(discover_images(tmp_path, follow_symlinks=False, on_problem=problems)) == [
        str(tmp_path / "ok.jpg")
    ]
    assert len(problems) == 2  # links are not looked at when not followed


def test_unreadable_folder_is_reported_and_the_walk_goes_on(shared_dir: Path) -> None:
    touch(shared_dir / "a" / "1.jpg")
    touch(shared_dir / "locked" / "2.jpg")
    touch(shared_dir / "z.jpg")
    (shared_dir / "locked").chmod(0)

    def walk() -> tuple[list[str], list[DiscoveryProblem]]:
        problems = Problems()
        return uris(discover_images(shared_dir, on_problem=problems)), list(problems)

    found, problems = run_unprivileged(walk)

    assert found == [str(shared_dir / "a/1.jpg"), str(shared_dir / "z.jpg")]
    assert problems == [
        DiscoveryProblem(
            str(shared_dir / "locked"), "cannot read folder: permission denied", folder=True
        )
    ]


def test_unreadable_root_raises_source_error_at_once(shared_dir: Path) -> None:
    root = shared_dir / "locked"
    touch(root / "1.jpg")
    root.chmod(0)

    def call() -> str:
        try:
            discover(root)  # not iterated: the error comes from the call itself
        except SourceError as exc:
            return str(exc)
        return "no error"

    assert run_unprivileged(call) == f"{root}: cannot read folder: permission denied"


def test_text_list(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    near = touch(lists / "a.jpg", b"12345")
    os.utime(near, (1_500_000_000.0, 1_500_000_000.0))
    nested = touch(lists / "sub" / "b.png", b"123")
    far = touch(tmp_path / "elsewhere" / "c.webp", b"1")
    touch(lists / "folder" / "x.jpg")
    listing = lists / "images.txt"
    listing.write_text(
        "\n".join(
            [
                "# photos to index",
                "",
                "a.jpg",
                "   sub/b.png   ",
                str(far),
                "https://example.com/d.jpg",
                "  # an indented comment",
                "HTTP://example.com/e",
                far.as_uri(),
                "missing.jpg",
                "s3://bucket/f.jpg",
                "folder",
                "",
            ]
        ),
        encoding="utf-8",
    )
    problems = Problems()

    records = list(read_image_list(listing, on_problem=problems))

    assert records == [
        ImageRecord(str(near), 5, 1_500_000_000.0),
        ImageRecord(str(nested), 3, nested.stat().st_mtime),
        ImageRecord(str(far), 1, far.stat().st_mtime),
        ImageRecord("https://example.com/d.jpg", -1, 0.0),
        ImageRecord("HTTP://example.com/e", -1, 0.0),
        ImageRecord(str(far), 1, far.stat().st_mtime),
    ]
    assert problems == [  # reported once, here, and not yielded to fail again when read
        DiscoveryProblem(str(lists / "missing.jpg"), "no such file"),
        DiscoveryProblem("s3://bucket/f.jpg", "unsupported URL scheme 's3'"),
        DiscoveryProblem(str(lists / "folder"), "a folder, not an image", folder=True),
    ]


def test_text_list_with_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    image = touch(tmp_path / "a.jpg")
    listing = tmp_path / "list.lst"
    listing.write_bytes(b"\xef\xbb\xbfa.jpg\r\nhttps://example.com/b.png\r\n")

    assert uris(discover(listing)) == [str(image), "https://example.com/b.png"]


def test_parquet_list(tmp_path: Path) -> None:
    image = touch(tmp_path / "images" / "a.jpg", b"1234")
    other = touch(tmp_path / "b.png", b"12")
    listing = tmp_path / "lists" / "images.parquet"
    listing.parent.mkdir()
    table = pa.table(
        {
            "label": ["a", "b", "c", "d", "e"],
            "url": ["ignored"] * 5,  # "path" comes first in the order of preference
            "path": [str(image), "../b.png", "https://example.com/c.jpg", None, "gone.jpg"],
        }
    )
    pq.write_table(table, listing)
    problems = Problems()

    records = list(discover(listing, on_problem=problems))

    assert records == [
        ImageRecord(str(image), 4, image.stat().st_mtime),
        ImageRecord(str(other), 2, other.stat().st_mtime),
        ImageRecord("https://example.com/c.jpg", -1, 0.0),
    ]
    assert problems == [DiscoveryProblem(str(listing.parent / "gone.jpg"), "no such file")]


@pytest.mark.parametrize("column", ["uri", "path", "url", "filepath"])
def test_parquet_list_columns(tmp_path: Path, column: str) -> None:
    listing = tmp_path / "list.parquet"
    table = pa.table({column: pa.array(["https://example.com/a.jpg"]).dictionary_encode()})
    pq.write_table(table, listing)

    assert uris(read_image_list(listing)) == ["https://example.com/a.jpg"]


def test_parquet_list_without_a_usable_column(tmp_path: Path) -> None:
    listing = tmp_path / "list.parquet"
    pq.write_table(pa.table({"file": ["a.jpg"]}), listing)
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"uri": [1, 2]}), numbers)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")

    with pytest.raises(SourceError, match="no column named uri, path, url, filepath"):
        read_image_list(listing)
    with pytest.raises(SourceError, match="column 'uri' does not hold text"):
        read_image_list(numbers)
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        read_image_list(broken)


def test_single_image_source(tmp_path: Path) -> None:
    image = touch(tmp_path / "IMG_0001.JPG", b"abc")

    assert list(discover(image)) == [ImageRecord(str(image), 3, image.stat().st_mtime)]


def test_missing_source_raises_at_once(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    with pytest.raises(SourceError) as caught:
        discover(missing)  # not iterated
    assert str(caught.value) == f"{missing}: no such file or folder"

    with pytest.raises(SourceError, match="no such file or folder"):
        discover_images(missing)
    with pytest.raises(SourceError, match="no such file or folder"):
        read_image_list(tmp_path / "nope.txt")


def test_a_binary_file_is_not_taken_as_a_list(tmp_path: Path) -> None:
    photo = touch(tmp_path / "clip.dat", b"\x00\x00\x00\x14ftypqt  \x00\x00")
    latin = touch(tmp_path / "latin.txt", "caf\xe9.jpg\n".encode("latin-1"))

    with pytest.raises(SourceError, match="not a text list of images"):
        discover(photo)
    with pytest.raises(SourceError, match="not a text list of images"):
        discover(latin)


def test_discover_images_needs_a_folder(tmp_path: Path) -> None:
    image = touch(tmp_path / "a.jpg")

    with pytest.raises(SourceError, match="not a folder"):
        discover_images(image)


def test_discover_walks_a_folder_source(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    touch(tmp_path / ".b.jpg")

    assert uris(discover(tmp_path)) == [str(tmp_path / "a.jpg")]
    assert len(list(discover(tmp_path, include_hidden=True))) == 2


def test_a_deep_tree_does_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 100
    folders = [tmp_path / "deep"]
    for _ in range(depth):
        folders.append(folders[-1] / "d")
    for folder in folders:
        folder.mkdir()
    deep = touch(folders[-1] / "deep.jpg")
    top = touch(tmp_path / "top.jpg")
    try:
        assert uris(discover_images(tmp_path)) == [str(deep), str(top)]
    finally:
        # Bottom up: shutil.rmtree, and so pytest's own clean-up, recurses and would fail.
        deep.unlink()
        for folder in reversed(folders):
            folder.rmdir()


def test_special_files_with_image_names_are_reported_not_yielded(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe")  # no image name: not looked at, like any other file
    problems = Problems()

    assert uris(discover_images(tmp_path, on_problem=problems)) == [str(tmp_path / "a.jpg")]
    assert problems == [DiscoveryProblem(str(tmp_path / "pipe.jpg"), "not a regular file (a FIFO)")]
    assert stat.S_ISFIFO((tmp_path / "pipe.jpg").stat().st_mode)


def test_a_fifo_as_a_list_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "list.txt")  # opening it for reading would wait for a writer

    with pytest.raises(SourceError, match="not a folder, an image or a list of images"):
        discover(tmp_path / "list.txt")
    with pytest.raises(SourceError) as caught:
        read_image_list(tmp_path / "list.txt")
    assert str(caught.value) == f"{tmp_path / 'list.txt'}: not a regular file (a FIFO)"


def test_list_entries_that_are_not_local_regular_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    listing = tmp_path / "list.txt"
    listing.write_text(
        "file://otherhost/etc/passwd\nfile://localhost/dev/zero\n/dev/zero\npipe.png\n"
    )
    problems = Problems()

    assert list(read_image_list(listing, on_problem=problems)) == []
    assert problems == [
        DiscoveryProblem("file://otherhost/etc/passwd", "not a local file URL (host 'otherhost')"),
        DiscoveryProblem("/dev/zero", "not a regular file (a character device)"),
        DiscoveryProblem("/dev/zero", "not a regular file (a character device)"),
        DiscoveryProblem(str(tmp_path / "pipe.png"), "not a regular file (a FIFO)"),
    ]


def test_names_that_are_not_utf8_get_lossless_uris(tmp_path: Path) -> None:
    raw = touch(tmp_path / os.fsdecode(b"bad\xffname.png"))
    plain = touch(tmp_path / "caf\u00e9.png")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{plain}\nfile://{urllib.parse.quote(os.fsencode(str(raw)))}\n")

    found = uris(discover_images(tmp_path))

    assert found == [path_uri(str(raw)), str(plain)]
    assert found[0] == "file://" + urllib.parse.quote(str(tmp_path)) + "/bad%FFname.png"
    assert uri_path(found[0]) == str(raw)
    assert uris(read_image_list(listing)) == [str(plain), path_uri(str(raw))]


class TestRoots:
    """Under an access policy with roots: nothing outside them is yielded."""

    @pytest.fixture
    def tree(self, tmp_path: Path) -> tuple[Path, Path, AccessPolicy]:
        root, outside = tmp_path / "root", tmp_path / "outside"
        touch(root / "in.jpg")
        touch(outside / "out.jpg")
        touch(outside / "sub" / "deep.jpg")
        return root, outside, AccessPolicy(roots=(str(root),))

    def test_links_outside_are_reported(self, tree) -> None:
        root, outside, policy = tree
        (root / "folder-link").symlink_to(outside, target_is_directory=True)
        (root / "file-link.jpg").symlink_to(outside / "out.jpg")
        (root / "inner-link.jpg").symlink_to(root / "in.jpg")
        problems = Problems()

        found = uris(discover(root, on_problem=problems, access=policy))

        assert found == [str(root / "in.jpg"), str(root / "inner-link.jpg")]
        outside_reason = "symlink outside the folders this run may read"
        assert problems == [
            DiscoveryProblem(str(root / "file-link.jpg"), outside_reason),
            DiscoveryProblem(str(root / "folder-link"), outside_reason, folder=True),
        ]
        assert len(uris(discover(root))) == 5  # without a policy, links are followed

    def test_a_source_outside_is_refused(self, tree) -> None:
        root, outside, policy = tree
        (root / "escape").symlink_to(outside, target_is_directory=True)
        for source in (outside, outside / "out.jpg", root / "escape"):
            with pytest.raises(SourceError) as caught:
                discover(source, access=policy)
            assert str(caught.value) == f"{source}: outside the folders this run may read"

    def test_list_entries_outside_and_urls_are_reported(self, tree) -> None:
        root, outside, policy = tree
        listing = root / "list.txt"
        listing.write_text(f"in.jpg\n../outside/out.jpg\n{outside}/sub/deep.jpg\nhttp://x/a.jpg\n")
        problems = Problems()

        no_urls = AccessPolicy(roots=policy.roots, fetch_urls=False)
        records = list(read_image_list(listing, on_problem=problems, access=no_urls))

        assert uris(records) == [str(root / "in.jpg")]
        assert problems == [
            DiscoveryProblem(str(outside / "out.jpg"), "outside the folders this run may read"),
            DiscoveryProblem(
                str(outside / "sub" / "deep.jpg"), "outside the folders this run may read"
            ),
            DiscoveryProblem("http://x/a.jpg", "URL fetching is off (api.fetch_image_urls)"),
        ]
        assert uris(read_image_list(listing, access=policy))[-1] == "http://x/a.jpg"

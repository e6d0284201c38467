"""Stores under hostile conditions: killed creations, races, full disks, read-only folders and
inputs that make the engine panic. Each test asserts the exact outcome: opened and repaired,
refused with one line, or kept as it was."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from adversary import assert_no_traceback, run_anyshot, unprivileged
from click.testing import CliRunner

from indexer.config import ScaleSettings, StoreSettings
from indexer.disk_space import free_bytes
from indexer.errors import (
    DiskSpaceError,
    ModelMismatchError,
    QueryError,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
)
from indexer.parquet_store import ParquetShardWriter
from indexer.schema import ModelIdentity, point_id
from indexer.stores.edge import METADATA_FILE, NEW_SHARD_PREFIX, SHARD_DIR, EdgeStore
from indexer.stores.edge_layout import edge_config
from indexer.stores.folder_lock import LOCK_FILE
from indexer.stores.interface import PayloadFilter
from indexer.stores.opening import open_store
from indexer.stores.shard_copy import COPY_PREFIX, make_copy_folder
from search.cli import main

DIM = 8
MODEL = ModelIdentity(name="store-model", pretrained=None, dim=DIM)
OTHER = ModelIdentity(name="another-model", pretrained=None, dim=DIM)
REPO = Path(__file__).resolve().parents[2]


def unit_rows(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def points(count: int, start: int = 0) -> tuple[list[int], np.ndarray, list[dict]]:
    uris = [f"/photos/{i:05d}.jpg" for i in range(start, start + count)]
    payloads = [{"uri": u, "size": 100 + i, "mtime": 1.7e9 + i} for i, u in enumerate(uris)]
    return [point_id(u) for u in uris], unit_rows(count, seed=start), payloads


def edge(location: Path) -> EdgeStore:
    return EdgeStore(location, reserve_free_mb=0)


def filled_store(location: Path, count: int = 10) -> None:
    with edge(location) as store:
        store.bind_model(MODEL)
        store.upsert(*points(count))


# -- item 8: creating a store survives a kill at any moment, and a race ---------------------------


def build_bare_shard(path: Path, count: int = 0) -> None:
    """A Qdrant Edge shard with ``count`` points, as a killed creation could leave it."""
    shard = qe.EdgeShard.create(str(path), edge_config(MODEL, ScaleSettings()))
    if count:
        ids, vectors, payloads = points(count)
        shard.update(
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(id=i, vector={"image": v}, payload=p)
                    for i, v, p in zip(ids, vectors.tolist(), payloads, strict=True)
                ]
            )
        )
    shard.flush()
    shard.close()


def test_a_leftover_temporary_shard_is_removed_and_the_store_created(tmp_path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    leftover = root / f"{NEW_SHARD_PREFIX}4242-dead"
    build_bare_shard(leftover)  # killed while the shard was being built
    with edge(root) as store:
        assert store.model() is None
        store.bind_model(MODEL)
        store.upsert(*points(3))
    assert not leftover.exists()
    with edge(root) as store:
        assert (store.model(), store.count()) == (MODEL, 3)


def test_an_empty_shard_without_metadata_is_replaced(tmp_path) -> None:
    """A kill after the shard was in place but before anyshot.json (and older versions'
    creations killed anywhere after the shard): no points, no metadata."""
    root = tmp_path / "store"
    build_bare_shard(root / SHARD_DIR)
    with edge(root) as store:
        store.bind_model(MODEL)
        store.upsert(*points(4))
    with edge(root) as store:
        assert (store.model(), store.count()) == (MODEL, 4)


def test_metadata_without_a_shard_opens_as_an_empty_store(tmp_path) -> None:
    root = tmp_path / "store"
    filled_store(root)
    shutil.rmtree(root / SHARD_DIR)
    with edge(root) as store:
        assert (store.model(), store.count()) == (MODEL, 0)
        store.upsert(*points(2))
    with edge(root) as store:
        assert store.count() == 2


def test_a_leftover_temporary_shard_beside_a_store_is_removed_and_the_data_kept(tmp_path) -> None:
    root = tmp_path / "store"
    filled_store(root, 7)
    leftover = root / f"{NEW_SHARD_PREFIX}99-beef"
    leftover.mkdir()
    (leftover / "segments").write_text("half written")
    with edge(root) as store:
        assert store.count() == 7
    assert not leftover.exists()


def test_a_shard_with_points_but_no_metadata_is_refused_and_kept(tmp_path) -> None:
    root = tmp_path / "store"
    build_bare_shard(root / SHARD_DIR, count=5)
    with edge(root) as store, pytest.raises(StoreError) as refused:
        store.bind_model(MODEL)
    assert str(refused.value) == (
        f"{root / SHARD_DIR} holds data but {METADATA_FILE} is missing: not an anyshot store, "
        "or a damaged one"
    )
    shard = qe.EdgeShard.load(str(root / SHARD_DIR))
    assert shard.count(qe.CountRequest(exact=True)) == 5
    shard.close()


def test_a_store_created_meanwhile_by_another_opener_is_opened_not_clobbered(tmp_path) -> None:
    root = tmp_path / "store"
    late = edge(root)  # looked before the store existed
    try:
        with edge(root) as first:
            first.bind_model(MODEL)
            first.upsert(*points(6))
            with pytest.raises(StoreLockedError, match="is open in another process"):
                late.bind_model(MODEL)
        late.bind_model(MODEL)  # the first one is done: open what it made
        assert late.count() == 6
        with pytest.raises(ModelMismatchError):
            late.bind_model(OTHER)
    finally:
        late.close()


@pytest.mark.slow
def test_two_index_runs_on_a_new_store_at_once(tiny_store_template, tmp_path) -> None:
    images, _ = tiny_store_template
    store = tmp_path / "new-store"
    command = ["index", str(images), "--store", str(store), "--model", "anyshot-tiny", "--json"]
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "ANYSHOT_INDEX__WORKERS": "0",
        "ANYSHOT_STORE__RESERVE_FREE_MB": "0",
    }
    anyshot = str(Path(sys.executable).parent / "anyshot")
    runs = [
        subprocess.Popen(
            [anyshot, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    codes = [run.returncode for run in runs]
    for out, err in outputs:
        assert_no_traceback(out, err)
    assert 0 in codes and set(codes) <= {0, 1}, outputs
    for code, (out, err) in zip(codes, outputs, strict=True):
        if code == 1:
            [line] = err.strip().splitlines()
            assert line.startswith(f"error: {store} is open in another process (pid ")
        else:
            assert json.loads(out.splitlines()[-1])["indexed"] in (0, 120)
    with edge(store) as opened:
        assert opened.count() == 120


# -- item 9: a full disk is one clear line, and the store stays as it was --------------------------

MESSAGE = r"^[\d.]+ MB free on .+ \(.+\), need about [\d.]+ MB to {what}(, [\d.]+ MB of it kept free \(store.reserve_free_mb\))?: free some space$"  # noqa: E501


def test_writes_beyond_the_reserve_are_refused_before_touching_the_store(tmp_path) -> None:
    root = tmp_path / "store"
    store = edge(root)
    try:
        store.bind_model(MODEL)
        ids, vectors, payloads = points(10)
        store.upsert(ids, vectors, payloads)
        store.reserve_bytes = free_bytes(root) + 2**30  # more than the disk has free
        more = points(5, start=100)
        with pytest.raises(DiskSpaceError, match=MESSAGE.format(what="store 5 images")) as full:
            store.upsert(*more)
        assert full.value.needed > full.value.free
        with pytest.raises(DiskSpaceError, match=MESSAGE.format(what="update 3 images")):
            store.set_payload(ids[:3], {"tags": ["x"]})
        with pytest.raises(DiskSpaceError, match=MESSAGE.format(what="delete 2 images")):
            store.delete(ids[:2])
        with pytest.raises(DiskSpaceError, match=MESSAGE.format(what="write the document 'x'")):
            store.write_document("x", {"a": 1})
        assert store.count() == 10
    finally:
        store.close()
    with edge(root) as reopened:
        assert reopened.count() == 10
        assert [p.payload for p in reopened.retrieve(ids)] == payloads
        assert reopened.read_document("x") is None


def test_a_parquet_shard_beyond_the_reserve_is_refused_and_leaves_no_file(tmp_path) -> None:
    huge = (free_bytes(tmp_path) >> 20) + 1024
    writer = ParquetShardWriter(tmp_path / "parquet", MODEL, reserve_free_mb=huge)
    with pytest.raises(
        DiskSpaceError, match=MESSAGE.format(what="write a Parquet shard of 4 images")
    ):
        writer.write(*points(4))
    assert not (tmp_path / "parquet").exists() or not list((tmp_path / "parquet").iterdir())


def test_cli_refuses_to_open_or_create_a_store_without_room(tiny_store, tmp_path) -> None:
    images, store = tiny_store
    runner = CliRunner(env={"ANYSHOT_STORE__RESERVE_FREE_MB": "1000000"})
    result = runner.invoke(main, ["info", "--store", str(store)])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert re.match(MESSAGE.format(what="open the store"), line[7:])
    result = runner.invoke(
        main, ["index", str(images), "--store", str(tmp_path / "new"), "--model", "anyshot-tiny"]
    )
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "need about" in line and "to create the store" in line
    assert not (tmp_path / "new" / METADATA_FILE).exists()


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A real small file system (tmpfs) at ``folder``; skips where mounting is not allowed."""
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the file system holding ``folder``."""
    filler = folder / "filler"
    with open(filler, "wb") as file:
        os.posix_fallocate(file.fileno(), 0, free_bytes(folder) - leave)
    return filler


@pytest.mark.slow
def test_opening_a_store_on_a_nearly_full_disk_is_refused_not_a_crash(tmp_path) -> None:
    """Reopening a shard makes Qdrant Edge write ~60 MB; without room it died of SIGBUS."""
    # 200 MB: the store (3000 points, ten payload indexes) takes ~110 MB once reopened.
    with small_disk(tmp_path / "disk", "200m") as disk:
        store = disk / "store"
        with edge(store) as created:
            created.bind_model(MODEL)
            for batch in range(3):
                created.upsert(*points(1000, start=1000 * batch))
        filler = fill(disk, 20 * 2**20)
        env = {"ANYSHOT_STORE__RESERVE_FREE_MB": "0"}
        result = run_anyshot("info", "--store", str(store), "--json", env=env, timeout=120)
        assert_no_traceback(result.stdout, result.stderr)
        assert result.returncode == 1, result
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: 20 MB free on tmpfs ({store}), need about 64 MB to open")
        filler.unlink()
        result = run_anyshot("info", "--store", str(store), "--json", env=env, timeout=120)
        assert result.returncode == 0, result
        assert json.loads(result.stdout)["points"] == 3000


FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from indexer.disk_space import free_bytes
    from indexer.stores.edge import EdgeStore
    from indexer.errors import DiskSpaceError
    from indexer.schema import ModelIdentity, point_id

    disk = sys.argv[1]
    model = ModelIdentity("store-model", None, 8)
    def batch(start, count):
        uris = [f"/photos/{i}.jpg" for i in range(start, start + count)]
        rows = np.random.default_rng(start).normal(size=(count, 8)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return [point_id(u) for u in uris], rows, [{"uri": u, "tag": "x" * 200} for u in uris]
    store = EdgeStore(os.path.join(disk, "store"), reserve_free_mb=0)
    store.bind_model(model)
    store.upsert(*batch(0, 100))
    filler = os.path.join(disk, "filler")
    with open(filler, "wb") as file:
        os.posix_fallocate(file.fileno(), 0, free_bytes(disk) - 256 * 1024)
    outcome = "stored"
    try:
        store.upsert(*batch(1000, 20000))
    except DiskSpaceError as exc:
        outcome = str(exc)
    during = store.count()
    os.unlink(filler)
    store.close()
    with EdgeStore(os.path.join(disk, "store"), reserve_free_mb=0) as reopened:
        after = reopened.count()
    print(json.dumps({"outcome": outcome, "during": during, "after": after}))
    """
)


@pytest.mark.slow
def test_a_batch_that_does_not_fit_is_refused_and_the_store_kept(tmp_path) -> None:
    """Run in a child process: before the check, Qdrant Edge's write killed it with SIGBUS."""
    with small_disk(tmp_path / "disk", "160m") as disk:
        result = subprocess.run(
            [sys.executable, "-c", FULL_DISK_SCRIPT, str(disk)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=os.environ | {"PYTHONPATH": str(REPO)},
        )
        assert result.returncode == 0, result  # not -7 (SIGBUS)
        report = json.loads(result.stdout.splitlines()[-1])
        assert (report["during"], report["after"]) == (100, 100)
        assert report["outcome"].startswith(f"0.2 MB free on tmpfs ({disk / 'store'}), need about")
        assert report["outcome"].endswith("MB to store 20000 images: free some space")


# -- item 13: an engine panic is a store error; non-finite filters are refused ---------------


def test_a_panic_of_the_engine_becomes_a_store_error(tmp_path) -> None:
    with edge(tmp_path / "store") as store:
        store.bind_model(MODEL)
        ids, vectors, payloads = points(50)
        store.upsert(ids, vectors, payloads)
        nan_range = qe.Filter(
            must=[qe.FieldCondition(key="mtime", range=qe.RangeFloat(gte=float("nan")))]
        )
        request = qe.QueryRequest(
            limit=3,
            query=qe.Query.Nearest(vectors[0].tolist(), using="image"),
            with_payload=True,
            filter=nan_range,
        )
        with pytest.raises(StoreError, match=r"^Qdrant Edge failed to search \(engine panic: "):
            store._call("search", store._shard.query, request)
        with pytest.raises(StoreError, match="engine panic"):
            store._call("count", store._shard.count, qe.CountRequest(exact=True, filter=nan_range))
        # the store still answers
        assert store.search(vectors[0], limit=1)[0].id == ids[0]


@pytest.mark.parametrize("backend", ["edge", "memory"])
@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            PayloadFilter(mtime_min=float("nan")),
            "filter mtime_min must be a finite number, not nan",
        ),
        (
            PayloadFilter(mtime_max=float("inf")),
            "filter mtime_max must be a finite number, not inf",
        ),
        (
            PayloadFilter(size_min=float("-inf")),
            "filter size_min must be a finite number, not -inf",
        ),
        (PayloadFilter(size_max=2**70), f"filter size_max must be a finite number, not {2**70}"),
        (PayloadFilter(ids=(5, 2**64)), f"filter ids must be from 0 to 2**64 - 1, not {2**64}"),
        (PayloadFilter(ids=(-1,)), "filter ids must be from 0 to 2**64 - 1, not -1"),
    ],
)
def test_non_finite_filter_bounds_are_refused(tmp_path, backend, where, message) -> None:
    location = str(tmp_path / "store") if backend == "edge" else ":memory:"
    with open_store(StoreSettings(location=location, reserve_free_mb=0)) as store:
        store.bind_model(MODEL)
        ids, vectors, payloads = points(20)
        store.upsert(ids, vectors, payloads)
        with pytest.raises(QueryError) as refused:
            store.search(vectors[0], limit=3, where=where)
        assert str(refused.value) == message
        with pytest.raises(QueryError):
            store.count(where)
        with pytest.raises(QueryError):
            list(store.scroll(where=where))
        assert store.count(PayloadFilter(mtime_min=1.7e9 + 10)) == 10


# -- item 16: a read-only store is searched; every write is one line ------------------------------


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@contextmanager
def read_only(root: Path) -> Iterator[None]:
    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)


@pytest.mark.slow
def test_a_read_only_store_is_searched_and_refuses_every_write(
    needs_permissions, tiny_store, tmp_path
) -> None:
    images, store = tiny_store
    (tmp_path / "labels.txt").write_text("circle\nstar\n")
    snapshot = tmp_path / "snap"
    ParquetShardWriter(snapshot, MODEL).write(*points(2))
    commands = {
        "search": ["search", "a red circle", "--store", str(store), "-k", "3", "--json"],
        "info": ["info", "--store", str(store), "--json"],
        "index": ["index", str(images), "--store", str(store)],
        "concept": ["concept", "add", "mine", str(next(images.iterdir())), "--store", str(store)],
        "tag": ["tag", "--labels", str(tmp_path / "labels.txt"), "--store", str(store)],
        "load": ["load", str(snapshot), "--store", str(store)],
    }
    env = os.environ | {"HF_HUB_OFFLINE": "1", "ANYSHOT_INDEX__WORKERS": "0"}
    anyshot = str(Path(sys.executable).parent / "anyshot")
    before = tree_state(store)
    copies_before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{COPY_PREFIX}*"))
    with read_only(store):
        # Readers share the store: all six run at once.
        running = {
            name: subprocess.Popen(
                unprivileged([anyshot, *args]),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name, args in commands.items()
        }
        results = {
            name: (run.communicate(timeout=300), run.returncode) for name, run in running.items()
        }
    for (out, err), _ in results.values():
        assert_no_traceback(out, err)
    (out, err), code = results["search"]
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3
    (out, err), code = results["info"]
    assert code == 0, err
    info = json.loads(out)
    assert (info["points"], info["read_only"]) == (120, True)
    refusal = (
        f"error: {store} is read-only (its folder is not writable): search and info work, but "
        "writing (index, load, tag, concepts) needs a store folder and files this user may write"
    )
    for name in ("index", "concept", "tag", "load"):
        (out, err), code = results[name]
        assert code == 1, (name, out, err)
        assert err.strip().splitlines() == [refusal], name
    assert tree_state(store) == before
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{COPY_PREFIX}*")) <= copies_before


def test_a_store_on_a_read_only_mount_is_searched_and_refuses_writes(tmp_path) -> None:
    with small_disk(tmp_path / "disk", "120m") as disk:
        filled_store(disk / "store", 12)
        remounted = subprocess.run(
            ["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True
        )
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remounted.stderr.strip()}")
        with edge(disk / "store") as store:
            assert (store.read_only, store.read_only_reason) == (True, "a read-only file system")
            assert store.count() == 12
            hit = store.search(unit_rows(12)[3], limit=1)[0]
            assert hit.id == points(12)[0][3]
            assert store.info().extra["read_only"] is True
            with pytest.raises(
                StoreReadOnlyError, match="is read-only \\(a read-only file system\\)"
            ):
                store.upsert(*points(1, start=50))
            with pytest.raises(StoreReadOnlyError):
                store.bind_model(MODEL)
            with pytest.raises(StoreReadOnlyError):
                store.write_document("concepts", {})
            with pytest.raises(StoreReadOnlyError):
                store.set_payload(points(1)[0], {"tags": []})
            copy = store._copy
            assert copy is not None and copy.is_dir()
        assert not copy.exists()  # the private copy is gone with the store


def test_copies_left_by_killed_processes_are_removed(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    stale = tmp_path / f"{COPY_PREFIX}999999999-abcd"  # no such process
    stale.mkdir()
    mine = tmp_path / f"{COPY_PREFIX}{os.getpid()}-live"
    mine.mkdir()
    fresh = make_copy_folder()
    assert fresh.parent == tmp_path
    assert not stale.exists() and mine.exists()


def test_a_writer_and_a_reader_exclude_each_other(tmp_path) -> None:
    """The read-only path takes the lock shared; an open writer holds it exclusively."""
    root = tmp_path / "store"
    filled_store(root)
    with edge(root):
        script = textwrap.dedent(
            f"""
            from indexer.stores.edge import EdgeStore
            from indexer.errors import StoreLockedError
            try:
                EdgeStore({str(root)!r}, reserve_free_mb=0)
            except StoreLockedError as exc:
                print("locked:", exc)
            """
        )
        os.chmod(root, 0o555)
        try:
            result = subprocess.run(
                unprivileged([sys.executable, "-c", script]),
                capture_output=True,
                text=True,
                timeout=60,
                env=os.environ | {"PYTHONPATH": str(REPO)},
            )
        finally:
            os.chmod(root, 0o755)
    assert result.stdout.startswith(f"locked: {root} is open in another process (pid "), result
    assert (root / LOCK_FILE).is_file()

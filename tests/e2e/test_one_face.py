"""One scenario, three ways in, the same answers (issue 12, "What to show").

The scenario (index a folder, add a concept, tag, search by text, name, id and image, with a
filter, find duplicates, info, export) runs

- through the in-process client (``connect(FOLDER)`` → ``ImageSearch``),
- through a running ``anyshot serve`` with the Python client (``connect(URL)`` →
  ``RemoteImageSearch``),
- through the CLI while another ``anyshot serve`` holds its store folder,

each on a fresh store of the same images, and must give the same hits, concepts, tags,
duplicates, info and export. Then the contract lines: the CLI's output on a served store is the
output it gives on the same store once the server has stopped.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from anyshot_process import anyshot_serve
from click.testing import CliRunner
from shape_collection import write_shape_images

from indexer.config import build_settings
from indexer.errors import AnyshotError
from indexer.parquet_store import list_shards, read_shard
from search import ImageSearch, RemoteImageSearch, connect
from search.cli import main
from search.face import CollectionClient

pytestmark = pytest.mark.slow

LABELS = ["circle", "ring", "star", "heart", "square"]
# One image runtime for all three faces: on CPUs that run int8 (AVX2 only), an index run in
# this process embeds through the exported ONNX tower while a server that holds a torch model
# embeds with it, and their scores differ in the fourth decimal.
SAME_RUNTIME = {"ANYSHOT_MODEL__IMAGE_RUNTIME": "torch"}
SERVER_ENV = {
    "ANYSHOT_MODEL__NAME": "anyshot-tiny",
    "ANYSHOT_INDEX__BATCH_SIZE": "16",
    **SAME_RUNTIME,
}
# The CLI's server takes small bodies: a load through it must be cut into many shards.
CLI_SERVER_ENV = SERVER_ENV | {"ANYSHOT_API__MAX_UPLOAD_BYTES": "60000"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """Images (with two exact copies of one), three empty stores, a server on two of them."""
    root = tmp_path_factory.mktemp("one-face")
    images = root / "images"
    write_shape_images(images, 40, seed=7)
    copies = images / "copies"
    copies.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(images / "ring-blue-006.png", copies / name)
    stores = {name: root / name for name in ("local", "python", "cli")}
    with (
        pytest.MonkeyPatch.context() as env,
        anyshot_serve(stores["python"], root / "python.log", env=SERVER_ENV) as python_server,
        anyshot_serve(stores["cli"], root / "cli.log", env=CLI_SERVER_ENV) as cli_server,
    ):
        for name, value in SAME_RUNTIME.items():
            env.setenv(name, value)  # the in-process and CLI faces
        yield {
            "root": root,
            "images": images,
            "stores": stores,
            "python_server": python_server,
            "cli_server": cli_server,
        }


def ranked(rows: list[tuple[int, str, float]]) -> list[tuple[int, str, float]]:
    """Hits best first, equal scores by id: images of equal score (the exact copies) may come
    in either order, in one store as in another."""
    return sorted(rows, key=lambda row: (-row[2], row[0]))


def hit_rows(hits: list[Any]) -> list[tuple[int, str, float]]:
    return ranked([(h.id, h.uri, round(h.score, 4)) for h in hits])


def json_rows(out: str) -> list[tuple[int, str, float]]:
    rows = [json.loads(line) for line in out.strip().splitlines()]
    return ranked([(r["id"], r["uri"], round(r["score"], 4)) for r in rows])


def comparable_info(data: dict[str, Any]) -> dict[str, Any]:
    """Info without what differs between two stores of the same images: where, and its bytes."""
    return {k: v for k, v in data.items() if k not in ("location", "disk_bytes")}


def without_size(out: str) -> str:
    """Output without the store folder's size on disk: a measurement of the moment, which
    differs by the journal files Qdrant Edge keeps while a writer (the server) has the store
    open. Everything else must be the same."""
    out = re.sub(r'"disk_bytes": \d+', '"disk_bytes": N', out)
    return re.sub(r"size on disk: .*", "size on disk: N", out)


def exported(folder: Path) -> dict[str, Any]:
    ids = sorted(int(i) for shard in list_shards(folder) for i in read_shard(shard).ids)
    documents = json.loads((folder / "documents.json").read_text())
    concepts = [c["name"] for c in documents["documents"]["concepts"]["concepts"]]
    return {"ids": ids, "concepts": concepts}


def client_scenario(client: CollectionClient, images: Path, snapshot: Path) -> dict[str, Any]:
    """The scenario through the Python face."""
    report = client.index(images)
    examples = [str(images / "ring-blue-006.png"), str(images / "ring-blue-007.png")]
    concept = client.add_concept("my ring", examples)
    tags = client.tag(LABELS, top=1)
    by_text = client.search("a blue ring", k=5)
    answers = {
        "index": (report.indexed, report.unchanged, report.removed, report.skipped),
        "concept": (concept.name, concept.examples),
        "concepts": [(c.name, c.examples) for c in client.concepts()],
        "tags": (tags.labels, tags.images, tags.tagged, tags.counts),
        "tag_counts": client.tag_counts(),
        "text": hit_rows(by_text),
        "name": hit_rows(client.search(name="my ring", k=5)),
        "id": hit_rows(client.search(similar_to=by_text[0].id, k=5)),
        "image": hit_rows(client.search(image=images / "star-black-009.png", k=5)),
        "filtered": hit_rows(client.search("a shape", where=["tag=ring"], k=100)),
        "confidence": (
            client.query("a pink star", k=3).explain["confidence"],
            client.query("a pink star", k=3).explain["no_match"],
            hit_rows(client.search("a pink star", k=3, min_confidence=0.5)),
        ),
        "dupes": [(g.ids, g.uris, round(g.score, 4)) for g in client.duplicates()],
        "info": comparable_info(client.info().model_dump()),
        "exported": client.export(snapshot),
    }
    answers["snapshot"] = exported(snapshot)
    return answers


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result.stdout


def cli_scenario(store: Path, images: Path, snapshot: Path, tmp: Path) -> dict[str, Any]:
    """The same scenario through the CLI."""
    at = ("--store", str(store))
    report = json.loads(cli("index", str(images), *at, "--json").strip().splitlines()[-1])
    examples = [str(images / "ring-blue-006.png"), str(images / "ring-blue-007.png")]
    concept = json.loads(cli("concept", "add", "my ring", *examples, *at, "--json"))
    listed = [json.loads(line) for line in cli("concept", "list", *at, "--json").splitlines()]
    labels = tmp / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    tags = json.loads(cli("tag", "--labels", str(labels), *at, "--json"))
    by_text = json_rows(cli("search", "a blue ring", *at, "-k", "5", "--json"))
    groups = [json.loads(line) for line in cli("dupes", *at, "--json").splitlines()]
    image = str(images / "star-black-009.png")
    explained = cli("search", "a pink star", *at, "-k", "3", "--json", "--explain")
    unsure = json.loads(explained.splitlines()[-1])["explain"]
    strict = ("--min-confidence", "0.5")
    answers = {
        "index": tuple(report[k] for k in ("indexed", "unchanged", "removed", "skipped")),
        "concept": (concept["name"], concept["examples"]),
        "concepts": [(c["name"], c["examples"]) for c in listed],
        "tags": (tags["labels"], tags["images"], tags["tagged"], tags["counts"]),
        "tag_counts": tags["counts"],
        "text": by_text,
        "name": json_rows(cli("search", "--name", "my ring", *at, "-k", "5", "--json")),
        "id": json_rows(cli("search", "--id", str(by_text[0][0]), *at, "-k", "5", "--json")),
        "image": json_rows(cli("search", "--image", image, *at, "-k", "5", "--json")),
        "filtered": json_rows(
            cli("search", "a shape", "--filter", "tag=ring", *at, "-k", "100", "--json")
        ),
        "confidence": (
            unsure["confidence"],
            unsure["no_match"],
            json_rows(cli("search", "a pink star", *at, "-k", "3", "--json", *strict)),
        ),
        "dupes": [(g["ids"], g["uris"], round(g["score"], 4)) for g in groups],
        "info": comparable_info(json.loads(cli("info", *at, "--json"))),
        "exported": json.loads(cli("export", str(snapshot), *at, "--json"))["exported"],
    }
    answers["snapshot"] = exported(snapshot)
    return answers


def test_the_scenario_gives_the_same_answers_in_process_remote_and_through_the_cli(
    world, tmp_path
) -> None:
    images, stores = world["images"], world["stores"]
    settings = build_settings(model="anyshot-tiny", workers=0, batch_size=16)
    with connect(stores["local"], settings=settings) as client:
        assert isinstance(client, ImageSearch)
        local = client_scenario(client, images, tmp_path / "snapshot-local")
    with connect(world["python_server"].url) as client:
        assert isinstance(client, RemoteImageSearch)
        remote = client_scenario(client, images, tmp_path / "snapshot-python")
    through_cli = cli_scenario(stores["cli"], images, tmp_path / "snapshot-cli", tmp_path)

    assert local["index"] == (42, 0, 0, 0)
    assert local["concepts"] == [("my ring", local["concept"][1])]
    assert len(local["text"]) == 5 and local["dupes"]
    assert local["snapshot"]["concepts"] == ["my ring"]
    assert len(local["snapshot"]["ids"]) == local["exported"] == 42
    # The tag counts of a run list each label; the collection's counts only those given.
    local["tag_counts"] = {k: v for k, v in local["tags"][3].items() if v}
    remote["tag_counts"] = {k: v for k, v in remote["tags"][3].items() if v}
    through_cli["tag_counts"] = {k: v for k, v in through_cli["tags"][3].items() if v}
    for key in local:
        assert remote[key] == local[key], key
        assert through_cli[key] == local[key], key


def taken_folder(root: Path) -> Path:
    folder = root / "taken"
    folder.mkdir(exist_ok=True)
    (folder / "documents.json").write_text("{}")
    return folder


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (lambda c, _: c.search(similar_to=12345), "QueryError"),
        (lambda c, _: c.remove_concept("nobody"), "QueryError"),
        (lambda c, _: c.search("a red circle", threshold=2.0), "QueryError"),
        (lambda c, _: c.search("a red circle", min_confidence=2.0), "QueryError"),
        (lambda c, _: c.search(name="   "), "QueryError"),
        (lambda c, root: c.index(root / "no such folder"), "SourceError"),
        (lambda c, root: c.export(taken_folder(root)), "ParquetError"),
        (lambda c, root: c.load(root / "images"), "ParquetError"),
        (lambda c, _: c.search("x", where=["folder=/x", "size<1B"], k=1), "ok"),
    ],
)
def test_errors_are_the_same_class_and_message_in_process_and_remote(world, call, kind) -> None:
    """A server's error comes back as the class a local client raises, with its message."""
    settings = build_settings(model="anyshot-tiny", workers=0)
    outcomes = []
    for location in (world["stores"]["local"], world["python_server"].url):
        with connect(location, settings=settings) as client:
            try:
                outcomes.append(("ok", [h.id for h in call(client, world["root"])]))
            except AnyshotError as exc:
                outcomes.append((type(exc).__name__, str(exc)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == kind


def test_the_cli_prints_the_same_with_and_without_the_server(world, tmp_path) -> None:
    """The contract: while `anyshot serve --store S` runs, info, concept add, search --name,
    dupes and export exit 0 with the output they give without the server; the other commands,
    and errors, are the same too (exit code, stdout, stderr)."""
    store, images = world["stores"]["cli"], world["images"]
    at = ("--store", str(store))
    example = str(images / "heart-cyan-003.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("circle\nheart\n")
    (tmp_path / "no-shards").mkdir()

    def commands(snapshot: Path) -> list[tuple[str, ...]]:
        return [
            ("info", *at, "--json"),
            ("info", *at),
            ("concept", "add", "a heart", example, *at),
            ("concept", "list", *at),
            ("search", "--name", "a heart", *at, "--json"),
            ("search", "--name", "a heart", *at, "-k", "3"),
            ("dupes", *at, "--json"),
            ("export", str(snapshot), *at),
            ("concept", "remove", "a heart", *at),
            ("search", "--id", "12345", *at),
            ("concept", "remove", "nobody", *at),
            ("load", str(tmp_path / "no-shards"), *at),
            ("index", str(images / "copies"), *at, "--json"),
        ]

    def outcomes(snapshot: Path) -> list[tuple[int, str, str]]:
        found = []
        for args in commands(snapshot):
            result = CliRunner().invoke(main, list(args))
            out = without_size(result.stdout).replace(str(snapshot), "SNAPSHOT")
            out = re.sub(r'"seconds": [0-9.]+, "images_per_second": [0-9.]+', "TIME", out)
            found.append((result.exit_code, out, result.stderr))
        return found

    served = outcomes(tmp_path / "served")
    world["cli_server"].stop()  # the store is now opened by each command itself
    alone = outcomes(tmp_path / "alone")
    # An index run through the server says so on stderr; the rest is the same.
    assert served[-1][2].startswith(f"{store} is open in anyshot serve (http://")
    served[-1] = (served[-1][0], served[-1][1], alone[-1][2])
    for args, one, other in zip(commands(tmp_path), served, alone, strict=True):
        assert one == other, args
    assert [code for code, _, _ in served] == [0] * 9 + [1] * 3 + [0]
    assert exported(tmp_path / "served") == exported(tmp_path / "alone")


def test_schedule_on_a_served_store_says_at_once_that_its_runs_are_refused(
    world, tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # it stops there, after the warning
    store, url = world["stores"]["python"], world["python_server"].url
    result = CliRunner().invoke(
        main, ["schedule", str(tmp_path), "--interval", "60", "--store", str(store)]
    )
    warning, error = result.stderr.strip().splitlines()
    held = f"warning: {store} is open in another process: anyshot serve at {url} holds it"
    assert warning.startswith(held)
    assert warning.endswith("the scheduled runs are refused while the server holds the store")
    assert (result.exit_code, error) == (
        1,
        "error: scheduling needs a Prefect server: start one (prefect server start) and set "
        "PREFECT_API_URL=http://127.0.0.1:4200/api",
    )


def test_a_load_through_the_server_is_cut_under_its_upload_limit(
    tiny_store_template, tmp_path
) -> None:
    """The local snapshot is checked here, sent in shards the server takes (its upload limit
    is far below the snapshot's shard), and reported as a local load reports it."""
    images, template = tiny_store_template
    source = tmp_path / "source"
    shutil.copytree(template, source)
    snapshot = tmp_path / "snapshot"
    with connect(source) as client:
        client.add_concept("my ring", [images / "ring-blue-006.png"])
        client.export(snapshot)
    assert (snapshot / "documents.json").is_file() and len(list_shards(snapshot)) == 1
    target = tmp_path / "target"
    with anyshot_serve(target, tmp_path / "serve.log", env=CLI_SERVER_ENV):
        result = CliRunner().invoke(main, ["load", str(snapshot), "--store", str(target)])
        assert result.exit_code == 0, result.stderr
        served_report = result.stdout
        with connect(target) as client:
            assert isinstance(client, RemoteImageSearch)
            assert [c.name for c in client.concepts()] == ["my ring"]
            assert client.info().points == 120
            hits = client.search(name="my ring", k=1)
    assert hits[0].uri == str(images / "ring-blue-006.png")
    alone = tmp_path / "alone"
    result = CliRunner().invoke(main, ["load", str(snapshot), "--store", str(alone)])
    assert (result.exit_code, result.stdout) == (0, served_report)
    assert served_report.strip() == (
        "loaded 120 rows and 1 concepts; rejected 0 rows and 0 of 1 shards; "
        "the store holds 120 images"
    )

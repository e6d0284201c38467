"""The CLI as users meet it: tables, JSON lines, one-line errors, help with examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from shape_collection import shape_of

from indexer.stores.edge import EdgeStore
from search.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def collection(tiny_store_template, tmp_path_factory) -> tuple[Path, str]:
    images, template = tiny_store_template
    store = tmp_path_factory.mktemp("cli") / "store"
    shutil.copytree(template, store)
    return images, str(store)


def all_commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            found.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(main, ())
    return found


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_every_command_has_help_with_examples(command: tuple[str, ...]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0
    assert "Example" in out, out


def test_search_prints_a_table_best_first(collection) -> None:
    _, store = collection
    code, out, err = run("search", "a blue ring", "--store", store, "-k", "3")
    assert code == 0, err
    header, *rows = out.strip().splitlines()
    assert header.split() == ["#", "score", "path"]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    scores = [float(row.split()[1]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(shape_of(row.split()[2]) == ("ring", "blue") for row in rows)


def test_search_json_lines_and_threshold(collection) -> None:
    _, store = collection
    code, out, _ = run("search", "--name", "star", "--store", store, "-k", "5", "--json")
    assert code == 0
    hits = [json.loads(line) for line in out.strip().splitlines()]
    assert len(hits) == 5 and all({"id", "uri", "score"} <= h.keys() for h in hits)
    cut = hits[2]["score"] - 1e-5  # scores are printed rounded to 6 digits
    code, out, _ = run(
        "search", "--name", "star", "--store", store, "-k", "5", "--threshold", str(cut), "--json"
    )
    assert [json.loads(line)["id"] for line in out.strip().splitlines()] == [
        h["id"] for h in hits[:3]
    ]


def test_search_with_expansion_and_collapsed_duplicates(collection) -> None:
    _, store = collection
    args = ("search", "a blue ring", "--store", store, "-k", "3", "--json")
    code, out, err = run(*args, "--expand", "--collapse-duplicates")
    assert code == 0, err
    hits = [json.loads(line) for line in out.strip().splitlines()]
    assert len(hits) == 3
    assert sum(shape_of(h["uri"]) == ("ring", "blue") for h in hits) >= 2
    code, out, err = run(*args, "--no-expand")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 3


def test_info_shows_collection_model_counts_and_size(collection) -> None:
    _, store = collection
    code, out, _ = run("info", "--store", store)
    assert code == 0
    fields = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.splitlines()
    }
    assert fields["collection"] == "images"
    assert fields["model"].startswith("anyshot-tiny")
    assert fields["points"] == "120"
    assert fields["size on disk"].endswith(("KiB", "MiB"))
    code, out, _ = run("info", "--store", store, "--json")
    assert json.loads(out)["points"] == 120


def test_search_of_an_empty_store_says_what_to_do_in_one_line(tmp_path) -> None:
    code, out, err = run("search", "cat", "--store", str(tmp_path / "empty"))
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: no collection at"), err
    assert "anyshot index" in err and "Traceback" not in err + out


def test_errors_on_a_real_collection(collection) -> None:
    _, store = collection
    for args, message in [
        (("search", "--store", store), "give exactly one query"),
        (("search", "--image", "/no/such.jpg", "--store", store), "cannot use the example image"),
        (("search", "--id", "12345", "--store", store), "no image with id 12345"),
    ]:
        code, out, err = run(*args)
        assert code == 1, (args, out, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_serve_refuses_a_store_open_elsewhere_in_one_line(collection) -> None:
    _, store = collection
    with EdgeStore(store):
        code, _, err = run("serve", "--store", store, "--port", "1")
    assert code == 1
    assert err.count("\n") == 1 and "is open in another process" in err


def test_search_with_negatives_and_filters(collection) -> None:
    images, store = collection
    code, out, err = run(
        "search",
        "a red shape",
        "--not",
        "a circle",
        "--not",
        "a star",
        "--filter",
        "format=PNG",
        "--filter",
        f"folder={images}",
        "--store",
        store,
        "-k",
        "5",
        "--json",
    )
    assert code == 0, err
    hits = [json.loads(line) for line in out.strip().splitlines()]
    assert len(hits) == 5 and all(h["payload"]["format"] == "PNG" for h in hits)
    code, _, err = run("search", "cat", "--filter", "colour=red", "--store", store)
    assert code == 1 and err.count("\n") == 1 and "unknown filter key" in err
    code, out, _ = run("search", "a red circle", "--filter", "format=JPEG", "--store", store)
    assert code == 0 and out.strip() == "no results"


def test_concepts_add_list_search_remove(collection) -> None:
    images, store = collection
    examples = [str(images / "ring-blue-006.png"), str(images / "ring-blue-007.png")]
    code, out, err = run("concept", "add", "my-ring", *examples, "--store", store)
    assert code == 0, err
    assert "my-ring" in out
    code, out, _ = run("concept", "list", "--store", store, "--json")
    (listed,) = [json.loads(line) for line in out.strip().splitlines()]
    assert listed["name"] == "my-ring" and listed["examples"] == examples
    code, out, _ = run("search", "--name", "my-ring", "--store", store, "-k", "2", "--json")
    assert {json.loads(line)["uri"] for line in out.strip().splitlines()} <= {
        *examples,
        str(images / "ring-blue-008.png"),
    }
    assert run("concept", "remove", "my-ring", "--store", store)[0] == 0
    code, out, _ = run("concept", "list", "--store", store)
    assert out.startswith("no concepts")
    code, _, err = run("concept", "remove", "my-ring", "--store", store)
    assert code == 1 and err.count("\n") == 1 and "my-ring" in err


def test_tag_then_filter_by_tag(collection, tmp_path) -> None:
    _, store = collection
    labels = tmp_path / "labels.txt"
    labels.write_text("circle\nring\nstar\nheart\nsquare\n")
    code, out, err = run("tag", "--labels", str(labels), "--store", store, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["images"] == 120 and report["tagged"] == 120
    label, count = max(report["counts"].items(), key=lambda item: item[1])
    code, out, _ = run(
        "search", "a shape", "--filter", f"tag={label}", "--store", store, "-k", "200", "--json"
    )
    hits = [json.loads(line) for line in out.strip().splitlines()]
    assert len(hits) == count and all(label in h["payload"]["tags"] for h in hits)
    code, out, _ = run("tag", "--labels", str(labels), "--store", store)
    assert out.startswith("tagged 120 of 120 images")


def test_dupes_finds_copies(collection, tmp_path) -> None:
    images, store = collection
    copies = tmp_path / "copies"
    copies.mkdir()
    original = images / "heart-cyan-003.png"
    for name in ("a.png", "b.png"):
        shutil.copy(original, copies / name)
    code, _, err = run("index", str(copies), "--store", store, "--json", "--workers", "0")
    assert code == 0, err
    code, out, err = run("dupes", "--store", store, "--json")
    assert code == 0, err
    groups = [json.loads(line) for line in out.strip().splitlines()]
    assert {str(original), str(copies / "a.png"), str(copies / "b.png")} in [
        set(g["uris"]) for g in groups
    ]
    code, out, _ = run("dupes", "--store", store)
    assert "group 1:" in out and str(copies / "a.png") in out


def test_serve_refuses_an_empty_store_held_by_another_server(tmp_path) -> None:
    held = EdgeStore(tmp_path / "fresh")
    held.hold()
    try:
        code, _, err = run("serve", "--store", str(tmp_path / "fresh"), "--port", "1")
    finally:
        held.close()
    assert code == 1 and err.count("\n") == 1 and "is open in another process" in err

"""A new user is never kept waiting for an error: what each command imports before it answers.

Each case runs the command in a fresh interpreter (as the console script does) and reads the
modules it loaded: a user error, ``--help`` and ``info`` must come without torch, prefect or a
model, the things that take seconds. (The times go to the lead's note; the test checks imports,
not speed.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fresh_process import run_fresh

HEAVY = {"torch", "open_clip", "prefect", "torchvision"}


@pytest.fixture(scope="module")
def store(tiny_store_template, tmp_path_factory) -> Path:
    _, template = tiny_store_template
    copy = tmp_path_factory.mktemp("fast") / "store"
    shutil.copytree(template, copy)
    return copy


def test_help_loads_nothing_heavy() -> None:
    code, out, _, modules = run_fresh("--help")
    assert code == 0 and "search" in out
    assert modules & (HEAVY | {"qdrant_edge", "qdrant_client", "httpx", "fastapi"}) == set()


def test_info_needs_no_model(store) -> None:
    code, out, err, modules = run_fresh("info", "--store", str(store), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["points"] == 120
    assert modules & HEAVY == set()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("index", "/no/such/folder"), "error: /no/such/folder: no such file or folder"),
        (("search", "--image", "/no/such.jpg"), "error: cannot use the example image"),
        (("search", "x", "--filter", "colour=red"), "error: unknown filter key 'colour'"),
        (("search",), "error: give exactly one query"),
        (("concept", "add", "cat", "/no/such.jpg"), "error: cannot use the example image"),
        (("tag", "--labels", "EMPTY"), "no labels"),
        (("schedule", "/tmp"), "error: give exactly one schedule"),
    ],
)
def test_user_errors_come_before_anything_heavy(store, tmp_path, args, message) -> None:
    (tmp_path / "EMPTY").write_text("# no labels here\n")
    code, out, err, modules = run_fresh(*args, "--store", str(store), cwd=tmp_path)
    assert code == 1 and out == ""
    assert err.count("\n") == 0 and message in err, err
    assert modules & HEAVY == set()


def test_info_on_a_missing_store_is_one_line(tmp_path) -> None:
    missing = tmp_path / "nothing-here"
    code, out, err, modules = run_fresh("info", "--store", str(missing))
    assert (code, out) == (1, "")
    assert err == (
        f"error: no collection at {missing}: index images first (anyshot index FOLDER "
        f"--store {missing})"
    )
    assert not missing.exists()  # looking did not create a store
    assert modules & HEAVY == set()


def test_an_unknown_concept_is_refused_without_the_model(store) -> None:
    code, _, err, modules = run_fresh("concept", "remove", "nobody", "--store", str(store))
    assert code == 1 and err.startswith("error: ") and "nobody" in err
    assert err.count("\n") == 0
    assert modules & HEAVY == set()


def test_indexing_a_folder_without_images_says_so(tmp_path) -> None:
    from click.testing import CliRunner

    from search.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    store = str(tmp_path / "store")
    result = CliRunner().invoke(
        main, ["index", str(empty), "--store", store, "--model", "anyshot-tiny", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["indexed"], summary["unchanged"], summary["skipped"]) == (0, 0, 0)
    assert result.stderr.strip().splitlines()[-1] == (
        f"warning: no images in {empty}: nothing was indexed"
    )

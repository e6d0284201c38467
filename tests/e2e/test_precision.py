"""Indexing in int8 from the CLI: the store records the precision, info shows it, and int8 and
fp32 collections of the tiny model rank alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from search.cli import main
from tests.shape_collection import write_shape_images

TIE = 0.01
QUERIES = ["a red circle", "a cyan heart", "a blue ring", "a black star", "a green square"]


def run(*args: str, precision: str) -> tuple[int, str]:
    env = {"ANYSHOT_MODEL__PRECISION": precision, "ANYSHOT_INDEX__WORKERS": "0"}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout


def search_hits(store: Path, query: str, precision: str) -> list[tuple[int, float]]:
    code, out = run(
        "search", query, "--store", str(store), "-k", "10", "--json", precision=precision
    )
    assert code == 0, out
    return [(hit["id"], hit["score"]) for hit in map(json.loads, out.strip().splitlines())]


def assert_same_ranking(hits: list[tuple[int, float]], reference: list[tuple[int, float]]) -> None:
    """The same hits in the same order, except that hits whose reference scores lie within
    ``TIE`` of each other may swap (int8 moves a score by a few thousandths)."""
    ids = [hit_id for hit_id, _ in hits]
    for cut in range(1, len(reference)):
        if reference[cut - 1][1] - reference[cut][1] > TIE:
            assert set(ids[:cut]) == {hit_id for hit_id, _ in reference[:cut]}, (cut, hits)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("precisions")
    images = root / "images"
    write_shape_images(images, 60)
    made = {}
    for precision in ("int8", "fp32"):
        store = root / precision
        code, out = run(
            "index",
            str(images),
            "--model",
            "anyshot-tiny",
            "--store",
            str(store),
            "--json",
            precision=precision,
        )
        assert code == 0, out
        assert json.loads(out.strip().splitlines()[-1])["indexed"] == 60
        made[precision] = store
    made["images"] = images
    return made


def test_info_reports_the_precision_the_vectors_were_made_in(stores) -> None:
    for precision in ("int8", "fp32"):
        code, out = run("info", "--store", str(stores[precision]), "--json", precision="auto")
        assert code == 0
        assert json.loads(out)["precision"] == precision


def test_int8_and_fp32_collections_rank_alike(stores) -> None:
    for query in QUERIES:
        reference = search_hits(stores["fp32"], query, "fp32")
        assert_same_ranking(search_hits(stores["int8"], query, "int8"), reference)


def test_a_query_in_another_precision_searches_the_same_space(stores) -> None:
    for query in QUERIES:
        int8_query = search_hits(stores["int8"], query, "int8")
        assert_same_ranking(search_hits(stores["int8"], query, "fp32"), int8_query)


def test_runs_in_two_precisions_are_both_recorded(stores, tmp_path) -> None:
    store = tmp_path / "mixed"
    shutil.copytree(stores["int8"], store)
    more = tmp_path / "more"
    write_shape_images(more, 3, seed=11)
    code, out = run("index", str(more), "--store", str(store), "--json", precision="fp32")
    assert code == 0, out
    code, out = run("info", "--store", str(store), "--json", precision="auto")
    assert json.loads(out)["precision"] == "int8+fp32"
    code, out = run("index", str(more), "--store", str(store), "--json", precision="int8")
    assert json.loads(out.strip().splitlines()[-1])["unchanged"] == 3  # nothing embedded
    code, out = run("info", "--store", str(store), "--json", precision="auto")
    assert json.loads(out)["precision"] == "int8+fp32"

"""``explain["confidence"]`` and ``no_match``, and ``min_confidence``, on a real embedded store
with the shipped anyshot-tiny model (120 one-object shape images, ``shape-colour-NNN.png``).

Exact checks use the calibration the answer reports (the confidence is that logistic of the
best score); the quality checks compare a concept the collection holds with ones it lacks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from shape_collection import shape_of

from indexer.config import build_settings
from indexer.errors import ConfigError, QueryError
from indexer.shapes.synthetic import COLOURS, SHAPES
from search.api import create_app
from search.cli import main
from search.client import ImageSearch
from search.confidence import CALIBRATIONS, Calibration, calibration_for
from search.query import QueryPart

PRESENT = "a photo of a red circle."


@pytest.fixture(scope="module")
def collection(tiny_store_template, tmp_path_factory) -> tuple[Path, Path]:
    """(images, store): a private copy of the indexed store for this module."""
    images, template = tiny_store_template
    store = tmp_path_factory.mktemp("no-match") / "store"
    shutil.copytree(template, store)
    return images, store


@pytest.fixture(scope="module")
def shell_store(tiny_store_template, tmp_path_factory) -> Path:
    """Another copy, for the tests that open the store themselves (CLI, HTTP, settings): an
    embedded store has one opener, and ``client`` holds the first copy."""
    store = tmp_path_factory.mktemp("no-match-shells") / "store"
    shutil.copytree(tiny_store_template[1], store)
    return store


@pytest.fixture(scope="module")
def client(collection):
    with ImageSearch(build_settings(store=str(collection[1]), workers=0)) as opened:
        yield opened


def absent_pairs(images: Path) -> list[tuple[str, str]]:
    held = {shape_of(path.name) for path in images.glob("*.png")}
    return [(s, c) for s in SHAPES for c in COLOURS if (s, c) not in held]


def expected(explain: dict):
    """The confidence the reported calibration gives the reported best score (which is rounded
    to 6 digits: equal up to that)."""
    calibration = Calibration(explain["calibration"]["centre"], explain["calibration"]["step"], "")
    return pytest.approx(calibration.confidence(explain["best_score"]), abs=2e-3)


def test_a_text_query_carries_its_calibrated_confidence(client) -> None:
    result = client.query(PRESENT, k=5)
    explain = result.explain
    assert explain["best_score"] == round(result.hits[0].score, 6)
    assert explain["calibration"] == {
        "centre": CALIBRATIONS["anyshot-tiny"]["text-image"][0],
        "step": CALIBRATIONS["anyshot-tiny"]["text-image"][1],
        "source": "built-in:anyshot-tiny",
    }
    assert explain["confidence"] == expected(explain)
    assert explain["no_match"] is (explain["confidence"] < 0.5)
    assert explain["min_confidence"] is None


def test_present_concepts_are_more_confident_than_absent_ones(client, collection) -> None:
    present = client.query(PRESENT, k=3).explain
    # Fails when anyshot-tiny is retrained without refitting its calibration
    # (bench/bench_no_match.py --fit; the values live in search/confidence.py).
    assert present["no_match"] is False, present
    missing = absent_pairs(collection[0])
    assert len(missing) > 20
    absent = [client.query(f"a photo of a {c} {s}.", k=3).explain for s, c in missing[:20]]
    assert all(a["confidence"] < present["confidence"] for a in absent)
    # Most, not all: some absent pairs have a near twin (an orange circle for a red one).
    assert sum(a["no_match"] for a in absent) >= 10


def test_every_kind_with_a_vector_has_a_confidence(client, collection) -> None:
    images, _ = collection
    first = client.search(PRESENT, k=2)
    kinds = {
        "name": client.query(name="red circle", k=2),
        "image": client.query(image=images / Path(first[0].uri).name, k=2),
        "id": client.query(similar_to=first[0].id, k=2),
        "negated": client.query(PRESENT, negatives=["a blue star"], k=2),
        "mixed": client.query(parts=[QueryPart("text", PRESENT), QueryPart("id", first[0].id)]),
    }
    for kind, result in kinds.items():
        assert 0.0 <= result.explain["confidence"] <= 1.0, kind
        assert result.explain["confidence"] == expected(result.explain), kind
    assert kinds["image"].explain["score_scale"] == "image-image"
    assert kinds["mixed"].explain["score_scale"] == "mixed"
    # itself (int8 CPUs: the query goes through torch, the index through the ONNX tower)
    assert kinds["image"].explain["best_score"] == pytest.approx(1.0, abs=1e-3)


def test_more_like_this_does_not_count_the_image_itself(client) -> None:
    target = client.search(PRESENT, k=1)[0]
    result = client.query(similar_to=target.id, k=3)
    assert result.hits[0].id == target.id
    assert result.explain["best_score"] == round(result.hits[1].score, 6)
    one = client.query(similar_to=target.id, k=1)  # the second best is searched for
    assert one.explain["best_score"] == result.explain["best_score"]


def test_a_later_page_and_expansion_have_the_first_pages_confidence(client) -> None:
    first = client.query(PRESENT, k=5).explain
    assert client.query(PRESENT, k=5, offset=5).explain["confidence"] == first["confidence"]
    assert client.query(PRESENT, k=5, expand=True).explain["confidence"] == first["confidence"]


def test_confidence_is_within_the_filters(client) -> None:
    inside = client.query(PRESENT, where=["format=GIF"], k=3)
    assert inside.hits == []
    assert inside.explain["best_score"] is None
    assert inside.explain["confidence"] == 0.0
    assert inside.explain["no_match"] is True


def test_min_confidence_drops_every_hit_below_it(client) -> None:
    result = client.query(PRESENT, k=3)
    confidence = result.explain["confidence"]
    kept = client.query(PRESENT, k=3, min_confidence=confidence)
    assert [h.id for h in kept.hits] == [h.id for h in result.hits]
    assert client.search(PRESENT, k=3, min_confidence=0.0) == result.hits
    if confidence < 1.0:
        dropped = client.query(PRESENT, k=3, min_confidence=min(1.0, confidence + 1e-3))
        assert dropped.hits == []
        assert dropped.explain["below_min_confidence"] is True
        assert dropped.explain["confidence"] == confidence


def test_the_default_minimum_and_calibration_come_from_settings(shell_store, monkeypatch) -> None:
    monkeypatch.setenv("ANYSHOT_SEARCH__MIN_CONFIDENCE", "1")
    monkeypatch.setenv("ANYSHOT_SEARCH__CONFIDENCE_CALIBRATION", '{"text-image": [2.0, 0.01]}')
    monkeypatch.setenv("ANYSHOT_SEARCH__NO_MATCH_THRESHOLD", "0.25")
    settings = build_settings(store=str(shell_store), workers=0)
    with ImageSearch(settings) as opened:
        result = opened.query(PRESENT, k=3)
        assert result.hits == []
        assert result.explain["calibration"]["source"] == "settings"
        assert result.explain["confidence"] == 0.0 and result.explain["no_match"] is True
        assert result.explain["min_confidence"] == 1.0
        # a request's minimum wins over the setting's
        assert len(opened.search(PRESENT, k=3, min_confidence=0.0)) == 3
        # scales left out keep the built-in calibration
        image = opened.query(similar_to=opened.search(PRESENT, k=1, min_confidence=0)[0].id)
        assert image.explain["calibration"]["source"] == "built-in:anyshot-tiny"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ANYSHOT_SEARCH__MIN_CONFIDENCE", "2"),
        ("ANYSHOT_SEARCH__MIN_CONFIDENCE", "nan"),
        ("ANYSHOT_SEARCH__NO_MATCH_THRESHOLD", "-0.1"),
        ("ANYSHOT_SEARCH__CONFIDENCE_CALIBRATION", '{"text": [0.3, 0.01]}'),
        ("ANYSHOT_SEARCH__CONFIDENCE_CALIBRATION", '{"text-image": [0.3, 0]}'),
        ("ANYSHOT_SEARCH__CONFIDENCE_CALIBRATION", "[1, 2]"),
    ],
)
def test_bad_settings_are_one_line(monkeypatch, variable, value) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        build_settings()
    assert variable in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("value", [2, -0.5, float("nan"), float("inf"), "high", True])
def test_a_bad_min_confidence_is_a_query_error(client, value) -> None:
    with pytest.raises(QueryError, match="min_confidence"):
        client.query(PRESENT, min_confidence=value)


def test_listings_and_text_inside_have_no_confidence(client) -> None:
    listed = client.query(where=["format=PNG"], k=3, min_confidence=1.0)
    assert len(listed.hits) == 3  # nothing compared: the minimum does not apply
    assert listed.explain["confidence"] is None and listed.explain["no_match"] is False
    inside = client.query(ocr="coffee", k=3)
    assert inside.explain["confidence"] is None and inside.explain["no_match"] is False


def test_calibration_for_unknown_models_uses_the_generic_values() -> None:
    generic = calibration_for("ViT-B-32", "text-image")
    assert (generic.centre, generic.step, generic.source) == (
        *CALIBRATIONS["*"]["text-image"],
        "built-in:*",
    )
    assert Calibration(0.3, 0.01, "").confidence(0.3) == 0.5
    assert Calibration(0.3, 0.01, "").confidence(-5.0) == 0.0


# -- the shells ---------------------------------------------------------------------------------


def cli(store: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["search", *args, "--store", str(store)], env=env)


def test_cli_json_explain_carries_confidence_and_no_match(shell_store) -> None:
    result = cli(shell_store, PRESENT, "-k", "3", "--json", "--explain")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [set(line) >= {"id", "uri", "score"} for line in lines[:3]] == [True] * 3
    assert list(lines[3]) == ["explain"]
    explain = lines[3]["explain"]
    assert explain["confidence"] == expected(explain)
    assert explain["no_match"] is (explain["confidence"] < 0.5)
    plain = cli(shell_store, PRESENT, "-k", "3", "--json")
    assert [json.loads(line) for line in plain.stdout.splitlines()] == lines[:3]


def test_cli_table_says_no_confident_match_above_the_results(shell_store) -> None:
    unsure = {"ANYSHOT_SEARCH__CONFIDENCE_CALIBRATION": '{"text-image": [2.0, 0.01]}'}
    result = cli(shell_store, PRESENT, "-k", "2", env=unsure)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "no confident match"
    assert lines[1].split() == ["#", "score", "path"] and len(lines) == 4
    sure = cli(shell_store, PRESENT, "-k", "2", "--explain")
    assert sure.stdout.splitlines()[0].startswith("confidence ")
    assert "no confident match" not in sure.stdout
    dropped = cli(shell_store, PRESENT, "--min-confidence", "1", env=unsure)
    assert dropped.stdout.splitlines() == ["no confident match", "no results"]
    # Nothing within the filters: "no results" says it all.
    empty = cli(shell_store, PRESENT, "--filter", "format=GIF", env=unsure)
    assert empty.stdout.splitlines() == ["no results"]


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        ("2", 1, "error: min_confidence lies in [0, 1], not 2.0"),
        ("-1", 1, "error: min_confidence lies in [0, 1], not -1.0"),
        ("nan", 2, "is not a finite number"),
        ("high", 2, "is not a valid float"),
    ],
)
def test_cli_bad_min_confidence(shell_store, value, code, message) -> None:
    result = cli(shell_store, PRESENT, "--min-confidence", value)
    assert result.exit_code == code
    assert message in result.stderr
    if code == 1:
        assert result.stderr.splitlines() == [message]
    assert "Traceback" not in result.output


def test_http_explain_and_min_confidence(shell_store) -> None:
    with TestClient(create_app(build_settings(store=str(shell_store), workers=0))) as http:
        reply = http.get("/search", params={"q": PRESENT, "k": 3, "explain": True})
        assert reply.status_code == 200
        explain = reply.json()["explain"]
        assert explain["confidence"] == expected(explain)
        assert explain["no_match"] is (explain["confidence"] < 0.5)
        body = {"text": PRESENT, "k": 3, "min_confidence": 1.0, "explain": True}
        strict = http.post("/search", json=body).json()
        if explain["confidence"] < 1.0:
            assert strict["hits"] == [] and strict["explain"]["below_min_confidence"] is True
        first = http.get("/search", params={"q": PRESENT, "k": 1}).json()["hits"][0]
        image = http.get(f"/images/{first['id']}").content
        upload = http.post(
            "/search/image",
            files={"file": ("x.png", image, "image/png")},
            data={"explain": "true", "min_confidence": "0"},
        ).json()
        assert upload["explain"]["score_scale"] == "image-image"
        assert upload["explain"]["min_confidence"] == 0.0
        for bad in ("2", "-0.1", "nan"):
            reply = http.get("/search", params={"q": PRESENT, "min_confidence": bad})
            assert reply.status_code == 422 and "min_confidence" in reply.json()["error"]
        reply = http.post("/search", json={"text": PRESENT, "min_confidence": 7})
        assert reply.status_code == 422 and "\n" not in reply.json()["error"]

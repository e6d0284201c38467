"""Generated visual features end to end: `anyshot generator train`, then `search --generate`
from the CLI, the Python client, HTTP (GET and POST) and the Prefect flow's task, on a real
embedded store indexed with the shipped anyshot-tiny."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runs import run
from fastapi.testclient import TestClient

from indexer.config import build_settings
from indexer.generator import GENERATOR_DOCUMENT, load_generator
from indexer.schema import ModelIdentity
from indexer.shapes.synthetic import generate_collection
from indexer.stores.interface import PayloadFilter
from indexer.stores.opening import open_store
from search.api import create_app
from search.client import ImageSearch
from search.knowledge import KnowledgeBase, KnowledgeEntry

N_IMAGES = 160


@pytest.fixture(scope="module")
def captioned(tmp_path_factory) -> tuple[Path, Path]:
    """(images, store): synthetic scenes with their labels.jsonl, indexed with anyshot-tiny."""
    root = tmp_path_factory.mktemp("generator")
    images = root / "images"
    generate_collection(images, N_IMAGES, seed=11, image_size=64)
    store = root / "store"
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    with ImageSearch(settings) as client:
        assert client.index(images).indexed == N_IMAGES
    return images, store


@pytest.fixture(scope="module")
def trained(captioned, tmp_path_factory) -> tuple[Path, Path, dict]:
    """A copy of the store with a generator trained by the CLI (the JSON summary too)."""
    images, template = captioned
    store = tmp_path_factory.mktemp("trained") / "store"
    shutil.copytree(template, store)
    code, out, err = run("generator", "train", "--store", str(store), "--epochs", "5", "--json")
    assert code == 0, err
    return images, store, json.loads(out)


def copy_store(template: Path, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(template, store)
    return store


def test_train_reports_pairs_and_seconds_and_keeps_the_generator_with_the_store(trained):
    _, store, summary = trained
    assert summary["pairs"] == N_IMAGES  # one labels.jsonl caption per image
    assert summary["images"] == N_IMAGES
    assert summary["sources"] == {"labels.jsonl": N_IMAGES}
    assert isinstance(summary["seconds"], float)
    assert summary["kind"] == "gan" and summary["epochs"] == 5
    assert Path(summary["file"]) == store / "documents" / f"{GENERATOR_DOCUMENT}.json"
    with open_store(build_settings(store=str(store)).store) as opened:
        generator = load_generator(opened)
    assert generator is not None and generator.pairs == N_IMAGES
    assert generator.model.name == "anyshot-tiny" and generator.model.fingerprint


def test_search_name_generate_returns_json_hits(trained):
    _, store, _ = trained
    code, out, err = run(
        "search", "--name", "heart", "--generate", "--store", str(store), "-k", "5", "--json"
    )
    assert code == 0, err
    hits = [json.loads(line) for line in out.strip().splitlines()]
    assert len(hits) == 5
    assert all({"id", "uri", "score"} <= set(hit) for hit in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_text_generate_explain_filters_and_negatives(trained):
    images, store, _ = trained
    settings = build_settings(store=str(store))
    with ImageSearch(settings) as client:
        result = client.query(
            "a red circle",
            generate=True,
            negatives=["a blue square"],
            where=[f"folder={images}"],
            k=4,
        )
        plain = client.query("a red circle", k=4)
        off = client.query("a red circle", generate=False, k=4)
    assert len(result.hits) == 4
    explain = result.explain
    assert explain["route"] == "generated"
    assert explain["generated"]["applied"] is True
    assert explain["generated"]["descriptions"] == ["a red circle"]
    assert explain["generated"]["chunks"] == 1
    assert explain["generated"]["vectors"] == 4  # search.generate_vectors for one description
    assert explain["generated"]["fusion"] == "max"  # the default (best measured)
    assert explain["score_scale"] == "generated-max"
    assert "route" not in plain.explain and "generated" not in off.explain
    assert [h.id for h in off.hits] == [h.id for h in plain.hits]


def test_described_name_generates_per_description_and_long_text_is_chunked(trained):
    _, store, _ = trained
    paragraph = "The vornel is a well-known thing. " + "It was first described long ago. " * 12
    knowledge = KnowledgeBase(
        [KnowledgeEntry("vornel", (), ("a red heart", paragraph + " It is a red heart."))]
    )
    settings = build_settings(store=str(store))
    with ImageSearch(settings, knowledge=knowledge) as client:
        result = client.query(name="vornel", generate=True, k=3)
    generated = result.explain["generated"]
    assert generated["descriptions"] == ["a red heart", paragraph + " It is a red heart."]
    assert generated["chunks"] == 4  # the paragraph's 89 words: 3 chunks of whole sentences
    assert generated["vectors"] == 16
    assert len(result.hits) == 3


def test_setting_turns_generation_on_by_default(trained, monkeypatch):
    _, store, _ = trained
    monkeypatch.setenv("ANYSHOT_SEARCH__GENERATE", "true")
    with ImageSearch(build_settings(store=str(store))) as client:
        assert client.query("a green star", k=2).explain["route"] == "generated"
        image_query = client.query(similar_to=client.search("a green star", k=1)[0].id, k=2)
    assert image_query.explain["generated"] == {
        "applied": False,
        "reason": "only for text and name queries",
    }


def test_generate_without_a_generator_is_one_line_exit_1(captioned):
    _, store = captioned
    code, out, err = run("search", "a red circle", "--generate", "--store", str(store))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "no generator trained" in err
    code, _, _ = run("search", "a red circle", "--no-generate", "--store", str(store))
    assert code == 0


def test_generator_of_another_model_is_refused(trained, tmp_path):
    _, template, _ = trained
    store = copy_store(template, tmp_path)
    with open_store(build_settings(store=str(store)).store) as opened:
        generator = load_generator(opened)
        assert generator is not None
        generator.model = ModelIdentity("anyshot-tiny", None, 64, "0" * 64)
        opened.write_document(GENERATOR_DOCUMENT, generator.to_document())
    code, out, err = run("search", "--name", "heart", "--generate", "--store", str(store))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "trained for model 'anyshot-tiny'" in err
    assert "anyshot generator train" in err


def test_too_few_captions_is_one_line_exit_1_and_keeps_the_collection(tmp_path):
    images = tmp_path / "few"
    generate_collection(images, 12, seed=5, image_size=64)
    store = tmp_path / "store"
    code, _, err = run("index", str(images), "--model", "anyshot-tiny", "--store", str(store))
    assert code == 0, err
    code, out, err = run("generator", "train", "--store", str(store), "--json")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "only 12 captioned images" in err
    code, out, _ = run("search", "a red circle", "--store", str(store), "--json", "-k", "50")
    assert code == 0 and len(out.strip().splitlines()) == 12


def test_captions_file_sidecars_and_bad_files(captioned, tmp_path):
    _, template = captioned
    store = copy_store(template, tmp_path)
    folder = tmp_path / "other"
    paths = generate_collection(folder, 24, seed=8, image_size=64)
    (folder / "labels.jsonl").unlink()  # captions come from the CSV and sidecars only
    for path, spec in paths[:4]:
        path.with_suffix(".txt").write_text(f"a {spec.objects[0].colour} thing")
    table = tmp_path / "captions.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        for path, _ in paths[4:]:
            writer.writerow([f"other/{path.name}", "a shape"])
        writer.writerow(["other/missing.png", "not in the collection"])
    code, _, err = run("index", str(folder), "--store", str(store))
    assert code == 0, err
    code, out, err = run(
        "generator", "train", "--store", str(store), "--captions", str(table), "--epochs", "2",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["sources"] == {"labels.jsonl": N_IMAGES, "file": 20, "sidecar": 4}
    assert summary["pairs"] == N_IMAGES + 24 and summary["skipped"] == 1

    bad = tmp_path / "captions.csv"
    bad.write_text("name,words\nx,y\n")
    code, out, err = run("generator", "train", "--store", str(store), "--captions", str(bad))
    assert code == 1 and err.count("\n") == 1 and "needs an image column" in err
    code, out, err = run(
        "generator", "train", "--store", str(store), "--captions", str(tmp_path / "x.txt")
    )
    assert code == 1 and err.count("\n") == 1


def test_http_get_and_post_take_generate(trained):
    _, store, _ = trained
    settings = build_settings(store=str(store), workers=0)
    with TestClient(create_app(settings)) as http:
        got = http.get("/search", params={"name": "heart", "generate": "true", "explain": "true"})
        posted = http.post("/search", json={"text": "a red circle", "generate": True, "k": 3})
        plain = http.post("/search", json={"text": "a red circle", "generate": False, "k": 3})
    assert got.status_code == 200, got.text
    assert got.json()["explain"]["route"] == "generated"
    assert posted.status_code == 200 and len(posted.json()["hits"]) == 3
    assert {"id", "uri", "score"} <= set(posted.json()["hits"][0])
    assert plain.status_code == 200


def test_http_generate_without_a_generator_is_400(captioned):
    _, store = captioned
    with TestClient(create_app(build_settings(store=str(store), workers=0))) as http:
        reply = http.get("/search", params={"q": "a red circle", "generate": "true"})
    assert reply.status_code == 400
    assert reply.json()["type"] == "QueryError"
    assert "no generator trained" in reply.json()["error"]


def test_flow_task_trains_the_generator(captioned, tmp_path):
    from pipelines.generator_flow import train_generator_task

    _, template = captioned
    store = copy_store(template, tmp_path)
    report = train_generator_task.fn(build_settings(store=str(store)), None, 2)
    assert report["pairs"] == N_IMAGES and report["epochs"] == 2
    with open_store(build_settings(store=str(store)).store) as opened:
        assert load_generator(opened) is not None


def test_edge_batch_search_equals_one_search_per_vector(captioned):
    images, store = captioned
    with open_store(build_settings(store=str(store)).store) as opened:
        vectors = [p.vector for p in opened.scroll(with_vectors=True)][:3]
        where = PayloadFilter(uri_prefix=str(images))
        batch = opened.search_batch(vectors, limit=7, where=where)
        single = [opened.search(v, limit=7, where=where) for v in vectors]
    assert [[(p.id, round(p.score, 5)) for p in ranked] for ranked in batch] == [
        [(p.id, round(p.score, 5)) for p in ranked] for ranked in single
    ]
    assert all(len(ranked) == 7 for ranked in batch)


def test_many_descriptions_are_capped_keeping_each_noise_free_vector(trained, monkeypatch):
    _, store, _ = trained
    descriptions = tuple(f"a red heart number {i}" for i in range(10))
    knowledge = KnowledgeBase([KnowledgeEntry("manyfold", (), descriptions)])
    monkeypatch.setenv("ANYSHOT_SEARCH__GENERATE_MAX_VECTORS", "12")
    with ImageSearch(build_settings(store=str(store)), knowledge=knowledge) as client:
        engine = client.engine
        part = engine._resolve_name("manyfold")
        vectors, used = engine.generated_vectors(part, 4)
        result = client.query(name="manyfold", generate=True, k=3)
    assert used == list(descriptions) and vectors.shape[0] == 40
    noise_free = engine.generator().generate(engine.embed_texts(list(descriptions)), 1)
    assert np.allclose(vectors[:10], noise_free, atol=1e-5)
    assert result.explain["generated"]["vectors"] == 12
    assert len(result.hits) == 3


def test_training_an_empty_store_is_one_line_exit_1(tmp_path):
    code, out, err = run("generator", "train", "--store", str(tmp_path / "none"), "--json")
    assert code == 1 and out == "" and err.count("\n") == 1


def test_a_damaged_generator_is_one_line_and_the_collection_still_answers(trained, tmp_path):
    _, template, _ = trained
    store = copy_store(template, tmp_path)
    document = store / "documents" / f"{GENERATOR_DOCUMENT}.json"
    data = json.loads(document.read_text())
    data["weights"]["w1"]["shape"] = [1, 1]
    document.write_text(json.dumps(data))
    code, out, err = run("search", "a red circle", "--generate", "--store", str(store))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "damaged generator document" in err and "anyshot generator train" in err
    with TestClient(create_app(build_settings(store=str(store), workers=0))) as http:
        reply = http.get("/search", params={"q": "a red circle", "generate": "true"})
        plain = http.get("/search", params={"q": "a red circle", "k": 3})
    assert reply.status_code == 400 and reply.json()["type"] == "QueryError"
    assert plain.status_code == 200 and len(plain.json()["hits"]) == 3


def test_generated_search_says_its_confidence_and_honours_min_confidence(trained):
    """The confidence is the plain query's (its scale), so generated and plain routes agree."""
    _, store, _ = trained
    with ImageSearch(build_settings(store=str(store))) as client:
        generated = client.query("a red circle", generate=True, k=3)
        plain = client.query("a red circle", k=3)
        strict = client.query("a red circle", generate=True, k=3, min_confidence=1.0)
    assert generated.explain["route"] == "generated"
    assert generated.explain["confidence"] == plain.explain["confidence"]
    assert generated.explain["no_match"] == plain.explain["no_match"]
    assert generated.hits
    assert strict.hits == [] and strict.explain["below_min_confidence"] is True

"""Text inside images as users meet it: `anyshot index --ocr`, then `anyshot search --ocr`, the
Python client's ``ocr=`` and the HTTP ``ocr``; the text-only pass over a store indexed before;
bad queries and a page of 10,000 words."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runs import json_lines, run
from fastapi.testclient import TestClient
from text_images import load_font, photo_without_text, render_text_image

from indexer.config import build_settings
from indexer.errors import QueryError
from indexer.ocr import MAX_TEXT_CHARS, TextReader
from indexer.schema import point_id
from indexer.stores.opening import open_store
from search.api import create_app
from search.client import ImageSearch

SIGNS = {
    "coffee": ("coffee", "receipt"),
    "museum": ("museum", "ticket"),
    "harbour": ("harbour", "coffee", "market"),
}
"""Images with text: file stem -> the words written in it."""


def write_signs(folder: Path) -> None:
    """Three clear signs on photo-like backgrounds and two photos without text."""
    folder.mkdir(parents=True)
    rng = random.Random(7)
    for stem, words in SIGNS.items():
        image = render_text_image(rng, words, font_size=48, panel=True).image
        image.save(folder / f"{stem}.jpg", quality=92)
    for i in range(2):
        photo_without_text(rng).save(folder / f"plain{i}.jpg", quality=92)


def stems(hits: list[dict]) -> list[str]:
    return [Path(h["uri"]).stem for h in hits]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, random_model_name: str) -> tuple[Path, str]:
    """(folder, store): the signs indexed with --ocr through the CLI, as the contract says."""
    root = tmp_path_factory.mktemp("signs")
    write_signs(root / "photos")
    store = str(root / "store")
    code, out, _ = run(
        "index", str(root / "photos"), "--model", random_model_name, "--store", store, "--ocr"
    )
    assert code == 0, out
    code, out, _ = run("index", str(root / "photos"), "--store", store, "--ocr", "--json")
    assert code == 0
    report = json.loads(out.strip().splitlines()[-1])
    assert report["indexed"] == 0 and report["ocr"]["looked"] == 0  # read once, not again
    return root / "photos", store


def test_search_ocr_finds_the_images_holding_the_word(indexed) -> None:
    _, store = indexed
    code, out, _ = run("search", "--ocr", "coffee", "--store", store, "-k", "5", "--json")
    assert code == 0
    hits = json_lines(out)
    assert sorted(stems(hits)) == ["coffee", "harbour"]
    assert all({"id", "uri", "score"} <= hit.keys() and hit["score"] == 1.0 for hit in hits)
    assert "coffee" in hits[0]["payload"]["text"].lower()


def test_matching_ignores_case_and_one_wrong_letter(indexed) -> None:
    _, store = indexed
    for query in ("MUSEUM", "museun", "musem"):
        code, out, _ = run("search", "--ocr", query, "--store", store, "--json")
        assert code == 0 and stems(json_lines(out)) == ["museum"], query


def test_score_is_the_fraction_of_words_best_first(indexed) -> None:
    _, store = indexed
    code, out, _ = run("search", "--ocr", "coffee market", "--store", store, "--json")
    hits = json_lines(out)
    assert code == 0
    assert [(Path(h["uri"]).stem, h["score"]) for h in hits] == [
        ("harbour", 1.0),
        ("coffee", 0.5),
    ]


def test_ocr_combines_with_a_description_and_filters(indexed) -> None:
    _, store = indexed
    code, out, _ = run(
        "search", "a receipt", "--ocr", "coffee", "--filter", "format=JPEG", "--store", store,
        "--json",
    )  # fmt: skip
    assert code == 0 and sorted(stems(json_lines(out))) == ["coffee", "harbour"]
    code, out, _ = run(
        "search", "a receipt", "--ocr", "coffee", "--filter", "format=PNG", "--store", store,
        "--json",
    )  # fmt: skip
    assert code == 0 and json_lines(out) == []
    code, out, _ = run("search", "--ocr", "coffee", "--filter", "has=text", "--store", store)
    assert code == 0 and "harbour" in out


def test_has_text_lists_the_images_with_text(indexed) -> None:
    _, store = indexed
    code, out, _ = run("search", "--filter", "has=text", "--store", store, "-k", "10", "--json")
    assert code == 0 and sorted(stems(json_lines(out))) == sorted(SIGNS)


@pytest.mark.parametrize(
    ("query", "message"),
    [("", "at least one word"), ("?!", "at least one word"), ("word " * 900, "")],
)
def test_bad_ocr_queries_are_one_line_errors(indexed, query: str, message: str) -> None:
    _, store = indexed
    code, out, err = run("search", "--ocr", query, "--store", store)
    assert code == 1 and out == ""
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_python_client_and_http_api(indexed, random_model_name: str) -> None:
    _, store = indexed
    settings = build_settings(store=store, model=random_model_name)
    with ImageSearch(settings) as client:
        hits = client.search(ocr="Ticket")
        assert [Path(h.uri).stem for h in hits] == ["museum"]
        hits = client.search("a sign", ocr="coffee", where="has=text", k=1)
        assert len(hits) == 1 and Path(hits[0].uri).stem in {"coffee", "harbour"}
        with pytest.raises(QueryError):
            client.search(ocr="")
    with TestClient(create_app(settings)) as http:
        reply = http.get("/search", params={"ocr": "receipt"})
        assert reply.status_code == 200
        assert [Path(h["uri"]).stem for h in reply.json()["hits"]] == ["coffee"]
        reply = http.post("/search", json={"ocr": "harbour", "text": "a harbour"})
        assert reply.status_code == 200 and len(reply.json()["hits"]) == 1
        reply = http.get("/search", params={"ocr": ""})
        assert reply.status_code == 400 and "at least one word" in reply.text


def test_ocr_on_an_existing_store_reads_text_without_re_embedding(
    tmp_path: Path, random_model_name: str
) -> None:
    write_signs(tmp_path / "photos")
    store = str(tmp_path / "store")
    code, out, _ = run(
        "index", str(tmp_path / "photos"), "--model", random_model_name, "--store", store,
        "--json",
    )  # fmt: skip
    assert code == 0 and "ocr" not in json.loads(out.strip().splitlines()[-1])
    uri = str(tmp_path / "photos" / "museum.jpg")
    settings = build_settings(store=store)
    with open_store(settings.store) as vector_store:
        before = vector_store.retrieve([point_id(uri)], with_vectors=True)[0]
        assert "text" not in vector_store.info().extra["payload_indexes"]  # no OCR, no cost
    assert "text" not in before.payload
    code, out, _ = run("index", str(tmp_path / "photos"), "--store", store, "--ocr", "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["indexed"] == 0 and report["unchanged"] == 5
    assert report["ocr"]["looked"] == 5 and report["ocr"]["with_text"] == 3
    assert report["ocr"]["gated"] >= 1  # a plain photo costs the gate's look only
    with open_store(settings.store) as vector_store:
        after = vector_store.retrieve([point_id(uri)], with_vectors=True)[0]
        assert "text" in vector_store.info().extra["payload_indexes"]  # full-text index
    assert "museum" in after.payload["text"].lower() and after.payload["ocr_version"] == 1
    assert np.array_equal(after.vector, before.vector)
    assert after.payload["sha256"] == before.payload["sha256"]


def test_an_in_memory_store_reads_and_searches_text(tmp_path: Path, random_model_name: str) -> None:
    write_signs(tmp_path / "photos")
    settings = build_settings(store=":memory:", model=random_model_name, ocr=True)
    with ImageSearch(settings) as client:
        report = client.index(tmp_path / "photos", runner="inline")
        assert report.ocr is not None and report.ocr.with_text == 3
        assert [Path(h.uri).stem for h in client.search(ocr="tickets")] == ["museum"]
        hits = client.search(image=tmp_path / "photos" / "coffee.jpg", ocr="coffee")
        assert Path(hits[0].uri).stem == "coffee"  # the image ranks equal matches


def test_a_page_of_ten_thousand_words_is_cut_to_the_limits() -> None:
    from PIL import Image, ImageDraw

    rng = random.Random(3)
    page = Image.new("RGB", (1_600, 1_600), "white")
    draw = ImageDraw.Draw(page)
    font = load_font(7)
    written = 0
    for line in range(200):  # 200 lines of 50 words: 10,000 words in small print
        words = [rng.choice(["coffee", "museum", "ticket", "market", "tea"]) for _ in range(50)]
        draw.text((4, 2 + line * 8), " ".join(words), font=font, fill="black")
        written += len(words)
    assert written == 10_000
    reader = TextReader(gate=False, max_seconds=2.0)
    started = time.perf_counter()
    reading = reader.read(page)
    assert time.perf_counter() - started < 30  # detection, then at most one chunk past 2 s
    assert reading.cut and 0 < len(reading.text) <= MAX_TEXT_CHARS


def test_runs_without_ocr_never_import_the_engine(tmp_path: Path, random_model_name: str) -> None:
    write_signs(tmp_path / "photos")
    code = f"""
import sys
from click.testing import CliRunner
from search.cli import main
r = CliRunner().invoke(main, ["index", {str(tmp_path / "photos")!r}, "--model",
    {random_model_name!r}, "--store", {str(tmp_path / "store")!r}])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(main, ["search", "a sign", "--store", {str(tmp_path / "store")!r}])
assert r.exit_code == 0, r.output
print("rapidocr_onnxruntime" in sys.modules, "cv2" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["False", "False"]

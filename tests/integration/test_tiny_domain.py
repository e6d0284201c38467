"""anyshot-tiny warns when asked for words outside its domain of coloured shapes."""

from __future__ import annotations

import logging
import random
import shutil

import pytest

from indexer.config import build_settings
from indexer.shapes import synthetic
from search.client import ImageSearch
from search.domain_words import domain_words, unknown_words
from search.engine import PROMPT_TEMPLATES

ENGINE_LOG = "search.engine"


@pytest.fixture
def tiny_client(tiny_store_template, tmp_path):
    _, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    with ImageSearch(build_settings(store=str(store))) as client:
        yield client


def test_the_vocabulary_holds_every_word_of_the_training_captions() -> None:
    rng = random.Random(0)
    words = set()
    for spec in synthetic.sample_scenes(4000, seed=1):
        words.update(synthetic.caption_scene(spec, rng).replace(",", " ").split())
    for template in PROMPT_TEMPLATES:
        words.update(template.format("").replace(".", " ").split())
    assert words - domain_words() == set()
    assert unknown_words("Two small GREEN stars, on a polka-dot background.") == []
    assert unknown_words("a dog on a beach with a dog") == ["dog", "beach"]


def test_words_outside_the_domain_warn_once_per_client(tiny_client, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=ENGINE_LOG)
    result = tiny_client.query("a dog on a beach", k=3)
    assert len(result.hits) == 3
    [warning] = result.explain["warnings"]
    assert warning.startswith("anyshot-tiny knows only coloured shapes")
    assert "not 'dog', 'beach':" in warning
    again = tiny_client.query("a dog on a beach", k=3)
    assert again.explain["warnings"] == [warning]
    logged = [r.getMessage() for r in caplog.records if r.name == ENGINE_LOG]
    assert logged == [warning]


def test_words_of_the_domain_and_concepts_do_not_warn(tiny_client, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=ENGINE_LOG)
    assert "warnings" not in tiny_client.query("two small green stars", k=3).explain
    assert "warnings" not in tiny_client.query(name="heart", k=3).explain
    hit = tiny_client.search("a red circle", k=1)[0]
    tiny_client.add_concept("my favourite", [hit.id])
    assert "warnings" not in tiny_client.query(name="my favourite", k=3).explain
    named = tiny_client.query(name="giraffe", k=3).explain["warnings"]
    assert "not 'giraffe':" in named[0]
    assert [r.name for r in caplog.records if r.name == ENGINE_LOG] == [ENGINE_LOG]


def test_other_models_do_not_warn(random_model_name, image_folder, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=ENGINE_LOG)
    settings = build_settings(store=":memory:", model=random_model_name, workers=0)
    with ImageSearch(settings) as client:
        client.index(image_folder["red"].parent)
        assert "warnings" not in client.query("a dog on a beach", k=2).explain
    assert not [r for r in caplog.records if r.name == ENGINE_LOG]

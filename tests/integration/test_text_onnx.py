"""The text tower exported to ONNX: the same vectors and rankings as torch, a cache keyed by the
weights, damaged files re-exported, and the client choosing its text path by ``text_runtime``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.config import ModelSettings, build_settings
from indexer.embed import Embedder
from indexer.errors import ModelError
from indexer.query_model import QueryModel, find_text_tower
from indexer.schema import ModelIdentity
from indexer.text_onnx import (
    OnnxTextTower,
    TextTowerKey,
    TextTowerUnusable,
    load_text_tower,
    text_tower_path,
    tower_key_for_collection,
)
from indexer.text_onnx_export import export_text_tower
from search.client import ImageSearch

TEXTS = [
    "a red circle",
    "two small green stars on a striped blue background!",
    "a large blue ring",
    "a cyan heart",
    "a",
    "a photo of a " + "very " * 90 + "yellow star",  # fills the whole context
]
QUERIES = ["a red circle", "a cyan heart", "a blue ring", "a black star", "a green square"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def towers(tiny) -> dict[str, OnnxTextTower]:
    embedder, settings = tiny
    return {
        precision: OnnxTextTower(export_text_tower(embedder, settings, precision))
        for precision in ("fp32", "int8")
    }


@pytest.fixture
def store(tiny_store_template, tmp_path) -> Path:
    _, template = tiny_store_template
    copy = tmp_path / "store"
    shutil.copytree(template, copy)
    return copy


def client_settings(store: Path, cache: Path, **model: object):
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    fields = {"precision": "fp32", "cache_dir": cache, **model}
    return settings.model_copy(update={"model": settings.model.model_copy(update=fields)})


def test_onnx_vectors_match_torch(tiny, towers) -> None:
    embedder, _ = tiny
    exact = embedder.embed_texts(TEXTS)
    fp32 = towers["fp32"].embed_texts(TEXTS)
    int8 = towers["int8"].embed_texts(TEXTS)
    assert fp32.dtype == np.float32 and fp32.shape == exact.shape
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert cosines(exact, fp32).min() > 0.999
    assert cosines(exact, int8).min() > 0.99
    # one text at a time (each trimmed to its own length) gives the batch's vectors
    single = np.concatenate([towers["fp32"].embed_texts([t]) for t in TEXTS])
    assert np.abs(single - fp32).max() < 1e-5


def test_a_random_model_matches_too(embedder, tmp_path) -> None:
    settings = embedder.settings.model_copy(update={"cache_dir": tmp_path})
    tower = OnnxTextTower(export_text_tower(embedder, settings, "fp32"))
    assert cosines(embedder.embed_texts(TEXTS), tower.embed_texts(TEXTS)).min() > 0.999
    assert tower.info.key.fingerprint == embedder.identity.fingerprint
    assert (tower.info.dim, tower.info.image_size) == (embedder.dim, embedder.image_size)


@pytest.mark.parametrize("loaded_as", ["bf16", "int8"])
def test_a_model_loaded_in_another_precision_exports_its_fp32_weights(tiny, tmp_path, loaded_as):
    exact, _ = tiny
    settings = ModelSettings(name="anyshot-tiny", precision=loaded_as, cache_dir=tmp_path)
    tower = OnnxTextTower(export_text_tower(Embedder(settings), settings, "fp32"))
    assert cosines(exact.embed_texts(TEXTS), tower.embed_texts(TEXTS)).min() > 0.999


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_same_top_k_on_the_shape_collection(tiny, towers, tiny_store_template, precision):
    from indexer.stores.opening import open_store

    embedder, _ = tiny
    _, template = tiny_store_template
    settings = build_settings(store=str(template), model="anyshot-tiny")
    store = open_store(settings.store)
    try:
        for query in QUERIES:
            exact = store.search(embedder.embed_texts([query])[0], limit=10)
            onnx = store.search(towers[precision].embed_texts([query])[0], limit=10)
            if precision == "fp32":
                assert [p.id for p in onnx] == [p.id for p in exact], query
                continue
            # int8 moves scores by about 1e-3, so two images that tie that closely may swap
            # (two black stars, with the issue 15 weights): the same ten, and where the order
            # differs, the exact scores were within 0.01.
            assert {p.id for p in onnx} == {p.id for p in exact}, query
            score = {p.id: p.score for p in exact}
            for a, b in zip(onnx, exact, strict=True):
                assert a.id == b.id or abs(score[a.id] - b.score) < 0.01, query
    finally:
        store.close()


def test_the_cache_is_keyed_by_the_weights(tiny, towers, embedder) -> None:
    tiny_embedder, settings = tiny
    own = tower_key_for_collection(settings, tiny_embedder.identity)
    assert own is not None and load_text_tower(settings, own) is not None
    # another model's collection finds nothing, though anyshot-tiny's towers are cached
    other = embedder.identity
    assert tower_key_for_collection(settings, other) is None  # the settings name anyshot-tiny
    other_settings = settings.model_copy(update={"name": other.name})
    other_key = tower_key_for_collection(other_settings, other)
    assert other_key is not None and other_key != own
    assert load_text_tower(other_settings, other_key) is None
    # the same name with other weights (a retrained anyshot-tiny) finds nothing either
    retrained = ModelIdentity(
        own.name, own.pretrained, tiny_embedder.dim, fingerprint="0123456789abcdef"
    )
    assert tower_key_for_collection(settings, retrained) is None  # the file on disk differs
    stale = TextTowerKey.for_identity(retrained, own.precision)
    assert load_text_tower(settings, stale) is None
    # a file under another key's name is refused, not used
    shutil.copy(text_tower_path(settings, own), text_tower_path(settings, stale))
    with pytest.raises(TextTowerUnusable, match="was exported for"):
        load_text_tower(settings, stale)
    text_tower_path(settings, stale).unlink()


def test_a_model_without_a_fingerprint_is_never_cached() -> None:
    identity = ModelIdentity("ViT-B-32", "laion2b_s34b_b79k", 512, fingerprint=None)
    with pytest.raises(ModelError, match="no local weights file"):
        TextTowerKey.for_identity(identity, "fp32")
    assert tower_key_for_collection(ModelSettings(), identity) is None


def test_a_text_query_exports_the_tower_and_the_next_client_uses_it(store, tmp_path) -> None:
    settings = client_settings(store, tmp_path / "cache")
    with ImageSearch(settings) as first:
        hits = first.query("a red circle", k=5).hits
        assert isinstance(first.engine.embedder, Embedder)  # nothing cached: torch
    with ImageSearch(settings) as second:
        assert isinstance(second.engine.embedder, QueryModel)
        assert second._embedder is None  # no torch model loaded
        again = second.query("a red circle", k=5).hits
        assert [h.id for h in again] == [h.id for h in hits]
        assert np.allclose([h.score for h in again], [h.score for h in hits], atol=1e-5)
        # an example image loads the model then, and searches the same space
        by_image = second.query(image=Path(hits[0].uri), k=1).hits
        assert by_image[0].id == hits[0].id
        assert isinstance(second._embedder, Embedder)


def test_an_index_run_exports_the_tower(tiny_store_template, tmp_path) -> None:
    images, _ = tiny_store_template
    settings = client_settings(tmp_path / "store", tmp_path / "cache")
    with ImageSearch(settings) as client:
        client.index(images)
        key = TextTowerKey.for_identity(client.embedder.identity, "fp32")
    assert text_tower_path(settings.model, key).is_file()


def test_a_damaged_cache_file_is_exported_again(store, tmp_path) -> None:
    settings = client_settings(store, tmp_path / "cache")
    with ImageSearch(settings) as client:
        client.query("a red circle", k=3)
    [cached] = (tmp_path / "cache").rglob("*.onnx")
    cached.write_bytes(b"\x00 not an onnx graph" * 100)
    with ImageSearch(settings) as client:
        hits = client.query("a red circle", k=3).hits  # answered by torch
        assert isinstance(client.engine.embedder, Embedder) and len(hits) == 3
    with ImageSearch(settings) as client:
        assert isinstance(client.engine.embedder, QueryModel)
        assert [h.id for h in client.query("a red circle", k=3).hits] == [h.id for h in hits]


def test_text_runtime_torch_keeps_torch(store, tmp_path) -> None:
    cache = tmp_path / "cache"
    with ImageSearch(client_settings(store, cache)) as client:
        client.query("a red circle", k=1)
    assert list(cache.rglob("*.onnx"))
    with ImageSearch(client_settings(store, cache, text_runtime="torch")) as client:
        assert isinstance(client.engine.embedder, Embedder)


def test_text_runtime_onnx_exports_at_once(store, tmp_path) -> None:
    with ImageSearch(client_settings(store, tmp_path / "cache", text_runtime="onnx")) as client:
        assert isinstance(client.engine.embedder, QueryModel)
        assert client.query("a red circle", k=3).hits


def test_text_runtime_onnx_without_a_fingerprint_says_why(tmp_path) -> None:
    from indexer.stores.opening import open_store

    settings = client_settings(":memory:", tmp_path / "cache", text_runtime="onnx")
    store = open_store(settings.store)
    store.bind_model(ModelIdentity("anyshot-tiny", None, 128, fingerprint=None))
    with (
        ImageSearch(settings, store=store) as client,
        pytest.raises(ModelError, match=r"text_runtime is onnx, but .* no local weights file"),
    ):
        client.engine  # noqa: B018 - building it is the check
    store.close()


def test_find_text_tower_ignores_other_models(tiny, towers) -> None:
    _, settings = tiny
    identity = ModelIdentity("anyshot-tiny", None, 128, fingerprint="ffffffffffffffff")
    assert find_text_tower(settings, identity) == (None, None)


def test_tagging_through_the_tower_needs_no_model(tiny_store_template, tmp_path) -> None:
    _, template = tiny_store_template
    labels = ["a red shape", "a blue shape", "a green shape", "a yellow shape"]
    cache = tmp_path / "cache"
    reports, loaded = {}, {}
    for runtime in ("onnx", "torch", "auto"):  # the first exports the tower
        store = tmp_path / runtime / "store"
        shutil.copytree(template, store)
        with ImageSearch(client_settings(store, cache, text_runtime=runtime)) as client:
            reports[runtime] = client.tag(labels, top=1)
            loaded[runtime] = client._embedder is not None
    assert loaded == {"onnx": True, "torch": True, "auto": False}
    assert reports["auto"].counts == reports["torch"].counts


def test_a_failed_export_is_noted_and_not_tried_again(store, tmp_path, caplog) -> None:
    settings = client_settings(store, tmp_path / "cache")
    blocker = tmp_path / "cache" / "anyshot"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the cache folder should be")
    with ImageSearch(settings) as client:
        assert client.query("a red circle", k=1).hits  # the search itself is unaffected
    assert "cannot export its text tower" in caplog.text
    blocker.unlink()
    notes = list((tmp_path / "cache").rglob("*.failed"))
    assert notes == []  # the note could not be written either: the next query tries again
    with ImageSearch(settings) as client:
        client.query("a red circle", k=1)
    assert list((tmp_path / "cache").rglob("*.onnx"))


def test_a_noted_failure_is_not_retried(store, tmp_path) -> None:
    from indexer.export_cache import failure_note

    settings = client_settings(store, tmp_path / "cache")
    with ImageSearch(settings) as client:
        client.embedder  # noqa: B018 - load it, to know its key
        key = TextTowerKey.for_identity(client.embedder.identity, "fp32")
        note = failure_note(text_tower_path(settings.model, key))
        note.parent.mkdir(parents=True)
        note.write_text("TextTowerUnsupported: ...\n")
        assert client.export_text_tower() is None
    assert not text_tower_path(settings.model, key).exists()
    note.unlink()
    with ImageSearch(settings) as client:
        client.embedder  # noqa: B018
        assert client.export_text_tower() == text_tower_path(settings.model, key)

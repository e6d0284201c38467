"""The image tower exported to ONNX: the vectors and rankings of torch, index runs that need no
torch once it is cached, a cache keyed by the model settings and checked against the weights,
stale or damaged files exported again, and ``image_runtime`` choosing the path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.config import ModelSettings, build_settings
from indexer.cpu import int8_weight_type
from indexer.discover import discover
from indexer.embed import Embedder
from indexer.errors import ConfigError
from indexer.image_onnx import (
    ImageTowerUnusable,
    OnnxImageModel,
    find_image_tower,
    image_tower_key,
    image_tower_path,
    load_image_tower,
    onnx_image_precision,
)
from indexer.image_onnx_export import export_image_tower
from indexer.prepare import ImageJob
from search.client import ImageSearch

QUERIES = ["a red circle", "a cyan heart", "a blue ring", "a black star", "a green square"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def towers(tiny) -> dict[str, OnnxImageModel]:
    embedder, settings = tiny
    return {
        precision: OnnxImageModel(export_image_tower(embedder, settings, precision), settings)
        for precision in ("fp32", "int8")
    }


@pytest.fixture(scope="module")
def collection_pixels(tiny, tiny_store_template) -> np.ndarray:
    """The 120 shape images of the tiny collection, as the decoding workers make them."""
    embedder, _ = tiny
    images, _ = tiny_store_template
    jobs = [ImageJob(record) for record in discover(images)]
    return embedder.pixel_pipeline(max_pixels=10**8).prepare(jobs).pixels


def client_settings(store: Path | str, cache: Path, **model: object):
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    fields = {"precision": "int8", "cache_dir": cache, **model}
    return settings.model_copy(update={"model": settings.model.model_copy(update=fields)})


def test_onnx_vectors_match_torch(tiny, towers, collection_pixels) -> None:
    embedder, _ = tiny
    exact = embedder.embed_pixels(collection_pixels)
    fp32 = towers["fp32"].embed_pixels(collection_pixels)
    int8 = towers["int8"].embed_pixels(collection_pixels)
    assert fp32.dtype == np.float32 and fp32.shape == exact.shape
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert cosines(exact, fp32).min() > 0.9999
    assert cosines(exact, int8).min() > 0.99
    # any batch size gives the same vectors (the batch is dynamic in the graph)
    single = np.concatenate([towers["fp32"].embed_pixels(p[None]) for p in collection_pixels[:5]])
    assert np.abs(single - fp32[:5]).max() < 1e-5
    assert towers["int8"].info.cosine_to_fp32 > 0.99
    assert towers["int8"].info.key.weight_type == int8_weight_type()


def test_a_random_vit_matches_too(embedder, tmp_path) -> None:
    settings = embedder.settings.model_copy(update={"cache_dir": tmp_path})
    tower = OnnxImageModel(export_image_tower(embedder, settings, "fp32"), settings)
    pixels = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert cosines(embedder.embed_pixels(pixels), tower.embed_pixels(pixels)).min() > 0.9999
    assert tower.identity == embedder.identity
    assert (tower.dim, tower.image_size) == (embedder.dim, embedder.image_size)


@pytest.mark.parametrize("loaded_as", ["bf16", "int8"])
def test_a_model_loaded_in_another_precision_exports_its_fp32_weights(
    tiny, collection_pixels, tmp_path, loaded_as
) -> None:
    exact, _ = tiny
    settings = ModelSettings(name="anyshot-tiny", precision=loaded_as, cache_dir=tmp_path)
    tower = OnnxImageModel(export_image_tower(Embedder(settings), settings, "fp32"), settings)
    pixels = collection_pixels[:16]
    assert cosines(exact.embed_pixels(pixels), tower.embed_pixels(pixels)).min() > 0.9999


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_same_top_k_on_the_shape_collection(tiny, towers, collection_pixels, precision):
    embedder, _ = tiny
    size = len(collection_pixels)  # one batch: int8 activation scales are per batch
    exact = embedder.embed_pixels(collection_pixels, batch_size=size)
    onnx = towers[precision].embed_pixels(collection_pixels, batch_size=size)
    for query in embedder.embed_texts(QUERIES):
        scores = exact @ query
        top, got = np.argsort(-scores)[:10], np.argsort(-onnx @ query)[:10]
        if precision == "fp32":
            assert list(got) == list(top)
            continue
        # int8: the same ranking up to near ties (the collection holds each target pair three
        # times): the image int8 puts at each rank scores within 0.01 of the exact one there
        assert abs(scores[got] - scores[top]).max() < 0.01
        assert len(set(got) & set(top)) >= 8


def test_the_cache_is_keyed_by_the_settings_and_checked_against_the_weights(
    random_model_dir, tmp_path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(random_model_dir, folder)
    settings = ModelSettings(name=f"local-dir:{folder}", precision="fp32", cache_dir=tmp_path)
    export_image_tower(Embedder(settings), settings, "fp32")
    assert find_image_tower(settings, "fp32") is not None
    assert find_image_tower(settings, "int8") is None  # another precision: not exported
    keys = {
        image_tower_key(settings, "fp32"),
        image_tower_key(settings, "int8"),
        image_tower_key(settings.model_copy(update={"cache_dir": tmp_path / "x"}), "fp32"),
        image_tower_key(settings.model_copy(update={"pretrained": "other.safetensors"}), "fp32"),
    }
    assert len(keys) == 4
    # the model retrained in place: the export no longer fits its weights
    weights = folder / "open_clip_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"retrain!")
    with pytest.raises(ImageTowerUnusable, match="changed since"):
        load_image_tower(settings, image_tower_key(settings, "fp32"))
    assert find_image_tower(settings, "fp32") is None  # logged, treated as missing
    weights.unlink()
    with pytest.raises(ImageTowerUnusable, match="is gone"):
        load_image_tower(settings, image_tower_key(settings, "fp32"))


def test_a_relative_local_dir_finds_the_same_export(random_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(random_model_dir.parent)
    relative = ModelSettings(name=f"local-dir:{random_model_dir.name}", cache_dir=tmp_path)
    absolute = relative.model_copy(update={"name": f"local-dir:{random_model_dir}"})
    assert image_tower_key(relative, "int8") == image_tower_key(absolute, "int8")


def test_a_file_under_another_keys_name_is_refused(tiny, towers) -> None:
    _, settings = tiny
    other = settings.model_copy(update={"pretrained": "/elsewhere/weights.safetensors"})
    target = image_tower_path(other, image_tower_key(other, "fp32"))
    shutil.copy(towers["fp32"].path, target)
    with pytest.raises(ImageTowerUnusable, match="was exported for"):
        load_image_tower(other, image_tower_key(other, "fp32"))
    target.unlink()


def test_which_settings_run_images_on_onnx(monkeypatch) -> None:
    monkeypatch.setenv("ANYSHOT_CPU_FLAGS", "fpu sse2 avx avx2 fma")  # an AVX2-only CPU
    assert onnx_image_precision(ModelSettings(device="cpu")) == "int8"
    assert onnx_image_precision(ModelSettings(device="cpu", precision="fp32")) == "fp32"
    assert onnx_image_precision(ModelSettings(device="cpu", precision="bf16")) is None
    assert onnx_image_precision(ModelSettings(device="cuda")) is None
    assert onnx_image_precision(ModelSettings(device="cpu", image_runtime="torch")) is None
    monkeypatch.setenv("ANYSHOT_CPU_FLAGS", "fpu sse2 avx avx2 avx512f amx_tile avx512_bf16")
    assert onnx_image_precision(ModelSettings(device="cpu")) is None  # auto is bf16 there


def test_int8_weights_follow_the_cpu() -> None:
    assert int8_weight_type(frozenset({"avx2", "fma"})) == "QUInt8"
    assert int8_weight_type(frozenset({"avx2", "avx512_vnni"})) == "QInt8"
    assert int8_weight_type(frozenset({"avx2", "avx_vnni"})) == "QInt8"


def vectors_by_uri(store) -> dict[str, np.ndarray]:
    return {p.payload["uri"]: p.vector for p in store.scroll(with_vectors=True)}


@pytest.fixture
def images(tiny_store_template, tmp_path) -> Path:
    source, _ = tiny_store_template
    copy = tmp_path / "images"
    shutil.copytree(source, copy)
    return copy


def test_the_first_run_exports_and_the_next_runs_without_the_model(images, tmp_path) -> None:
    settings = client_settings(tmp_path / "store", tmp_path / "cache")
    with ImageSearch(settings) as client:
        first = client.index(images)
        assert isinstance(client._embedder, Embedder)  # nothing cached: torch
        identity = client.store.model()
        before = vectors_by_uri(client.store)
    assert list((tmp_path / "cache").rglob("image-towers/*-int8-*.onnx"))
    renamed = images / "renamed.png"
    shutil.copy(next(iter(sorted(images.iterdir()))), renamed)
    with ImageSearch(settings) as client:
        second = client.index(images)
        assert client._embedder is None  # the export embedded the new image: no torch model
        assert client.store.model() == identity
        after = vectors_by_uri(client.store)
        assert client.info().precision == "int8"
    assert (first.indexed, second.indexed, second.unchanged) == (120, 1, 120)
    copied = before[str(next(iter(sorted(images.iterdir()))).resolve())]
    assert float(after[str(renamed.resolve())] @ copied) > 0.99  # torch int8 vs ONNX int8
    assert all(np.array_equal(after[uri], vector) for uri, vector in before.items())


def test_image_runtime_torch_keeps_torch_and_exports_nothing(images, tmp_path) -> None:
    settings = client_settings(tmp_path / "store", tmp_path / "cache", image_runtime="torch")
    with ImageSearch(settings) as client:
        client.index(images)
        assert isinstance(client._embedder, Embedder)
    assert not list((tmp_path / "cache").rglob("image-towers/*.onnx"))


def test_image_runtime_onnx_exports_before_the_first_run(images, tmp_path) -> None:
    settings = client_settings(tmp_path / "store", tmp_path / "cache", image_runtime="onnx")
    with ImageSearch(settings) as client:
        assert client.index(images).indexed == 120
    assert list((tmp_path / "cache").rglob("image-towers/*-int8-*.onnx"))


def test_image_runtime_onnx_in_bf16_says_why_not(images, tmp_path) -> None:
    settings = client_settings(
        tmp_path / "store", tmp_path / "cache", image_runtime="onnx", precision="bf16"
    )
    with ImageSearch(settings) as client, pytest.raises(ConfigError, match="fp32 or int8"):
        client.index(images)


def test_a_damaged_export_is_replaced_after_a_run_on_torch(images, tmp_path, caplog) -> None:
    settings = client_settings(tmp_path / "store", tmp_path / "cache")
    with ImageSearch(settings) as client:
        client.index(images)
    [cached] = (tmp_path / "cache").rglob("image-towers/*.onnx")
    cached.write_bytes(b"\x00 not an onnx graph" * 100)
    (images / "more.png").write_bytes(
        (images / sorted(p.name for p in images.iterdir())[0]).read_bytes()
    )
    with ImageSearch(settings) as client:
        assert client.index(images).indexed == 1  # on torch, with a warning
        assert isinstance(client._embedder, Embedder)
    assert "cannot use the image tower" in caplog.text
    assert load_image_tower(settings.model, image_tower_key(settings.model, "int8")) is not None


def test_a_failed_export_is_noted_and_the_run_still_succeeds(images, tmp_path, caplog) -> None:
    cache = tmp_path / "cache"
    settings = client_settings(tmp_path / "store", cache)
    target = image_tower_path(settings.model, image_tower_key(settings.model, "int8"))
    target.mkdir(parents=True)  # a folder where the file should go: the export cannot land
    with ImageSearch(settings) as client:
        assert client.index(images).indexed == 120
    assert "index runs of anyshot-tiny stay on torch: cannot export its image tower" in caplog.text
    assert list(cache.rglob("image-towers/*.failed"))

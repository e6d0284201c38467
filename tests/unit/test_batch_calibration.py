"""The forward batch measured fastest on this machine: chosen, cached, and never paid by a query."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from indexer.batch_calibration import (
    CACHE_NAME,
    CALIBRATE_FROM,
    CPU_CANDIDATES,
    UNCALIBRATED_BATCH,
    BatchCalibration,
    measure_best_batch,
)
from indexer.config import ModelSettings, default_cache_dir
from indexer.embed import Embedder


def test_the_fastest_batch_per_image_wins() -> None:
    calls: list[int] = []

    def embed(pixels: np.ndarray) -> None:  # 16 costs a quarter per image of the others
        calls.append(len(pixels))
        time.sleep(len(pixels) * (0.0005 if len(pixels) == 16 else 0.002))

    best, rates = measure_best_batch(embed, 4)
    assert best == 16
    assert set(rates) == set(CPU_CANDIDATES)
    assert calls[0] == CPU_CANDIDATES[0]  # the warm-up call
    assert len(calls) == 1 + 2 * len(CPU_CANDIDATES)


def test_a_slow_model_stops_at_the_budget() -> None:
    calls: list[int] = []

    def embed(pixels: np.ndarray) -> None:
        calls.append(len(pixels))
        time.sleep(0.05)

    best, rates = measure_best_batch(embed, 4, budget=0.08)
    assert len(rates) < len(CPU_CANDIDATES) and best in rates


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "anyshot" / CACHE_NAME


def test_an_index_sized_call_measures_once_and_keeps_it(cache_home) -> None:
    embedder = Embedder(ModelSettings(name="anyshot-tiny", precision="fp32"))
    pixels = np.zeros((CALIBRATE_FROM, embedder.image_size, embedder.image_size, 3), np.uint8)
    assert embedder.embed_pixels(pixels).shape == (CALIBRATE_FROM, embedder.dim)
    kept = json.loads(cache_home.read_text())
    ((key, entry),) = kept.items()
    assert "anyshot-tiny" in key and "fp32" in key
    assert entry["batch"] in CPU_CANDIDATES
    # Another process of the same model reads it, whatever the call's size.
    kept[key]["batch"] = 16
    cache_home.write_text(json.dumps(kept))
    again = Embedder(ModelSettings(name="anyshot-tiny", precision="fp32"))
    assert again.image_batch_size(1) == 16
    # Another precision is another entry.
    int8 = Embedder(ModelSettings(name="anyshot-tiny", precision="int8"))
    assert int8.image_batch_size(1) == UNCALIBRATED_BATCH


def test_a_query_image_never_pays_for_a_measurement(cache_home) -> None:
    embedder = Embedder(ModelSettings(name="anyshot-tiny", precision="fp32"))
    pixels = np.zeros((3, embedder.image_size, embedder.image_size, 3), np.uint8)
    embedder.embed_pixels(pixels)
    assert embedder.image_batch_size(3) == UNCALIBRATED_BATCH
    assert not cache_home.exists()


def test_a_set_batch_size_is_used_as_is(cache_home) -> None:
    embedder = Embedder(ModelSettings(name="anyshot-tiny", precision="fp32", batch_size=5))
    assert embedder.image_batch_size(1000) == 5
    assert not cache_home.exists()


def test_a_damaged_or_unwritable_cache_is_only_a_cache(cache_home, tmp_path) -> None:
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("{not json")
    calibration = BatchCalibration()
    assert calibration.path == default_cache_dir() / CACHE_NAME
    assert calibration.cached("anything") is None
    calibration.store("k", 16, {16: 10.0})
    assert calibration.cached("k") == 16
    cache_home.write_text(json.dumps({"k": {"batch": "lots"}}))
    assert calibration.cached("k") is None
    blocked = BatchCalibration(tmp_path / "a-file" / CACHE_NAME)
    (tmp_path / "a-file").write_text("")
    blocked.store("k", 8, {8: 1.0})  # logged, not raised
    assert blocked.cached("k") is None


def test_an_index_run_measures_before_its_workers_start(cache_home, tmp_path) -> None:
    from indexer.config import build_settings
    from search.client import ImageSearch
    from tests.shape_collection import write_shape_images

    images = tmp_path / "images"
    write_shape_images(images, CALIBRATE_FROM + 6)
    settings = build_settings(store=str(tmp_path / "store"), model="anyshot-tiny", workers=1)
    settings.model.precision = "fp32"
    with ImageSearch(settings) as client:
        assert client.index(images).indexed == CALIBRATE_FROM + 6
        batch = client.embedder.image_batch_size(1)
    ((key, entry),) = json.loads(cache_home.read_text()).items()
    assert "anyshot-tiny" in key and entry["batch"] == batch

"""Preparing images for the model in worker processes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image

from indexer.decode import load_image
from indexer.discover import discover
from indexer.embed import Embedder
from indexer.prepare import ImageJob, ResizeCrop, prepare_batches, split_batches
from indexer.schema import ImageRecord


@pytest.mark.parametrize("size", [(100, 80), (80, 100), (32, 32), (31, 200), (1000, 7)])
def test_resize_crop_matches_torchvision(size: tuple[int, int]) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    reference = T.Compose(
        [T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32)]
    )
    np.testing.assert_array_equal(np.asarray(ResizeCrop(32)(image)), np.asarray(reference(image)))
    assert ResizeCrop(32, mode="squash")(image).size == (32, 32)


def test_workers_and_model_preprocessing_agree(embedder: Embedder, image_folder) -> None:
    jobs = [ImageJob(record) for record in discover(image_folder["red"].parent)]
    pipeline = embedder.pixel_pipeline(max_pixels=10**8)
    batch = pipeline.prepare(jobs)
    assert batch.pixels.shape == (6, 32, 32, 3) and batch.pixels.dtype == np.uint8
    images = [load_image(r.uri, target_size=embedder.image_size).image for r in batch.records]
    np.testing.assert_allclose(
        embedder.embed_pixels(batch.pixels), embedder.embed_images(images), atol=1e-5
    )
    assert [p["uri"] for p in batch.payloads] == [r.uri for r in batch.records]


def test_batches_come_back_in_order_from_worker_processes(embedder: Embedder, image_folder) -> None:
    records = list(discover(image_folder["red"].parent))
    jobs = [ImageJob(record) for record in records * 5]
    pipeline = embedder.pixel_pipeline(max_pixels=10**8)
    in_process = list(prepare_batches(jobs, pipeline, batch_size=4, workers=0))
    in_workers = list(prepare_batches(jobs, pipeline, batch_size=4, workers=2))
    assert [len(b) for b in in_workers] == [4] * 7 + [2]
    assert [r.uri for b in in_workers for r in b.records] == [j.record.uri for j in jobs]
    for left, right in zip(in_process, in_workers, strict=True):
        np.testing.assert_array_equal(left.pixels, right.pixels)


def test_unchanged_content_and_bad_files(embedder: Embedder, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 40), "red").save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    [good_record] = discover(good)
    [bad_record] = discover(bad)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    batch = embedder.pixel_pipeline(max_pixels=10**8).prepare(
        [ImageJob(good_record, known_sha256=digest), ImageJob(bad_record)]
    )
    assert batch.records == []
    assert batch.same_content == [
        {"uri": str(good), "size": good_record.size, "mtime": good_record.mtime}
    ]
    assert [(s.uri, s.reason) for s in batch.skipped] == [
        (str(bad), "not an image (cannot identify format)")
    ]


def test_split_batches() -> None:
    jobs = [ImageJob(ImageRecord(f"/p/{i}.jpg")) for i in range(7)]
    assert [len(b) for b in split_batches(jobs, 3)] == [3, 3, 1]
    assert split_batches([], 3) == []

"""Preparing images for the model in worker processes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image
from worker_faults import DieOnWidth, HangOnWidth

from indexer import prepare as prepare_module
from indexer.decode import load_image
from indexer.discover import discover
from indexer.embed import Embedder
from indexer.photo_metadata import METADATA_VERSION
from indexer.prepare import (
    WORKER_CRASHED,
    ImageJob,
    PreparedBatch,
    ResizeCrop,
    prepare_batches,
    split_batches,
)
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
    # Same content: its new size and mtime, and its metadata (none here, but read once).
    assert batch.same_content == [
        {
            "uri": str(good),
            "size": good_record.size,
            "mtime": good_record.mtime,
            "meta_version": METADATA_VERSION,
        }
    ]
    assert [(s.uri, s.reason) for s in batch.skipped] == [
        (str(bad), "not an image (cannot identify format)")
    ]


def test_split_batches() -> None:
    jobs = [ImageJob(ImageRecord(f"/p/{i}.jpg")) for i in range(7)]
    assert [len(b) for b in split_batches(jobs, 3)] == [3, 3, 1]
    assert split_batches([], 3) == []


# -- files that take too long, or kill or hang their worker -------------------------------------


def write_images(folder: Path, widths: list[int]) -> list[ImageJob]:
    folder.mkdir(parents=True, exist_ok=True)
    for index, width in enumerate(widths):
        Image.new("RGB", (width, 30), (index * 40, 100, 200)).save(folder / f"{index:02d}.png")
    return [ImageJob(record) for record in discover(folder)]


def outcome(batches: list[PreparedBatch]) -> list[tuple[list[str], list[tuple[str, str]]]]:
    return [
        ([Path(r.uri).name for r in b.records], [(Path(s.uri).name, s.reason) for s in b.skipped])
        for b in batches
    ]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_past_its_decode_deadline_is_skipped(
    embedder: Embedder, tmp_path: Path, workers: int
) -> None:
    jobs = write_images(tmp_path, [40, 41, 42])
    Image.new("RGB", (6000, 6000), "green").save(tmp_path / "01.png")  # ~0.4 s to decode
    pipeline = embedder.pixel_pipeline(max_pixels=10**8, decode_timeout=0.1)

    batches = list(prepare_batches(jobs, pipeline, batch_size=2, workers=workers))

    assert outcome(batches) == [
        (["00.png"], [("01.png", "took longer than 0.1 s to read and decode")]),
        (["02.png"], []),
    ]
    assert batches[0].pixels.shape == (1, 32, 32, 3)


def test_a_file_that_kills_its_worker_is_skipped_and_the_run_goes_on(
    embedder: Embedder, tmp_path: Path
) -> None:
    jobs = write_images(tmp_path, [40, 41, 42, 13, 44, 45, 46])
    base = embedder.pixel_pipeline(max_pixels=10**8)
    assert isinstance(base.pil_steps, ResizeCrop)
    pipeline = replace(base, pil_steps=DieOnWidth(13, base.pil_steps))

    batches = list(prepare_batches(jobs, pipeline, batch_size=2, workers=2))

    assert outcome(batches) == [
        (["00.png", "01.png"], []),
        (["02.png"], [("03.png", WORKER_CRASHED)]),
        (["04.png", "05.png"], []),
        (["06.png"], []),
    ]
    in_process = list(prepare_batches(jobs[:3], base, batch_size=2, workers=0))
    np.testing.assert_array_equal(batches[1].pixels, in_process[1].pixels)


@pytest.mark.slow
def test_a_file_that_hangs_its_worker_is_skipped(
    embedder: Embedder, tmp_path: Path, monkeypatch
) -> None:
    """A hang the deadline's signal cannot interrupt (as inside C code): the worker is killed
    once its batch runs past the deadline plus a grace, the batch is redone file by file."""
    monkeypatch.setattr(prepare_module, "WORKER_START_GRACE", 8.0)
    jobs = write_images(tmp_path, [40, 13, 42, 43])
    base = embedder.pixel_pipeline(max_pixels=10**8, decode_timeout=0.5)
    pipeline = replace(base, pil_steps=HangOnWidth(13, base.pil_steps))

    batches = list(prepare_batches(jobs, pipeline, batch_size=2, workers=2))

    assert outcome(batches) == [
        (["00.png"], [("01.png", "took longer than 0.5 s to read and decode")]),
        (["02.png", "03.png"], []),
    ]


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    """A process started like a decoding worker exits when its parent is killed."""
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import os, sys, time\\n"
        "from indexer.prepare import die_with_parent\\n"
        "die_with_parent(int(sys.argv[1]))\\n"
        "print(os.getpid(), flush=True)\\n"
        "time.sleep(600)', str(os.getpid())], stdout=sys.stdout)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child_pid):
        time.sleep(0.05)
    assert not _alive(child_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def test_ramped_batches_start_small_and_keep_every_job_in_order() -> None:
    from indexer.prepare import ramped_batches
    from indexer.schema import ImageRecord

    jobs = [ImageJob(ImageRecord(f"/x/{i}.png", 1, 0.0)) for i in range(300)]
    batches = ramped_batches(jobs, 128)
    assert [len(b) for b in batches] == [16, 32, 64, 128, 60]
    assert [job for batch in batches for job in batch] == jobs
    assert [len(b) for b in ramped_batches(jobs[:20], 8)] == [8, 8, 4]
    assert ramped_batches([], 128) == []

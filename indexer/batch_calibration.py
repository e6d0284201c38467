"""The forward batch size that embeds images fastest on this machine, measured once and cached.

The best batch differs by CPU, model and precision by more than anyone would guess: on 2 AVX2
cores ONNX Runtime runs ViT-B-32-256 1.4x faster per image at batch 8 than at 64, and on a
Sapphire Rapids core pair torch's int8 ViT-B-32 runs 80 img/s at batch 8-16 but 30 at 32-64,
while bf16 is fastest at 32. So with ``ModelSettings.batch_size = "auto"`` the first large
embedding call times each candidate on random pixels (a few seconds, once) and the choice is
kept in ``$XDG_CACHE_HOME/anyshot/batch-sizes.json``, keyed by CPU, threads, model and
precision. Delete the file to measure again; set ``ANYSHOT_MODEL__BATCH_SIZE`` to choose.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.config import default_cache_dir
from indexer.cpu import cpu_flags, cpu_model_name

logger = logging.getLogger(__name__)

CPU_CANDIDATES = (8, 16, 32, 64)
"""Forward batch sizes tried on a CPU, smallest first."""

CUDA_BATCH = 256
"""Forward batch on CUDA (not calibrated: a GPU wants big batches)."""

UNCALIBRATED_BATCH = 32
"""Forward batch while no measurement exists and a call is too small to take one."""

CALIBRATE_FROM = 64
"""Embedding calls with at least this many images measure the candidates when none is cached."""

BUDGET_SECONDS = 8.0
"""Calibration stops trying larger batches once it has spent this long."""

CACHE_NAME = "batch-sizes.json"
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx_vnni")


def machine_key(threads: int) -> str:
    """The CPU (model name and the flags that change kernels) and the thread count."""
    flags = ",".join(flag for flag in RELEVANT_FLAGS if flag in cpu_flags())
    return f"{cpu_model_name()} [{flags}] x{threads}"


class BatchCalibration:
    """Measured forward batch sizes, one per machine, model and precision.

    Args:
        path: The JSON file that keeps them; None: ``default_cache_dir() / CACHE_NAME``.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_dir() / CACHE_NAME

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def cached(self, key: str) -> int | None:
        """The batch size measured for ``key``, or None."""
        entry = self._read().get(key)
        batch = entry.get("batch") if isinstance(entry, dict) else None
        return batch if isinstance(batch, int) and 1 <= batch <= 4096 else None

    def store(self, key: str, batch: int, rates: dict[int, float]) -> None:
        """Keep a measurement (atomically; a cache that cannot be written is only logged)."""
        data = self._read()
        data[key] = {
            "batch": batch,
            "images_per_second": {str(size): round(rate, 2) for size, rate in rates.items()},
            "measured": time.time(),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(data, indent=2))
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning("cannot keep the batch calibration in %s: %s", self.path, exc)


def measure_best_batch(
    embed: Callable[[np.ndarray], object],
    image_size: int,
    *,
    candidates: tuple[int, ...] = CPU_CANDIDATES,
    budget: float = BUDGET_SECONDS,
) -> tuple[int, dict[int, float]]:
    """Time ``embed`` on random pixels at each candidate batch size; the fastest per image.

    Each candidate runs twice (the better run counts: a busy machine only slows runs down)
    after one unmeasured warm-up call; larger candidates are dropped once ``budget`` seconds
    are spent.

    Returns:
        (best batch size, images per second of each measured candidate)
    """
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (max(candidates), image_size, image_size, 3), dtype=np.uint8)
    started = time.perf_counter()
    embed(pixels[: candidates[0]])  # first-call costs (allocations, kernel choice) go here
    rates: dict[int, float] = {}
    for _ in range(2):
        for size in candidates:
            if size not in rates and time.perf_counter() - started > budget:
                break
            begun = time.perf_counter()
            embed(pixels[:size])
            rates[size] = max(rates.get(size, 0.0), size / (time.perf_counter() - begun))
    best = max(rates, key=lambda size: rates[size])
    return best, rates


def calibrated_batch(
    key: str, count: int, embed: Callable[[np.ndarray], object], image_size: int
) -> int | None:
    """The forward batch kept for ``key``; else, when ``count`` images are many enough to be an
    index run's batch (:data:`CALIBRATE_FROM`: a query image never pays for a measurement),
    measured now with ``embed`` and kept; else None."""
    calibration = BatchCalibration()
    batch = calibration.cached(key)
    if batch is None and count >= CALIBRATE_FROM:
        batch, rates = measure_best_batch(embed, image_size)
        logger.info(
            "forward batch %d measured fastest (%s img/s)",
            batch,
            ", ".join(f"{size}: {rate:.1f}" for size, rate in rates.items()),
        )
        calibration.store(key, batch, rates)
    return batch

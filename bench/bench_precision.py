"""Benchmark: the image tower per precision and forward batch on this CPU, with cosine to fp32.

Random weights (speed does not depend on their values), saved once as a ``local-dir`` model
under ``--work``. Each precision's :class:`indexer.embed.Embedder` embeds the same random
pixels at each batch size; rounds alternate between precisions and the best round counts (a
busy machine only slows runs down). Also prints what ``auto`` picks here and the batch the
calibration (:mod:`indexer.batch_calibration`) would choose, and a text query's time per
precision of the text tower.

    python bench/bench_precision.py [--model ViT-B-32] [--precisions fp32,bf16,int8]
                                    [--batches 8,16,32,64] [--images 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

OPENAI_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}
QUERIES = ["a dog on a beach", "two people riding bicycles in the rain", "a red car", "sunset"]


def random_model(arch: str, work: Path) -> str:
    """A ``local-dir`` model of ``arch`` with random weights (made once)."""
    folder = work / f"random-{arch}"
    if not (folder / "open_clip_model.safetensors").is_file():
        import open_clip
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        model = open_clip.create_model(arch, pretrained=None)
        state = {key: value.contiguous() for key, value in model.state_dict().items()}
        save_file(state, str(folder / "open_clip_model.safetensors"))
        config = {
            "model_cfg": open_clip.get_model_config(arch),
            "preprocess_cfg": OPENAI_PREPROCESS,
        }
        (folder / "open_clip_config.json").write_text(json.dumps(config))
    return f"local-dir:{folder}"


def machine() -> str:
    from indexer.cpu import cpu_flags, resolve_cpu_precision

    name = next(
        (line.partition(":")[2].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown CPU",
    )  # fmt: skip
    flags = [f for f in ("avx2", "avx512_vnni", "avx512_bf16", "amx_tile") if f in cpu_flags()]
    return (
        f"{name}, {os.cpu_count()} cores, flags {' '.join(flags) or 'none'}; auto precision "
        f"here: {resolve_cpu_precision('auto')}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--precisions", default="fp32,bf16,int8")
    parser.add_argument("--batches", default="8,16,32,64")
    parser.add_argument("--images", type=int, default=64, help="images per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--onnx", default="", help="ONNX image towers too: e.g. fp32,int8")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "anyshot-bench")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # open_clip's notes on random weights
    import torch

    from indexer.batch_calibration import measure_best_batch
    from indexer.config import ModelSettings
    from indexer.embed import Embedder

    print(machine(), f"torch threads {torch.get_num_threads()}\n")
    name = random_model(args.model, args.work)
    precisions = args.precisions.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    embedders: dict = {p: Embedder(ModelSettings(name=name, precision=p)) for p in precisions}
    for precision in filter(None, args.onnx.split(",")):
        from indexer.image_onnx import OnnxImageModel
        from indexer.image_onnx_export import export_image_tower

        settings = ModelSettings(name=name, precision=precision, cache_dir=args.work / "onnx")
        tower = OnnxImageModel(
            export_image_tower(embedders[precisions[0]], settings, precision), settings
        )
        embedders[f"onnx-{precision} ({tower.info.key.weight_type})"] = tower
    size = next(iter(embedders.values())).image_size
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (max(args.images, max(batches)), size, size, 3), dtype=np.uint8)
    reference = embedders[precisions[0]].embed_pixels(pixels[:16], batch_size=16)
    rates: dict[tuple[str, int], float] = {}
    for embedder in embedders.values():
        embedder.embed_pixels(pixels[: batches[0]], batch_size=batches[0])  # warm-up
    for _ in range(args.rounds):
        for precision, embedder in embedders.items():
            for batch in batches:
                started, done = time.perf_counter(), 0
                while done < args.images:
                    embedder.embed_pixels(pixels[:batch], batch_size=batch)
                    done += batch
                rate = done / (time.perf_counter() - started)
                rates[precision, batch] = max(rates.get((precision, batch), 0.0), rate)
    header = ["precision", *(f"batch {b} img/s" for b in batches), "best", "cosine to "
              f"{precisions[0]} (min)", "calibration picks", "text query ms"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("| --- " + "| ---: " * (len(header) - 1) + "|")
    for precision, embedder in embedders.items():
        vectors = embedder.embed_pixels(pixels[:16], batch_size=16)
        cosine = float((vectors * reference).sum(axis=1).min())
        best = max(batches, key=lambda b: rates[precision, b])
        picked, _ = measure_best_batch(
            lambda batch, model=embedder: model.embed_pixels(batch, batch_size=len(batch)), size
        )
        text_ms, label = "", precision
        if isinstance(embedder, Embedder):
            embedder.embed_texts(QUERIES[:1])
            started = time.perf_counter()
            for _ in range(3):
                for query in QUERIES:
                    embedder.embed_texts([query])
            text_ms = f"{(time.perf_counter() - started) / (3 * len(QUERIES)) * 1000:.1f}"
            label = f"{precision} (text {embedder.text_precision})"
        cells = [f"{rates[precision, b]:.1f}" for b in batches]
        print(f"| {label} | {' | '.join(cells)} | {best} | {cosine:.5f} | {picked} | "
              f"{text_ms} |")  # fmt: skip
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

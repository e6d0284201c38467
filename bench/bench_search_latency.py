"""Text query latency on the embedded store (Qdrant Edge) at 100k and 1M points; print a table.

Run from the repository root (not in CI)::

    HF_HUB_OFFLINE=1 python bench/bench_search_latency.py --sizes 100000 1000000 \\
        --work /tmp/anyshot-latency

The model is the default architecture, ViT-B-32, with random weights (speed does not depend on
their values; pretrained weights cannot be downloaded here), run as the search path runs it
(:class:`indexer.embed.Embedder`, the machine's precision). The store holds random clustered
512-d unit vectors (1,000 clusters), built once per size under ``--work`` and reused by later
runs: building 1M points and their HNSW index takes several minutes.

Each query is a distinct text, so every one misses the engine's text-embedding cache: p50/p99
count the text encoding (tokenize + text tower) every time. A second pass repeats the texts to
show the cached case separately. Time is split into text encoding and the store search (plus
the engine's own work); peak memory is the process's maximum RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 512
CLUSTERS = 1000
CHUNK = 20_000
OPENAI_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
}
WORDS = [
    "dog",
    "cat",
    "beach",
    "sunset",
    "mountain",
    "city",
    "car",
    "bicycle",
    "child",
    "forest",
    "river",
    "boat",
    "bridge",
    "street",
    "market",
    "kitchen",
    "garden",
    "flower",
    "bird",
    "horse",
    "snow",
    "desert",
    "lake",
    "train",
    "airport",
    "church",
    "castle",
]
ADJECTIVES = [
    "red",
    "old",
    "small",
    "large",
    "happy",
    "busy",
    "quiet",
    "green",
    "golden",
    "dark",
    "bright",
    "wet",
]


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="Text query latency on Qdrant Edge.")
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=200, help="timed queries per size")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--text-int8", action="store_true", help="int8 text tower (ANYSHOT_MODEL__TEXT_INT8)"
    )
    p.add_argument(
        "--text-runtime",
        choices=["torch", "onnx"],
        default="torch",
        help="onnx: the exported text tower (what searches use once it is cached), at the "
        "machine's text precision (int8 where the precision is int8, or with --text-int8)",
    )
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "anyshot-latency")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    return p.parse_args()


def max_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_vit_b32(folder: Path) -> str:
    """ViT-B-32 with random weights in open_clip's local-dir format; return its model name."""
    import open_clip
    from safetensors.torch import save_file

    if not (folder / "open_clip_model.safetensors").exists():
        folder.mkdir(parents=True, exist_ok=True)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
        config = {
            "model_cfg": open_clip.get_model_config("ViT-B-32"),
            "preprocess_cfg": OPENAI_PREPROCESS,
        }
        (folder / "open_clip_config.json").write_text(json.dumps(config))
    return f"local-dir:{folder}"


def build_store(folder: Path, n: int, identity) -> dict[str, float]:
    """Fill an Edge store with ``n`` clustered unit vectors and build its index."""
    from indexer.stores.edge import EdgeStore

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    started = time.perf_counter()
    with EdgeStore(folder) as store:
        store.bind_model(identity)
        for start in range(0, n, CHUNK):
            count = min(CHUNK, n - start)
            vectors = centres[rng.integers(0, CLUSTERS, count)] + 0.6 / np.sqrt(DIM) * rng.normal(
                size=(count, DIM)
            ).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = list(range(start, start + count))
            payloads = [
                {"uri": f"/data/{i // 1000}/{i}.jpg", "size": 100_000 + i, "format": "JPEG"}
                for i in ids
            ]
            store.upsert(ids, vectors, payloads)
        upserted = time.perf_counter()
        store.optimize()
        store.flush()
    done = time.perf_counter()
    (folder / "bench-complete").write_text(str(n))
    return {"upsert_s": upserted - started, "optimize_s": done - upserted}


def queries(count: int, seed: int) -> list[str]:
    """Distinct query texts."""
    rng = np.random.default_rng(seed)
    texts: set[str] = set()
    while len(texts) < count:
        a, b = rng.choice(WORDS, 2, replace=False)
        texts.add(f"a {rng.choice(ADJECTIVES)} {a} near a {b} {int(rng.integers(0, 10**6))}")
    return sorted(texts)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and mean, in milliseconds."""
    array = np.asarray(values) * 1000
    return float(np.percentile(array, 50)), float(np.percentile(array, 99)), float(array.mean())


def measure(engine, texts: list[str], k: int) -> dict[str, list[float]]:
    """Time each query: encode (cache miss), then the rest of the engine's query."""
    from search.query import QueryPart

    times: dict[str, list[float]] = {
        "total": [],
        "encode": [],
        "search": [],
        "cached": [],
        "cpu": [],
    }
    for text in texts:
        c0, t0 = time.process_time(), time.perf_counter()
        engine.embed_texts([text])  # a miss: every text is new
        t1 = time.perf_counter()
        engine.query([QueryPart("text", text)], k=k)  # the cache now answers the encoding
        t2, c2 = time.perf_counter(), time.process_time()
        times["encode"].append(t1 - t0)
        times["search"].append(t2 - t1)
        times["total"].append(t2 - t0)
        times["cpu"].append(c2 - c0)
    for text in texts:
        t0 = time.perf_counter()
        engine.query([QueryPart("text", text)], k=k)
        times["cached"].append(time.perf_counter() - t0)
    times["encode_full"] = encode_full_context(engine.embedder, texts)
    return times


def encode_full_context(embedder, texts: list[str]) -> list[float]:
    """Time open_clip's own ``encode_text`` (all 77 positions), for comparison."""
    import torch

    embedder = getattr(embedder, "embedder", embedder)  # a QueryModel's torch model
    if embedder.text_int8:  # open_clip's encode_text cannot run the quantized tower
        return [float("nan")]
    timings = []
    with torch.inference_mode():
        for text in texts:
            t0 = time.perf_counter()
            embedder.model.encode_text(embedder._tokenizer([text]))
            timings.append(time.perf_counter() - t0)
    return timings


def main() -> None:
    """Build (or reuse) the stores, time the queries, print the table."""
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from indexer.config import ModelSettings, SearchSettings
    from indexer.embed import Embedder
    from indexer.stores.edge import EdgeStore
    from search.engine import SearchEngine

    args.work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    rss_start = max_rss_mb()
    settings = ModelSettings(
        name=save_vit_b32(args.work / "vit-b-32-random"),
        text_int8=True if args.text_int8 else None,
        threads=args.threads,
    )
    embedder = Embedder(settings)
    rss_model = max_rss_mb()
    print(
        f"model ViT-B-32 (random weights) on {embedder.runtime.device}, images "
        f"{embedder.image_precision}, texts {embedder.text_precision}, {args.threads} threads; "
        f"RSS {rss_model:.0f} MB ({rss_model - rss_start:.0f} MB for torch + model)"
    )
    if args.text_runtime == "onnx":
        from indexer.query_model import QueryModel
        from indexer.text_onnx import TextTowerKey, load_text_tower, text_precision
        from indexer.text_onnx_export import export_text_tower

        key = TextTowerKey.for_identity(embedder.identity, text_precision(settings))
        export_text_tower(embedder, settings, key.precision)
        tower = load_text_tower(settings, key, threads=args.threads)
        loaded = embedder
        embedder = QueryModel(tower, lambda: loaded)
        print(f"text queries through the ONNX text tower ({key.precision}): {tower.path}")
    rows = []
    for size in args.sizes:
        folder = args.work / f"edge-{size}"
        build = None
        if not (folder / "bench-complete").exists():
            if folder.exists():
                raise SystemExit(f"{folder} is incomplete: delete it and run again")
            print(f"building {size:,} points in {folder} ...", flush=True)
            build = build_store(folder, size, embedder.identity)
            print(
                f"  upsert {build['upsert_s']:.0f} s, optimize {build['optimize_s']:.0f} s",
                flush=True,
            )
        opened = time.perf_counter()
        store = EdgeStore(folder)
        open_s = time.perf_counter() - opened
        engine = SearchEngine(store, embedder, SearchSettings())
        measure(engine, queries(args.warmup, seed=size + 1), args.k)  # warm up caches and pages
        times = measure(engine, queries(args.queries, seed=size), args.k)
        info = store.info()
        store.close()
        rows.append(
            {
                "points": size,
                "indexed": info.indexed_vectors,
                "open_s": open_s,
                "build": build,
                "peak_rss_mb": max_rss_mb(),
                **{name: percentiles(values) for name, values in times.items()},
            }
        )

    print(
        f"\nload average at start {load:.1f}, now {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    print(
        f"{'points':>9} {'p50 ms':>7} {'p99 ms':>7} {'encode p50':>10} {'search p50':>10} "
        f"{'search p99':>10} {'cached p50':>10} {'full-ctx encode p50':>19} {'CPU p50':>7} "
        f"{'peak RSS MB':>11}"
    )
    for row in rows:
        print(
            f"{row['points']:>9,} {row['total'][0]:7.1f} {row['total'][1]:7.1f} "
            f"{row['encode'][0]:10.1f} {row['search'][0]:10.2f} {row['search'][1]:10.2f} "
            f"{row['cached'][0]:10.2f} {row['encode_full'][0]:19.1f} {row['cpu'][0]:7.1f} "
            f"{row['peak_rss_mb']:11.0f}"
        )
    print(
        "\np50/p99: distinct texts (every one a cache miss), embedding included; encode: "
        "tokenize + text tower; search: the engine's query with the text cached (store search "
        "+ engine); cached: a repeated text end to end; full-ctx encode: open_clip's "
        "encode_text over all 77 positions, which the trimmed encoder replaces; CPU: "
        "process CPU time of a query (with --threads 1, the wall time on an idle core)."
    )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()

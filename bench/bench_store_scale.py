"""Benchmark: memory, disk, speed and recall of a Qdrant Edge store per collection layout.

For each layout (ScaleSettings) it builds an embedded store of ``--points`` clustered unit
vectors of ``--dim`` dimensions with anyshot payloads (upsert in batches, then ``optimize()``
builds HNSW), then, in a fresh child process (so the numbers are the store's own):

- *RAM*: resident anonymous memory (RssAnon) and resident file pages (RssFile, the memory-mapped
  storage that queries touched) after opening the store and running the queries, each minus the
  same process's figure before opening;
- *disk*: allocated blocks under the store folder (Qdrant Edge pre-allocates sparse files),
  also per component (full vectors and their quantized copy, HNSW graph, payload, payload
  indexes, WAL);
- *query*: p50 latency of single-vector top-10 searches (after 50 warm-up queries);
- *recall@10* against exact brute force over the same vectors.

Per-million figures extrapolate linearly from two sizes, ``--small`` and ``--points`` points:
a store has a fixed part (WAL and pre-allocated files, thread pools) and a part that grows with
the count (vectors, HNSW links, payloads). Data: ``--clusters`` Gaussian clusters around shared
centres, like image embeddings of a photo collection; queries are perturbed stored vectors'
neighbours drawn from the same distribution.

    python bench/bench_store_scale.py [--points 100000] [--dim 512] [--queries 300]
                                      [--layouts none,scalar,binary] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS: dict[str, dict[str, Any]] = {
    "none": {"quantization": "none"},
    "scalar": {"quantization": "scalar", "on_disk_vectors": True},
    "binary": {
        "quantization": "binary",
        "on_disk_vectors": True,
        "quantization_oversampling": 16.0,
    },
}


def clustered(points: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    rows = centres[rng.integers(0, clusters, points)]
    rows += 0.6 * rng.normal(size=rows.shape).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def payload(i: int) -> dict[str, Any]:
    return {
        "uri": f"/data/photos/2026/11/{i // 1000:04d}/IMG_{i:08d}.jpg",
        "size": 2_000_000 + i,
        "mtime": 1.7e9 + i,
        "sha256": f"{i:064x}",
        "width": 4032,
        "height": 3024,
        "format": "JPEG",
        "tags": [],
    }


def status() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"RssAnon", "RssFile", "VmHWM"}:
            fields[key] = int(value.split()[0]) * 1024
    return fields


def disk_bytes(folder: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())


def disk_by_component(folder: Path) -> dict[str, int]:
    """Allocated bytes per part of a shard: segment parts summed over segments, the WAL."""
    sizes: dict[str, int] = {}
    for f in folder.rglob("*"):
        if f.is_file():
            parts = f.relative_to(folder).parts
            in_segment = len(parts) > 4 and parts[1] == "segments"
            key = parts[3] if in_segment else "/".join(parts[:2])
            sizes[key] = sizes.get(key, 0) + f.stat().st_blocks * 512
    return sizes


def build(location: str, layout: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    from indexer.config import ScaleSettings
    from indexer.schema import ModelIdentity
    from indexer.stores.edge import EdgeStore

    vectors = clustered(args.points, args.dim, args.clusters, seed=0)
    identity = ModelIdentity(name="bench", pretrained=None, dim=args.dim, fingerprint="bench")
    started = time.perf_counter()
    with EdgeStore(location, scale=ScaleSettings(**layout)) as store:
        store.bind_model(identity)
        for start in range(0, args.points, 5000):
            stop = min(start + 5000, args.points)
            store.upsert(
                list(range(start, stop)),
                vectors[start:stop],
                [payload(i) for i in range(start, stop)],
            )
        upserted = time.perf_counter()
        store.optimize()
        optimized = time.perf_counter()
    return {"upsert_s": upserted - started, "optimize_s": optimized - upserted}


def measure(location: str, layout: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from indexer.config import ScaleSettings
    from indexer.stores.edge import EdgeStore

    vectors = clustered(args.points, args.dim, args.clusters, seed=0)
    rng = np.random.default_rng(1)
    queries = clustered(args.queries, args.dim, args.clusters, seed=0)  # same centres
    queries = queries[rng.permutation(len(queries))]
    queries += 0.05 * rng.normal(size=queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in queries]
    before = status()
    opened = time.perf_counter()
    with EdgeStore(location, scale=ScaleSettings(**layout)) as store:
        open_s = time.perf_counter() - opened
        for q in queries[:50]:
            store.search(q, limit=10)
        latencies, recalls = [], []
        for q, expected in zip(queries, truth, strict=True):
            t = time.perf_counter()
            hits = store.search(q, limit=10)
            latencies.append(time.perf_counter() - t)
            recalls.append(len({h.id for h in hits} & expected) / 10)
        after = status()
        info = store.info()
    return {
        "open_s": open_s,
        "rss_anon": after["RssAnon"] - before["RssAnon"],
        "rss_file": after["RssFile"] - before["RssFile"],
        "disk": disk_bytes(Path(location)),
        "disk_parts": disk_by_component(Path(location)),
        "p50_ms": 1000 * statistics.median(latencies),
        "recall": float(np.mean(recalls)),
        "indexed": info.indexed_vectors,
        "store_layout": info.extra,
    }


def in_child(fn: Any, *fn_args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(fn, fn_args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--layouts", default="none,scalar,binary")
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    root = Path(args.folder or tempfile.mkdtemp(prefix="anyshot-scale-"))
    rows = []
    try:
        for name in args.layouts.split(","):
            sizes = {}
            for points in (args.small, args.points):
                run = argparse.Namespace(**{**vars(args), "points": points})
                location = str(root / f"{name}-{points}")
                shutil.rmtree(location, ignore_errors=True)
                built = in_child(build, location, LAYOUTS[name], run)
                measured = in_child(measure, location, LAYOUTS[name], run)
                sizes[points] = {"layout": name, "points": points, **built, **measured}
                print(json.dumps(sizes[points]), flush=True)
                shutil.rmtree(location, ignore_errors=True)
            small, big = sizes[args.small], sizes[args.points]

            def per_million(key: str, small: dict = small, big: dict = big) -> float:
                slope = (big[key] - small[key]) / (args.points - args.small)
                return small[key] + slope * (1_000_000 - args.small)

            rows.append(big | {f"{k}_1m": per_million(k) for k in ("rss_anon", "rss_file", "disk")})
    finally:
        if args.folder is None:
            shutil.rmtree(root, ignore_errors=True)
    gib, mib = 1024**3, 2**20
    print(f"\n{args.points:,} points x {args.dim} dims, Qdrant Edge, per layout:\n")
    print(
        "| layout | upsert s | optimize s | RAM anon MiB | RAM mapped MiB | disk MiB "
        "| p50 ms | recall@10 | per 1M: anon GiB | per 1M: mapped GiB | per 1M: disk GiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['layout']} | {r['upsert_s']:.1f} | {r['optimize_s']:.1f} "
            f"| {r['rss_anon'] / mib:.0f} | {r['rss_file'] / mib:.0f} "
            f"| {r['disk'] / mib:.0f} | {r['p50_ms']:.2f} | {r['recall']:.3f} "
            f"| {r['rss_anon_1m'] / gib:.2f} | {r['rss_file_1m'] / gib:.2f} "
            f"| {r['disk_1m'] / gib:.2f} |"
        )
    print(f"\nAllocated disk per point by component, {args.points:,} points:\n")
    parts = sorted({k for r in rows for k in r["disk_parts"]})
    print("| component | " + " | ".join(r["layout"] for r in rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    for part in parts:
        cells = [f"{r['disk_parts'].get(part, 0) / args.points:,.0f} B" for r in rows]
        print(f"| {part} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

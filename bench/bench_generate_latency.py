"""Latency of a ``--generate`` query against a plain text query, warm, in one process.

Run from the repository root::

    HF_HUB_OFFLINE=1 python bench/bench_generate_latency.py [--n 2000] [--queries 60]

Indexes ``--n`` synthetic scenes with anyshot-tiny into an embedded store (Qdrant Edge) in a
temporary folder, trains the generator on their labels.jsonl captions, then times
``ImageSearch.query`` per query (embedding included: every query text is new, so the text cache
never answers) for: a plain text query; the same text with ``generate=True``; a described name
(two descriptions, one a long paragraph) plain and generated. Prints p50/p90 in ms and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from indexer.config import build_settings
from indexer.shapes.synthetic import COLOURS, SHAPES, generate_collection
from search.client import ImageSearch
from search.knowledge import KnowledgeBase, KnowledgeEntry

PARAGRAPH = (
    "The {name} was first described in 1745 by a travelling naturalist. Its name comes from an "
    "old word for a market town on the river Avel. Local legends tell of a merchant who sold it "
    "at the autumn fair. It is a {colour} {shape}. It has been catalogued in 40 museum "
    "collections across the continent, and scholars disagree about its origin."
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--queries", type=int, default=60)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pairs = [(s, c) for s in SHAPES for c in COLOURS]
    # Each row gets texts of its own: none is in the text cache when it is timed.
    texts = [f"a {c} {s} number {i}" for i, (s, c) in enumerate(pairs * 4)][: 2 * args.queries]
    entries = [
        KnowledgeEntry(
            f"thing{i}",
            (),
            (f"a {c} {s}", PARAGRAPH.format(name=f"thing{i}", colour=c, shape=s)),
        )
        for i, (s, c) in enumerate(pairs * 4)
    ][: 2 * args.queries]
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        generate_collection(images, args.n, seed=3, image_size=64, workers=2)
        settings = build_settings(store=str(Path(tmp) / "store"), model="anyshot-tiny")
        with ImageSearch(settings, knowledge=KnowledgeBase(entries)) as client:
            started = time.perf_counter()
            client.index(images)
            indexed = time.perf_counter() - started
            report = client.train_generator(epochs=5)
            client.query("warm up", k=10)
            client.query("warm up again", k=10, generate=True)
            rows = []
            for label, make in (
                ("text", lambda i, g: client.query(texts[i], k=10, generate=g)),
                ("described name", lambda i, g: client.query(name=f"thing{i}", k=10, generate=g)),
            ):
                for generate in (False, True):
                    times = []
                    for i in range(args.queries):
                        t0 = time.perf_counter()
                        make(i + args.queries * generate, generate)
                        times.append((time.perf_counter() - t0) * 1000)
                    times.sort()
                    rows.append(
                        (label, generate, statistics.median(times), times[int(0.9 * len(times))])
                    )
    print(
        f"# {args.n} images indexed in {indexed:.1f} s; generator: {report['pairs']} pairs, "
        f"{report['seconds']:.1f} s; {args.queries} queries per row, warm, new texts"
    )
    print("| query | generate | p50 ms | p90 ms | p50 ratio |\n|---|---|---|---|---|")
    for i, (label, generate, p50, p90) in enumerate(rows):
        base = rows[i - 1][2] if generate else p50
        print(f"| {label} | {generate} | {p50:.1f} | {p90:.1f} | {p50 / base:.2f}× |")


if __name__ == "__main__":
    main()

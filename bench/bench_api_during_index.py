"""Search latency of the HTTP API while the server indexes into the same embedded store.

Run from the repository root (not in CI)::

    HF_HUB_OFFLINE=1 python bench/bench_api_during_index.py --images 2000 --more 2000

Builds a store of ``--images`` generated shape images (64 px) with anyshot-tiny, starts the app
(FastAPI's TestClient: the real app, no network), measures ``GET /search`` (a text query, a new
text each time so that the text encoder always runs) while idle, then starts ``POST /index`` of
``--more`` new images and measures the same searches until the run is done. Prints a table:
latency percentiles idle and during the run, and how many searches the run saw.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from indexer.config import build_settings
from indexer.shapes.synthetic import COLOURS, SHAPES, ObjectSpec, SceneSpec, render_scene
from search.api import create_app
from search.client import ImageSearch


def write_images(folder: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for index in range(count):
        colour = rng.choice(list(COLOURS))
        spec = SceneSpec(
            objects=(ObjectSpec(rng.choice(SHAPES), colour, "large", "centre"),),
            background="plain",
            background_colour=rng.choice([c for c in COLOURS if c != colour]),
            seed=seed * 1_000_000 + index,
        )
        render_scene(spec, 64).save(folder / f"{index:06d}.png")


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99, ordered[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--more", type=int, default=2000)
    parser.add_argument("--idle-queries", type=int, default=100)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="anyshot-api-bench-"))
    write_images(root / "first", args.images, seed=1)
    write_images(root / "more", args.more, seed=2)
    settings = build_settings(store=str(root / "store"), model="anyshot-tiny", workers=1)
    with ImageSearch(settings) as client:
        client.index(root / "first")

    texts = (f"a {c} {s} number {i}" for i in range(10**9) for c in COLOURS for s in SHAPES)

    def one_search(client: TestClient) -> float:
        started = time.perf_counter()
        reply = client.get("/search", params={"q": next(texts), "k": 10})
        assert reply.status_code == 200, reply.text
        return time.perf_counter() - started

    with TestClient(create_app(settings)) as client:
        for _ in range(5):
            one_search(client)  # warm-up
        idle = [one_search(client) for _ in range(args.idle_queries)]
        job = client.post("/index", json={"source": str(root / "more")}).json()
        started = time.perf_counter()
        during: list[float] = []
        while client.get(f"/index/{job['id']}").json()["state"] in ("queued", "running"):
            during.append(one_search(client))
        run_seconds = time.perf_counter() - started
        report = client.get(f"/index/{job['id']}").json()["report"]

    print(
        f"{args.images} images indexed, then {report['indexed']} more by POST /index "
        f"in {run_seconds:.1f} s (anyshot-tiny, 64 px)"
    )
    print("| searches (GET /search, text) | count | p50 ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, samples in (("idle", idle), ("during the index run", during)):
        p50, p99, worst = percentiles(samples)
        print(
            f"| {label} | {len(samples)} | {p50 * 1e3:.1f} | {p99 * 1e3:.1f} | {worst * 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()

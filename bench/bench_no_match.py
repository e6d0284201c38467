"""How well ``explain["confidence"]`` tells a query for an absent concept from a present one.

Run from the repository root (a few minutes on 2 cores)::

    HF_HUB_OFFLINE=1 python bench/bench_no_match.py [--n 1500] [--seed 2] [--fit]

A synthetic collection (:mod:`indexer.shapes.synthetic`) is indexed with ``anyshot-tiny`` after
removing every image that holds an **absent** concept: one whole shape, one whole colour, and 12
more shape × colour pairs whose shape and colour are otherwise present (the hard case: "red
circle" absent while red squares and blue circles are there). Queries, half for absent concepts
and half for present ones, go through the product (``ImageSearch.query(..., explain=True)``):

- ``text``: "a photo of a red circle."; ``name``: the name "red circle" (prompt templates);
- ``image``: a freshly drawn example image of the pair (never indexed);
- ``id``: "more like this" of an indexed image (present by construction: only the false
  "no match" rate is defined).

Printed per kind: ROC AUC of the confidence (absent vs present), the false "no match" rate on
present concepts and the true "no match" rate on absent ones at ``search.no_match_threshold``,
then the AUC of the alternatives the confidence was chosen against (the best score normalised by
the same query's scores on a random sample of the collection), and the added latency.

``--fit`` draws a second collection (``--fit-seed``, default 1) and prints the logistic
``(centre, step)`` per score scale fitted on it: the values ``search.confidence`` ships for
``anyshot-tiny``. The evaluation seed is never used for fitting.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.config import build_settings
from indexer.shapes import synthetic as syn
from search.client import ImageSearch
from search.confidence import calibration_for

Pair = tuple[str, str]


@dataclass
class Collection:
    """An indexed collection with some concepts left out."""

    client: ImageSearch
    absent_shape: str
    absent_colour: str
    absent_pairs: set[Pair]
    absent: set[Pair]
    present: list[Pair]
    ids: list[int] = field(default_factory=list)


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--n", type=int, nargs="+", default=[300, 1500], help="images per collection (each size)"
    )
    p.add_argument("--seed", type=int, default=2, help="evaluation collection seed")
    p.add_argument("--fit-seed", type=int, default=1, help="seed of the fitting collection")
    p.add_argument("--queries", type=int, default=40, help="absent and present queries, each")
    p.add_argument("--fit", action="store_true", help="fit and print the calibration")
    return p.parse_args()


def build_collection(seed: int, n: int, root: Path) -> Collection:
    """Draw, write and index a collection without its absent concepts."""
    rng = random.Random(seed)
    pairs = sorted(syn.SEEN_PAIRS | syn.HELD_OUT_PAIRS)
    shape = rng.choice(syn.SHAPES)
    colour = rng.choice(list(syn.COLOURS))
    others = [p for p in pairs if p[0] != shape and p[1] != colour]
    absent_pairs = set(rng.sample(others, 12))
    absent = {p for p in pairs if p[0] == shape or p[1] == colour} | absent_pairs
    scenes = [s for s in syn.sample_scenes(n * 2, seed=seed * 7 + 1) if not s.pairs & absent][:n]
    images = root / "images"
    images.mkdir(parents=True)
    for index, scene in enumerate(scenes):
        syn.render_scene(scene, 64).save(images / f"{index:05d}.png")
    settings = build_settings(store=str(root / "store"), model="anyshot-tiny", workers=0)
    client = ImageSearch(settings)
    client.index(images)
    present = sorted(set().union(*(s.pairs for s in scenes)))
    ids = [p.id for p in client.store.scroll(batch_size=4096)]
    return Collection(client, shape, colour, absent_pairs, absent, present, ids)


def example_image(pair: Pair, rng: random.Random):
    """A new drawing of one object of the pair, on a plain background of another colour."""
    background = rng.choice([c for c in syn.COLOURS if c != pair[1]])
    spec = syn.SceneSpec(
        (syn.ObjectSpec(pair[0], pair[1], "large", "centre"),),
        "plain",
        background,
        seed=rng.getrandbits(32),
    )
    return syn.render_scene(spec, 64)


def run_queries(collection: Collection, count: int, seed: int) -> list[dict]:
    """Ask every kind of query for absent and present concepts; one row per query."""
    rng = random.Random(seed + 99)
    absent = sorted(collection.absent)
    present = list(collection.present)
    rng.shuffle(absent)
    rng.shuffle(present)
    client = collection.client
    rows = []
    for label, pairs in ((0, absent[:count]), (1, present[:count])):
        for pair in pairs:
            phrase = f"{pair[1]} {pair[0]}"
            asked = {
                "text": {"text": f"a photo of a {phrase}."},
                "name": {"name": phrase},
                "image": {"image": example_image(pair, rng)},
            }
            for kind, query in asked.items():
                started = time.perf_counter()
                result = client.query(**query, k=10, explain=True)
                seconds = time.perf_counter() - started
                rows.append(
                    {
                        "kind": kind,
                        "present": label,
                        "pair": pair,
                        "explain": result.explain,
                        "seconds": seconds,
                    }
                )
    for point_id in rng.sample(collection.ids, count):
        result = client.query(similar_to=point_id, k=10, explain=True)
        rows.append({"kind": "id", "present": 1, "pair": None, "explain": result.explain})
    return rows


def auc(positive: list[float], negative: list[float]) -> float:
    """ROC AUC: the chance a present query outranks an absent one (ties count half)."""
    if not positive or not negative:
        return float("nan")
    pos = np.asarray(positive)[:, None]
    neg = np.asarray(negative)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def fit_logistic(scores: list[float], labels: list[int]) -> tuple[float, float]:
    """``(centre, step)`` of the logistic regression of labels on scores (Newton's method)."""
    x = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    mean, spread = x.mean(), x.std() or 1.0
    z = np.stack([np.ones_like(x), (x - mean) / spread], axis=1)
    w = np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        gradient = z.T @ (y - p)
        hessian = (z * (p * (1 - p))[:, None]).T @ z + 1e-6 * np.eye(2)
        w += np.linalg.solve(hessian, gradient)
    slope = w[1] / spread
    return float(mean - w[0] / slope), float(1.0 / slope)


def background_alternatives(collection: Collection, rows: list[dict], sample: int = 1024) -> dict:
    """AUC of the best score normalised by the query's scores on a random collection sample
    (point ids are hashes of the URIs: the lowest ids are a random sample)."""
    client = collection.client
    engine = client.engine
    points = list(client.store.scroll(batch_size=4096, with_vectors=True))
    vectors = np.stack([p.vector for p in points]).astype(np.float32)
    background = vectors[:sample]
    found: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        if row["kind"] not in ("text", "image"):
            continue
        parts = row["explain"]["parts"][0]
        if row["kind"] == "text":
            query = engine.embed_texts([parts["value"]])[0]
        else:
            continue  # the image is not kept; its vector is re-made below
        best = float(np.max(vectors @ query))
        scores = background @ query
        median = float(np.median(scores))
        mad = float(np.median(np.abs(scores - median))) * 1.4826
        stats = {
            "z (best vs sample median/MAD)": (best - median) / mad,
            "best − sample median": best - median,
            "best − sample 99th percentile": best - float(np.quantile(scores, 0.99)),
            "best score (chosen)": best,
        }
        for name, value in stats.items():
            found.setdefault(name, {"0": [], "1": []})[str(row["present"])].append(value)
    return {name: auc(v["1"], v["0"]) for name, v in found.items()}


def confidence_latency(collection: Collection, repeats: int = 200) -> tuple[float, float]:
    """Median ms of a text query (k 10), and of the confidence's own extra search (the case
    where the hits cannot be reused: offset > 0 or expansion)."""
    engine = collection.client.engine
    from search.query import QueryPart

    parts = [QueryPart("text", "a photo of a red circle.")]
    engine.query(parts, k=10)  # warm: the text is cached from here on
    totals, extras = [], []
    vector = engine.embed_texts(["a photo of a red circle."])[0]
    for _ in range(repeats):
        started = time.perf_counter()
        engine.query(parts, k=10)
        totals.append(time.perf_counter() - started)
        started = time.perf_counter()
        engine._confidence(vector, "text-image", parts, None, [])
        extras.append(time.perf_counter() - started)
    return statistics.median(totals) * 1000, statistics.median(extras) * 1000


def report(collection: Collection, rows: list[dict]) -> None:
    """Print the table."""
    threshold = collection.client.settings.search.no_match_threshold
    print(
        f"absent: shape {collection.absent_shape}, colour {collection.absent_colour}, "
        f"{len(collection.absent_pairs)} more pairs ({len(collection.absent)} pairs in all); "
        f"present pairs {len(collection.present)}; images {len(collection.ids)}"
    )
    print(f"\n{'kind':6} {'AUC':>6} {'false no-match':>15} {'true no-match':>14}  n (abs/pres)")
    for kind in ("text", "name", "image", "id"):
        mine = [r for r in rows if r["kind"] == kind]
        pos = [r["explain"]["confidence"] for r in mine if r["present"]]
        neg = [r["explain"]["confidence"] for r in mine if not r["present"]]
        false_rate = np.mean([c < threshold for c in pos]) if pos else float("nan")
        true_rate = np.mean([c < threshold for c in neg]) if neg else float("nan")
        print(
            f"{kind:6} {auc(pos, neg):6.3f} {false_rate:15.3f} {true_rate:14.3f}  "
            f"{len(neg)}/{len(pos)}"
        )
    print("\nabsent kind (text)   AUC  true no-match")
    pos = [r["explain"]["confidence"] for r in rows if r["kind"] == "text" and r["present"]]
    for name, test in (
        ("pair", lambda p: p in collection.absent_pairs),
        ("whole shape", lambda p: p[0] == collection.absent_shape),
        ("whole colour", lambda p: p[1] == collection.absent_colour),
    ):
        neg = [
            r["explain"]["confidence"]
            for r in rows
            if r["kind"] == "text" and not r["present"] and test(r["pair"])
        ]
        if neg:
            rate = np.mean([c < threshold for c in neg])
            print(f"{name:18} {auc(pos, neg):6.3f} {rate:10.3f}  (n {len(neg)})")


def main() -> None:
    """Build, query, print."""
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="anyshot-no-match-") as tmp:
        if args.fit:
            rows = []
            for n in args.n:
                fitting = build_collection(args.fit_seed, n, Path(tmp) / f"fit-{n}")
                rows += run_queries(fitting, args.queries, args.fit_seed)
                fitting.client.close()
            print(f"calibration fitted on seed {args.fit_seed} (collections of {args.n} images):")
            for scale, kinds in (("text-image", ("text", "name")), ("image-image", ("image",))):
                chosen = [r for r in rows if r["kind"] in kinds]
                centre, step = fit_logistic(
                    [r["explain"]["best_score"] for r in chosen], [r["present"] for r in chosen]
                )
                print(f"  {scale:12} centre {centre:.3f} step {step:.4f}")
        for n in args.n:
            started = time.perf_counter()
            collection = build_collection(args.seed, n, Path(tmp) / f"eval-{n}")
            seconds = time.perf_counter() - started
            print(f"\n== evaluation seed {args.seed}, {n} images (built in {seconds:.0f} s)")
            rows = run_queries(collection, args.queries, args.seed)
            report(collection, rows)
            if n == max(args.n):
                print("\ntext queries: AUC of the alternatives (absent vs present)")
                for name, value in background_alternatives(collection, rows).items():
                    print(f"  {name:32} {value:.3f}")
                total, extra = confidence_latency(collection)
                print(
                    f"\nlatency: text query k 10 p50 {total:.2f} ms (hits reused: no extra "
                    f"search); the confidence's own search when they cannot be reused p50 "
                    f"{extra:.2f} ms"
                )
            collection.client.close()
        print(f"\ncalibration: {calibration_for('anyshot-tiny', 'text-image')} (text-image)")


if __name__ == "__main__":
    main()

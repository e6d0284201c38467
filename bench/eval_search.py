"""Evaluate name resolution and visual query expansion on the synthetic domain; print a table.

Run from the repository root (2–5 minutes on 2 shared cores)::

    HF_HUB_OFFLINE=1 python bench/eval_search.py [--model anyshot-tiny] [--n 3000]
                                                 [--precision fp32]

Everything goes through the real search path (:class:`search.engine.SearchEngine` on a Qdrant
Edge store in a temporary folder, exact search): the test collection is a fresh draw of the
``all`` split (seed unused by training), and the queries are the 24 **held-out** shape × colour
pairs the model never saw together in training. An image is relevant when one of its objects
has the pair's shape and colour. The metric is precision@10, averaged over the pairs.

Names. Each held-out pair gets a code name the model has never seen ("alpha", "bravo", ...):

- ``templates, code name``: the name alone in prompt templates (what a name query does when
  nothing is known about the name);
- ``templates, name = "red circle"``: the same when the name is made of words the model knows;
- ``code name + descriptions``: the knowledge base gives the name descriptions (attribute
  phrases, as in Menon & Vondrick 2023);
- ``concept, 1 example`` / ``5 examples``: the code name registered with example images drawn
  apart from the collection (single-object scenes of the pair, random size, position and
  background); averaged over ``--draws`` draws of examples.

Expansion: text queries ``"a {colour} {shape}"`` and name queries, with visual query expansion
off and on (top 5 images, several blend weights).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import numpy as np

from indexer.config import ModelSettings, SearchSettings
from indexer.embed import Embedder
from indexer.shapes import synthetic
from indexer.stores.edge import EdgeStore
from search.concepts import Concept, ConceptRegistry
from search.engine import SearchEngine
from search.knowledge import KnowledgeBase, KnowledgeEntry
from search.query import QueryPart

CODE_NAMES = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliett",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="Evaluate name queries and query expansion.")
    p.add_argument("--model", default="anyshot-tiny", help="model name (anyshot-tiny, local-dir:)")
    p.add_argument("--n", type=int, default=3000, help="test images")
    p.add_argument("--seed", type=int, default=20_261_130, help="test collection seed")
    p.add_argument("--draws", type=int, default=3, help="draws of concept examples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="fp32", help="fp32, bf16, int8 or auto")
    return p.parse_args()


def descriptions(shape: str, colour: str) -> tuple[str, ...]:
    """Attribute descriptions of a pair, the way a knowledge base would describe a thing."""
    return (
        synthetic.object_phrase(shape, colour),
        f"{synthetic.object_phrase(colour)} shape",
        synthetic.object_phrase(shape),
    )


def example_images(shape: str, colour: str, count: int, rng: random.Random) -> list:
    """Fresh single-object scenes of a pair, never in the test collection."""
    images = []
    for _ in range(count):
        obj = synthetic.ObjectSpec(
            shape,
            colour,
            rng.choice(tuple(synthetic.SIZES)),
            rng.choice(tuple(synthetic.POSITIONS)),
        )
        spec = synthetic.SceneSpec(
            (obj,),
            rng.choice(synthetic.BACKGROUNDS),
            rng.choice([c for c in synthetic.COLOURS if c != colour]),
            seed=rng.getrandbits(32),
        )
        images.append(synthetic.render_scene(spec, 64))
    return images


def precision_at_10(
    engine: SearchEngine, parts: list[QueryPart], relevant: set[int], **kw
) -> float:
    """P@10 of one query through the engine."""
    hits = engine.query(parts, k=10, **kw).hits
    return sum(hit.id in relevant for hit in hits) / 10


def main() -> None:
    """Build the collection, run the queries, print the table."""
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    started = time.time()
    embedder = Embedder(ModelSettings(name=args.model, precision=args.precision))
    specs = synthetic.sample_scenes(args.n, seed=args.seed, split="all")
    pixels = synthetic.render_array(specs, embedder.image_size, workers=2)
    vectors = embedder.embed_pixels(pixels)
    print(f"{args.n} test images rendered and embedded in {time.time() - started:.0f} s")

    pairs = sorted(synthetic.HELD_OUT_PAIRS)
    relevant = {pair: {i for i, s in enumerate(specs) if pair in s.pairs} for pair in pairs}
    names = dict(zip(pairs, CODE_NAMES, strict=False))
    knowledge = KnowledgeBase(
        [KnowledgeEntry(names[p], (), descriptions(*p), "eval") for p in pairs]
    )
    known_knowledge = KnowledgeBase(
        [KnowledgeEntry(f"{p[1]} {p[0]}", (), descriptions(*p), "eval") for p in pairs]
    )

    with tempfile.TemporaryDirectory() as folder:
        store = EdgeStore(folder)
        store.bind_model(embedder.identity)
        store.upsert(
            list(range(args.n)), vectors, [{"uri": f"synthetic://{i}"} for i in range(args.n)]
        )
        plain = SearchEngine(store, embedder, SearchSettings(expand=False))
        described = SearchEngine(
            store, embedder, SearchSettings(expand=False, name_weight=0.0), knowledge=knowledge
        )
        rows: list[tuple[str, float]] = []

        def mean_p10(engine: SearchEngine, make_parts, **kw) -> float:
            return float(
                np.mean([precision_at_10(engine, make_parts(p), relevant[p], **kw) for p in pairs])
            )

        def name_of(pair):
            return [QueryPart("name", names[pair])]

        rows.append(("name: templates, code name (unknown word)", mean_p10(plain, name_of)))

        def known_name_of(pair):
            return [QueryPart("name", f"{pair[1]} {pair[0]}")]

        rows.append(
            ('name: templates, name = "red circle" (known words)', mean_p10(plain, known_name_of))
        )
        for weight in (1.0, 0.0):
            settings = SearchSettings(expand=False, name_weight=weight)
            engine = SearchEngine(store, embedder, settings, knowledge=knowledge)
            label = f"name: code name + descriptions, name_weight {weight:g}"
            rows.append((label, mean_p10(engine, name_of)))
            engine = SearchEngine(store, embedder, settings, knowledge=known_knowledge)
            label = f'name: "red circle" + descriptions, name_weight {weight:g}'
            rows.append((label, mean_p10(engine, known_name_of)))
        rng = random.Random(7)
        registry = ConceptRegistry(store)
        for count in (1, 5):
            scores = []
            for _ in range(args.draws):
                for pair in pairs:
                    images = example_images(*pair, count, rng)
                    registry.add(
                        Concept(names[pair], ["<eval>"] * count, 0.0, embedder.embed_images(images))
                    )
                scores.append(mean_p10(plain, name_of))
            rows.append(
                (f"name: concept, {count} example{'s' * (count > 1)}", float(np.mean(scores)))
            )
        for pair in pairs:
            registry.remove(names[pair])

        def text_of(pair):
            return [QueryPart("text", synthetic.object_phrase(pair[0], pair[1]))]

        rows.append(("text: expansion off", mean_p10(plain, text_of)))
        for weight in (0.2, 0.5):
            engine = SearchEngine(store, embedder, SearchSettings(expand_weight=weight))
            rows.append(
                (
                    f"text: expansion on, top 5, weight {weight}",
                    mean_p10(engine, text_of, expand=True),
                )
            )
        for label, engine, make_parts in (
            ("name (templates)", plain, known_name_of),
            ("name + descriptions (name_weight 0)", described, name_of),
        ):
            rows.append((f"{label}: expansion off", mean_p10(engine, make_parts)))
            settings = engine.settings.model_copy(update={"expand_weight": 0.2})
            expanding = SearchEngine(store, embedder, settings, knowledge=knowledge)
            rows.append(
                (f"{label}: expansion on, weight 0.2", mean_p10(expanding, make_parts, expand=True))
            )
        store.close()

    chance = np.mean([len(relevant[p]) / args.n for p in pairs])
    print()
    print(
        f"model: {embedder.identity.label}   n={args.n}   held-out pairs: {len(pairs)}   "
        f"chance P@10: {chance:.3f}"
    )
    print(f"{'query':<62} {'P@10':>6}")
    print("-" * 69)
    for label, value in rows:
        print(f"{label:<62} {value:6.3f}")
    print(f"\n{time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()

"""Evaluate generated visual features (``--generate``) against text-only routes, as Zhu et al. did.

Run from the repository root (about a minute on 2 cores)::

    HF_HUB_OFFLINE=1 python bench/eval_generator.py [--model anyshot-tiny] [--n 2400]

Set-up, all deterministic from ``--seed``:

- **Concepts** are the 120 shape × colour pairs of the synthetic domain
  (:mod:`indexer.shapes.synthetic`), each under an invented name ("a vornel") that the model
  cannot know. **Unseen** concepts are the 24 held-out pairs (:data:`HELD_OUT_PAIRS`: the tiny
  model never trained on them either); the rest are **seen**.
- **The generator** trains on a separate collection drawn from seen pairs only, with the
  synthetic captions plus seen concepts' descriptions (an attribute phrase and one of
  ``--paragraphs`` noisy paragraphs drawn with other seeds than the test's) paired with their
  one-object images (Zhu et al. train on the class descriptions): it never sees an unseen
  concept's images or descriptions. ``captions only`` trains on the captions alone (what
  ``anyshot generator train`` finds beside a synthetic collection).
- **The test collection** is ``--n`` fresh scenes of all pairs; an image is relevant to a
  concept when one of its objects has that shape and colour.
- **Descriptions** in two kinds: three short *attribute phrases*, and two *noisy encyclopedic
  paragraphs* (the name, its colour and shape buried among irrelevant sentences, some naming
  other colours and shapes; 120–200 words, beyond CLIP's 77 tokens, the attribute sentence
  anywhere).

Routes, side by side: the name in prompt templates; the (first) description's text embedding:
its first chunk, and the mean of its chunks; CuPL (the mean of all descriptions plus the name's
templates, what ``--name`` does today); visual query expansion of that; generated features
(k vectors per description's chunk mean, or per chunk as ``--generate`` does, one
multi-vector search, fused); generated + text (the generated lists and the CuPL list fused by
RRF); the linear map alone (the generator's ridge start).

Metrics: P@10 and AP@100 per concept, mean with a 95% bootstrap interval over concepts (1000
resamples); chance: the mean fraction of relevant images.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np

from indexer.config import ModelSettings
from indexer.embed import Embedder
from indexer.generator import FUSIONS, chunk_text, fuse_ranked, noise_seed, unit_rows
from indexer.generator_train import TrainOptions, _ridge, embed_descriptions, train_generator
from indexer.shapes import synthetic
from indexer.stores.interface import ScoredPoint
from search.engine import PROMPT_TEMPLATES  # the name route's templates, as the engine uses them

ATTRIBUTE_TEMPLATES = (
    "a {c} {s}",
    "a {s} in {c}",
    "a {c} {s} shape",
    "something {c} shaped like a {s}",
    "a {s} coloured {c}",
    "one {c} {s} on a plain background",
)
DISTRACTORS = (
    "The {name} was first described in {year} by a travelling naturalist.",
    "Its name comes from an old word for a market town on the river {river}.",
    "Local legends tell of a merchant who sold it at the autumn fair.",
    "It has been catalogued in {n} museum collections across the continent.",
    "Scholars disagree about its origin, and the debate continues today.",
    "A festival in its honour is held every spring in the village of {river}.",
    "It is sometimes confused with the {oc} {os}, which it does not resemble.",
    "Unlike the {oc} {os}, it is rarely seen in the northern provinces.",
    "The population has grown steadily since the records began in {year}.",
    "In heraldry it appears on the arms of {n} noble families.",
    "Several novels mention it, most famously a story set in {river}.",
    "Its trade was regulated by a guild until the reforms of {year}.",
    "Collectors value early examples very highly at auctions.",
    "The first photograph of it was taken in {year}.",
)
CORE = (
    "The {name} is a {c} {s}.",
    "In appearance, the {name} is a {s} of a {c} colour.",
    "Seen up close, it is a {c} {s}.",
    "Its defining feature is that it is a {s}, and it is always {c}.",
)
SYLLABLES = ("va", "lor", "mi", "ken", "tu", "bar", "shi", "no", "quel", "dra", "pim", "zo", "ru")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Evaluate generated visual features.")
    p.add_argument("--model", default="anyshot-tiny")
    p.add_argument("--n", type=int, default=2400, help="test images")
    p.add_argument("--train", type=int, default=3000, help="generator training images")
    p.add_argument("--seed", type=int, default=20_261_204)
    p.add_argument("--k", type=int, default=4, help="generated vectors per description")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--gan-epochs", type=int, default=20, help="the GAN's (4 steps per batch)")
    p.add_argument("--threads", type=int, default=1, help="more is slower on 2 shared cores")
    p.add_argument("--kind", default="gan", help="the kind measured in every variant")
    p.add_argument("--fusion", default="mean", help="the fusion of the variants")
    p.add_argument(
        "--paragraphs", type=int, default=6, help="noisy paragraphs per seen concept, training"
    )
    p.add_argument("--boot", type=int, default=1000)
    return p.parse_args()


def concept_name(pair: tuple[str, str], seed: int) -> str:
    rng = random.Random(f"{seed}-{pair}")
    return "".join(rng.choice(SYLLABLES) for _ in range(3))


def attribute_phrases(pair: tuple[str, str], seed: int) -> list[str]:
    shape, colour = pair
    rng = random.Random(f"attr-{seed}-{pair}")
    return [t.format(c=colour, s=shape) for t in rng.sample(ATTRIBUTE_TEMPLATES, 3)]


def noisy_paragraph(pair: tuple[str, str], name: str, seed: int) -> str:
    shape, colour = pair
    rng = random.Random(f"para-{seed}-{pair}")
    others_c = [c for c in synthetic.COLOURS if c != colour]
    others_s = [s for s in synthetic.SHAPES if s != shape]
    sentences = []
    for template in rng.sample(DISTRACTORS, rng.randint(8, 11)):
        sentences.append(
            template.format(
                name=name,
                year=rng.randint(1600, 1990),
                river=rng.choice(("Avel", "Morn", "Tessa", "Quill")),
                n=rng.randint(3, 90),
                oc=rng.choice(others_c),
                os=rng.choice(others_s),
            )
        )
    core = rng.choice(CORE).format(name=name, c=colour, s=shape)
    sentences.insert(rng.randint(0, len(sentences)), core)
    return f"The {name} is a well-known thing. " + " ".join(sentences)


def embed_scenes(embedder: Embedder, specs: list, size: int) -> np.ndarray:
    from PIL import Image

    out = []
    for start in range(0, len(specs), 256):
        pixels = synthetic.render_array(specs[start : start + 256], size)
        out.append(embedder.embed_images([Image.fromarray(p) for p in pixels]))
    return unit_rows(np.concatenate(out))


def ranked(images: np.ndarray, queries: np.ndarray, limit: int = 100) -> list[list[ScoredPoint]]:
    scores = np.atleast_2d(queries) @ images.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :limit]
    return [
        [ScoredPoint(int(i), float(row[i]), {}) for i in top]
        for row, top in zip(scores, order, strict=True)
    ]


def metrics(ids: list[int], relevant: set[int]) -> tuple[float, float]:
    hits = np.array([i in relevant for i in ids[:100]], float)
    p10 = hits[:10].mean()
    if not relevant:
        return p10, 0.0
    precision = np.cumsum(hits) / (np.arange(len(hits)) + 1)
    ap = float((precision * hits).sum() / min(len(relevant), 100))
    return float(p10), ap


def bootstrap(values: np.ndarray, boot: int, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (boot, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    embedder = Embedder(ModelSettings(name=args.model, threads=args.threads))
    size = embedder.image_size if isinstance(embedder.image_size, int) else 64

    cache: dict[str, np.ndarray] = {}

    def embed_texts(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, embedder.embed_texts(missing), strict=True))
        return np.stack([cache[t] for t in texts])

    pairs = sorted((s, c) for s in synthetic.SHAPES for c in synthetic.COLOURS)
    unseen = sorted(synthetic.HELD_OUT_PAIRS)
    seen = [p for p in pairs if p not in synthetic.HELD_OUT_PAIRS]
    names = {p: concept_name(p, args.seed) for p in pairs}
    attrs = {p: attribute_phrases(p, args.seed) for p in pairs}
    paragraphs = {p: [noisy_paragraph(p, names[p], args.seed + j) for j in range(2)] for p in pairs}
    words = [len(t.split()) for ps in paragraphs.values() for t in ps]

    test_specs = synthetic.sample_scenes(args.n, seed=args.seed, split="all")
    images = embed_scenes(embedder, test_specs, size)
    relevant = {p: {i for i, s in enumerate(test_specs) if p in s.pairs} for p in pairs}

    # The generator's training set: seen pairs only, captions (+ seen concepts' descriptions).
    train_specs = synthetic.sample_scenes(args.train, seed=args.seed + 1, split="train")
    train_images = embed_scenes(embedder, train_specs, size)
    rng = random.Random(args.seed)
    captions = [synthetic.caption_scene(s, rng) for s in train_specs]
    desc_texts, desc_rows = [], []
    train_paragraphs = {
        p: [noisy_paragraph(p, names[p], args.seed + 100 + j) for j in range(args.paragraphs)]
        for p in seen
    }
    for i, spec in enumerate(train_specs):
        if len(spec.objects) == 1:
            pair = (spec.objects[0].shape, spec.objects[0].colour)
            shape, colour = pair
            phrase = rng.choice(ATTRIBUTE_TEMPLATES).format(c=colour, s=shape)
            for text in [phrase, rng.choice(train_paragraphs[pair])]:
                desc_texts.append(text)
                desc_rows.append(i)
    caption_vectors = embed_descriptions(embed_texts, captions)
    desc_vectors = embed_descriptions(embed_texts, desc_texts)
    identity = embedder.identity
    generators = {}
    timings = {}
    for label, kind, texts, rows in (
        ("mlp", "mlp", np.concatenate([caption_vectors, desc_vectors]), None),
        ("gan", "gan", np.concatenate([caption_vectors, desc_vectors]), None),
        ("mlp, captions only", "mlp", caption_vectors, "captions"),
    ):
        image_rows = (
            train_images
            if rows == "captions"
            else np.concatenate([train_images, train_images[desc_rows]])
        )
        t0 = time.perf_counter()
        generators[label] = train_generator(
            texts,
            image_rows,
            identity,
            TrainOptions(
                kind=kind,
                epochs=args.gan_epochs if kind == "gan" else args.epochs,
                seed=args.seed,
                threads=args.threads,
            ),
        )
        timings[label] = time.perf_counter() - t0
        print(f"# trained {label}: {timings[label]:.1f} s", flush=True)

    ridge = _ridge(np.concatenate([caption_vectors, desc_vectors]),
                   np.concatenate([train_images, train_images[desc_rows]]))  # fmt: skip

    def template_vector(name: str) -> np.ndarray:
        prompts = [t.format(name) for t in PROMPT_TEMPLATES]
        return unit_rows(embed_texts(prompts).mean(0, keepdims=True))[0]

    def routes(pair: tuple[str, str], kind: str) -> dict[str, list[int]]:
        name = names[pair]
        descriptions = attrs[pair] if kind == "attribute" else paragraphs[pair]
        first = descriptions[0]
        first_chunk = embed_texts([first])[0]  # the tokenizer cuts at 77 tokens
        mean_chunks = embed_descriptions(embed_texts, [first])[0]
        described = embed_descriptions(embed_texts, descriptions)
        cupl = unit_rows((described.sum(0) + template_vector(name))[None])[0]
        out: dict[str, list[int]] = {}

        def ids(lists_or_vector) -> list[int]:
            return [p.id for p in ranked(images, lists_or_vector)[0]]

        out["name via templates"] = ids(template_vector(name))
        out["description: first chunk"] = ids(first_chunk)
        out["description: mean of chunks"] = ids(mean_chunks)
        out["CuPL mean (+ name templates)"] = ids(cupl)
        top = ranked(images, cupl, 5)[0]
        expanded = unit_rows((0.8 * cupl + 0.2 * images[[p.id for p in top]].mean(0))[None])[0]
        out["CuPL + visual query expansion"] = ids(expanded)
        seed = noise_seed(descriptions)
        for label, generator in generators.items():
            main = label == args.kind
            for fusion in FUSIONS if main else (args.fusion,):
                lists = ranked(images, generator.generate(described, args.k, seed=seed))
                fused = fuse_ranked(lists, fusion, limit=100)
                out[f"generated [{label}] k={args.k} {fusion}"] = [p.id for p, _, _ in fused]
            if main:
                for k in (1, 8):
                    lists = ranked(images, generator.generate(described, k, seed=seed))
                    fused = fuse_ranked(lists, args.fusion, limit=100)
                    out[f"generated [{label}] k={k} {args.fusion}"] = [p.id for p, _, _ in fused]
                lists = ranked(images, generator.generate(described, args.k, seed=seed))
                lists.append(ranked(images, cupl)[0])
                fused = fuse_ranked(lists, "rrf", limit=100)
                out[f"generated [{label}] + text, rrf"] = [p.id for p, _, _ in fused]
        if kind == "noisy":
            # Each 77-token chunk of each paragraph through the generator on its own (the
            # attribute sentence's chunk is not averaged with the distractors'), fused.
            chunks = [c for text in descriptions for c in chunk_text(text)]
            chunk_vectors = embed_texts(chunks)
            fused = fuse_ranked(ranked(images, chunk_vectors), "max", limit=100)
            out["description: each chunk searched, max"] = [p.id for p, _, _ in fused]
            main = generators[args.kind]
            for fusion in ("max", args.fusion):
                lists = ranked(images, main.generate(chunk_vectors, args.k, seed=seed))
                fused = fuse_ranked(lists, fusion, limit=100)
                out[f"generated [{args.kind}] per chunk, {fusion}"] = [p.id for p, _, _ in fused]
        linear = unit_rows(described @ ridge)
        fused = fuse_ranked(ranked(images, linear), args.fusion, limit=100)
        out[f"linear map only (ridge), {args.fusion}"] = [p.id for p, _, _ in fused]
        return out

    n = len(images)
    print(f"# eval_generator: model {args.model}, test images {n}, training images {args.train}")
    print(f"# noisy paragraphs: {min(words)}-{max(words)} words (CLIP reads 77 tokens)")
    print(
        "# generator training: "
        + ", ".join(f"{k} {timings[k]:.1f} s ({generators[k].pairs} pairs)" for k in generators)
    )
    for group_label, group in (("unseen", unseen), ("seen", seen)):
        chance = np.mean([len(relevant[p]) / n for p in group])
        for kind in ("noisy", "attribute"):
            table: dict[str, list[tuple[float, float]]] = {}
            for pair in group:
                for route, ids in routes(pair, kind).items():
                    table.setdefault(route, []).append(metrics(ids, relevant[pair]))
            print(
                f"\n## {group_label} concepts ({len(group)}), {kind} descriptions; "
                f"chance P@10 = {chance:.3f}"
            )
            print("| route | P@10 [95% CI] | mAP@100 [95% CI] |\n|---|---|---|")
            for route, values in table.items():
                array = np.array(values)
                p = bootstrap(array[:, 0], args.boot, args.seed)
                m = bootstrap(array[:, 1], args.boot, args.seed)
                print(
                    f"| {route} | {p[0]:.3f} [{p[1]:.3f}, {p[2]:.3f}] "
                    f"| {m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}] |"
                )
    print(f"\n# total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

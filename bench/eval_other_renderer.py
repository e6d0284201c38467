"""Evaluate ``anyshot-tiny`` on shapes drawn by code it never trained on, and print a table.

Run from the repository root::

    HF_HUB_OFFLINE=1 python bench/eval_other_renderer.py [--model indexer/shapes/anyshot-tiny]

The images come from ``bench/other_renderer.py`` (numpy signed-distance shapes, its own palette,
sizes, strokes, anti-aliasing and backgrounds; see its docstring): ``--per-pair`` one-shape
images of each of the 120 shape × colour pairs plus about ``--two`` two-shape images. Each image
goes through the model's own preprocessing as a PIL image, as production indexing does.

Metrics (chance = a random ranking or guess):

- pair precision@6: the query "a photo of a {colour} {shape}" (averaged over
  ``eval_tiny.PAIR_TEMPLATES``) ranks the collection; relevant = an image holding that pair.
  Reported over seen pairs, held-out pairs (never in training) and all pairs.
- zero-shot shape accuracy and colour accuracy of the one-shape images (prompts averaged as in
  ``eval_tiny.py``), over seen pairs, held-out pairs and all.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import other_renderer
from eval_tiny import (
    COLOUR_TEMPLATES,
    PAIR_TEMPLATES,
    SHAPE_TEMPLATES,
    embed_images,
    embed_prompts,
    load_model,
)
from PIL import Image

from indexer.shapes import synthetic


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="Evaluate anyshot-tiny on another renderer.")
    p.add_argument("--model", type=Path, default=Path("indexer/shapes/anyshot-tiny"))
    p.add_argument("--per-pair", type=int, default=8, help="one-shape images per pair")
    p.add_argument("--two", type=int, default=160, help="two-shape images (about)")
    p.add_argument("--seed", type=int, default=20_261_204, help="collection seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes that draw the images")
    p.add_argument("--k", type=int, default=6, help="precision cut-off")
    return p.parse_args()


def _draw(job: tuple[list, int]) -> Image.Image:
    items, seed = job
    return other_renderer.draw(items, seed)


def main() -> None:
    """Draw the collection, embed it, print the table."""
    args = parse_args()
    model, preprocess, tokenizer = load_model(args.model, args.threads)

    start = time.time()
    scenes = other_renderer.collection(args.per_pair, args.two, seed=args.seed)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        images = list(pool.map(_draw, scenes, chunksize=32))
    feats = embed_images(model, preprocess, images)
    print(f"{len(images)} images drawn and embedded in {time.time() - start:.0f} s")

    contents = [{(item.shape, item.colour) for item in items} for items, _ in scenes]
    pairs = sorted(synthetic.SEEN_PAIRS | synthetic.HELD_OUT_PAIRS)
    relevant = np.array([[pair in c for c in contents] for pair in pairs])
    queries = embed_prompts(
        model, tokenizer, [synthetic.object_phrase(s, c) for s, c in pairs], PAIR_TEMPLATES
    )
    top = (queries @ feats.T).topk(args.k, dim=1).indices.numpy()
    precision = np.take_along_axis(relevant, top, axis=1).mean(axis=1)
    chance_p = relevant.mean(axis=1)
    held = np.array([p in synthetic.HELD_OUT_PAIRS for p in pairs])

    single = [i for i, (items, _) in enumerate(scenes) if len(items) == 1]
    shape_text = embed_prompts(
        model, tokenizer, [synthetic.object_phrase(s) for s in synthetic.SHAPES], SHAPE_TEMPLATES
    )
    colour_text = embed_prompts(model, tokenizer, list(synthetic.COLOURS), COLOUR_TEMPLATES)
    shape_pred = (feats[single] @ shape_text.T).argmax(dim=1).numpy()
    colour_pred = (feats[single] @ colour_text.T).argmax(dim=1).numpy()
    first = [scenes[i][0][0] for i in single]
    shape_ok = shape_pred == np.array([synthetic.SHAPES.index(it.shape) for it in first])
    colour_ok = colour_pred == np.array([list(synthetic.COLOURS).index(it.colour) for it in first])
    single_held = np.array([(it.shape, it.colour) in synthetic.HELD_OUT_PAIRS for it in first])

    shape_chance = 1 / len(synthetic.SHAPES)
    colour_chance = 1 / len(synthetic.COLOURS)
    rows = [
        (f"pair P@{args.k}, all pairs", precision, chance_p.mean()),
        (f"pair P@{args.k}, seen pairs", precision[~held], chance_p[~held].mean()),
        (f"pair P@{args.k}, held-out pairs", precision[held], chance_p[held].mean()),
        ("shape accuracy, all", shape_ok, shape_chance),
        ("shape accuracy, seen pairs", shape_ok[~single_held], shape_chance),
        ("shape accuracy, held-out pairs", shape_ok[single_held], shape_chance),
        ("colour accuracy, all", colour_ok, colour_chance),
        ("colour accuracy, seen pairs", colour_ok[~single_held], colour_chance),
        ("colour accuracy, held-out pairs", colour_ok[single_held], colour_chance),
    ]
    print()
    print(f"model: {args.model}   other renderer: {len(images)} images, seed={args.seed}")
    print(f"{'metric':<40} {'value':>7} {'chance':>7} {'n':>6}")
    print("-" * 63)
    for label, values, chance in rows:
        print(f"{label:<40} {np.mean(values):7.3f} {chance:7.3f} {len(values):6d}")
    confusion = np.zeros((len(synthetic.SHAPES), len(synthetic.SHAPES)), int)
    for t, p in zip([synthetic.SHAPES.index(it.shape) for it in first], shape_pred, strict=True):
        confusion[t, p] += 1
    print()
    print("shape accuracy per shape: " + ", ".join(
        f"{s} {confusion[k, k] / max(1, confusion[k].sum()):.2f}"
        for k, s in enumerate(synthetic.SHAPES)
    ))  # fmt: skip
    print("most common mistake per shape: " + ", ".join(
        f"{s} → {synthetic.SHAPES[int(np.argmax(np.where(np.arange(len(row)) == k, -1, row)))]}"
        for k, (s, row) in enumerate(zip(synthetic.SHAPES, confusion, strict=True))
    ))  # fmt: skip


if __name__ == "__main__":
    main()

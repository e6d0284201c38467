"""Evaluate ``anyshot-tiny`` on a fresh synthetic test collection and print a table.

Run from the repository root::

    HF_HUB_OFFLINE=1 python bench/eval_tiny.py [--model indexer/shapes/anyshot-tiny] [--n 3000]

The model is loaded as production loads it (``open_clip.create_model_and_transforms`` with
``local-dir:``, the open_clip tokenizer, the model's own preprocessing on PIL images). The test
collection is drawn from the ``all`` split with a seed the training never uses, so it holds both
seen and held-out (zero-shot) shape × colour pairs.

Metrics (chance = the score of a random ranking or a random guess):

- text→image precision@10 / recall@10 for the query "a photo of a {colour} {shape}" (averaged
  with a few templates), per pair, averaged over seen and over held-out pairs; an image is
  relevant if one of its objects has that shape and colour. recall@10 is bounded by
  10 / (number of relevant images); the bound is printed too.
- image→image precision@10: queries are the one-object images, relevant = another image holding
  an object of the same shape and colour.
- zero-shot classification of the shape and of the colour of one-object images, with averaged
  prompt templates.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from indexer.shapes import synthetic

PAIR_TEMPLATES = ("a photo of {}.", "{}", "a picture of {}")
SHAPE_TEMPLATES = ("a photo of {}.", "{}", "a picture of {}")
COLOUR_TEMPLATES = ("a photo of a {} shape.", "something {}", "a {} object")


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(description="Evaluate anyshot-tiny on synthetic shapes.")
    p.add_argument("--model", type=Path, default=Path("indexer/shapes/anyshot-tiny"))
    p.add_argument("--n", type=int, default=3000, help="test images")
    p.add_argument("--seed", type=int, default=20_261_130, help="test collection seed")
    p.add_argument("--image-size", type=int, default=64, help="rendered side in pixels")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def embed_texts(model, tokenizer, texts: list[str]) -> torch.Tensor:
    """Normalised text embeddings."""
    with torch.no_grad():
        return F.normalize(model.encode_text(tokenizer(texts)), dim=-1)


def embed_prompts(model, tokenizer, names: list[str], templates: tuple[str, ...]) -> torch.Tensor:
    """One normalised embedding per name: the mean over prompt templates, as CLIP does."""
    per_template = [embed_texts(model, tokenizer, [t.format(n) for n in names]) for t in templates]
    return F.normalize(torch.stack(per_template).mean(dim=0), dim=-1)


def embed_images(model, preprocess, images) -> torch.Tensor:
    """Normalised image embeddings through the model's own preprocessing (``images``: uint8
    HWC arrays or PIL images)."""
    feats = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            batch = torch.stack(
                [
                    preprocess(a if isinstance(a, Image.Image) else Image.fromarray(a))
                    for a in images[start : start + 256]
                ]
            )
            feats.append(model.encode_image(batch))
    return F.normalize(torch.cat(feats), dim=-1)


def load_model(folder: Path, threads: int):
    """``(model, preprocess, tokenizer)`` of a ``local-dir`` model folder, offline, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(threads)
    name = f"local-dir:{folder.resolve()}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


def main() -> None:
    """Build the collection, embed it, print the table."""
    args = parse_args()
    model, preprocess, tokenizer = load_model(args.model, args.threads)

    start = time.time()
    specs = synthetic.sample_scenes(args.n, seed=args.seed, split="all")
    images = synthetic.render_array(specs, args.image_size, workers=2)
    image_feats = embed_images(model, preprocess, images)
    elapsed = time.time() - start
    print(f"{args.n} test images ({args.image_size} px) rendered and embedded in {elapsed:.0f} s")

    # Text → image per (shape, colour) pair.
    pairs = sorted(synthetic.SEEN_PAIRS | synthetic.HELD_OUT_PAIRS)
    relevant = np.array([[pair in spec.pairs for spec in specs] for pair in pairs])  # (P, N)
    queries = embed_prompts(
        model, tokenizer, [synthetic.object_phrase(s, c) for s, c in pairs], PAIR_TEMPLATES
    )
    top = (queries @ image_feats.T).topk(10, dim=1).indices.numpy()
    hits = np.take_along_axis(relevant, top, axis=1).sum(axis=1)
    n_rel = relevant.sum(axis=1)
    precision, recall = hits / 10, hits / np.maximum(n_rel, 1)
    best_recall = np.minimum(10, n_rel) / np.maximum(n_rel, 1)
    chance_p = n_rel / args.n
    held = np.array([p in synthetic.HELD_OUT_PAIRS for p in pairs])

    # Image → image: one-object queries.
    single = [i for i, s in enumerate(specs) if len(s.objects) == 1]
    sims = image_feats[single] @ image_feats.T
    sims[torch.arange(len(single)), torch.tensor(single)] = -2  # never retrieve the query itself
    nn = sims.topk(10, dim=1).indices.numpy()
    pair_index = {p: k for k, p in enumerate(pairs)}
    q_pairs = [pair_index[next(iter(specs[i].pairs))] for i in single]
    i2i = np.array([relevant[q, row].mean() for q, row in zip(q_pairs, nn, strict=True)])
    i2i_chance = np.array([(relevant[q].sum() - 1) / (args.n - 1) for q in q_pairs])
    i2i_held = np.array([pairs[q] in synthetic.HELD_OUT_PAIRS for q in q_pairs])

    # Zero-shot classification of one-object images.
    shape_text = embed_prompts(
        model, tokenizer, [synthetic.object_phrase(s) for s in synthetic.SHAPES], SHAPE_TEMPLATES
    )
    colour_text = embed_prompts(model, tokenizer, list(synthetic.COLOURS), COLOUR_TEMPLATES)
    shape_pred = (image_feats[single] @ shape_text.T).argmax(dim=1).numpy()
    colour_pred = (image_feats[single] @ colour_text.T).argmax(dim=1).numpy()
    shape_true = np.array([synthetic.SHAPES.index(specs[i].objects[0].shape) for i in single])
    colour_true = np.array(
        [list(synthetic.COLOURS).index(specs[i].objects[0].colour) for i in single]
    )
    single_held = np.array([next(iter(specs[i].pairs)) in synthetic.HELD_OUT_PAIRS for i in single])

    shape_ok = shape_pred == shape_true
    colour_ok = colour_pred == colour_true
    shape_chance = np.full(1, 1 / len(synthetic.SHAPES))
    colour_chance = np.full(1, 1 / len(synthetic.COLOURS))
    recall_chance = chance_p * 10 / np.maximum(n_rel, 1)  # = 10 / n
    rows = [
        ("text→image P@10, seen pairs", precision[~held], chance_p[~held], None),
        ("text→image P@10, held-out pairs", precision[held], chance_p[held], None),
        ("text→image R@10, seen pairs", recall[~held], recall_chance[~held], best_recall[~held]),
        ("text→image R@10, held-out pairs", recall[held], recall_chance[held], best_recall[held]),
        ("image→image P@10, seen pairs", i2i[~i2i_held], i2i_chance[~i2i_held], None),
        ("image→image P@10, held-out pairs", i2i[i2i_held], i2i_chance[i2i_held], None),
        ("zero-shot shape accuracy, seen pairs", shape_ok[~single_held], shape_chance, None),
        ("zero-shot shape accuracy, held-out pairs", shape_ok[single_held], shape_chance, None),
        ("zero-shot colour accuracy, seen pairs", colour_ok[~single_held], colour_chance, None),
        ("zero-shot colour accuracy, held-out pairs", colour_ok[single_held], colour_chance, None),
    ]
    print()
    print(f"model: {args.model}   test collection: n={args.n}, seed={args.seed}, split=all")
    print(f"{'metric':<48} {'value':>7} {'chance':>7} {'max':>6} {'n':>6}")
    print("-" * 78)
    for label, values, chance, best in rows:
        best_text = f"{np.mean(best):.3f}" if best is not None else "1.000"
        value, base = np.mean(values), np.mean(chance)
        print(f"{label:<48} {value:7.3f} {base:7.3f} {best_text:>6} {len(values):6d}")
    print()
    worst = sorted(zip(precision[held], [pairs[k] for k in np.flatnonzero(held)], strict=True))[:5]
    print("weakest held-out pairs (P@10): " + ", ".join(f"{c} {s} {p:.1f}" for p, (s, c) in worst))


if __name__ == "__main__":
    main()

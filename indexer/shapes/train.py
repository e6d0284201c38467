"""Train ``anyshot-tiny``: a small open_clip model on the synthetic shapes domain, on CPU.

Run from the repository root::

    python -m indexer.shapes.train --out indexer/shapes/anyshot-tiny --seed 0 --threads 1

The script draws a training set of the ``train`` split (no held-out shape × colour pair ever
appears), renders it into memory at 64 px and resizes it to the model's input size exactly as
the model's own preprocessing does (PIL bicubic), trains an open_clip ``CLIP`` with open_clip's
contrastive ``ClipLoss``, and writes ``open_clip_config.json`` and
``open_clip_model.safetensors`` into ``--out`` in the ``local-dir:`` layout that
``open_clip.create_model_and_transforms`` reads.

Default recipe: a ViT image tower (patch 16 at 64 px, width 128, 4 layers), uniformly shuffled
batches of 256 scenes in which no caption occurs twice (a repeated caption is a false negative
for the contrastive loss), 2 500 steps of AdamW at lr 2e-3 with cosine decay. The shipped
weights start from it and end as a patch-8 ViT (``--vision vit --init``, which resizes the patch
kernels and the position grid) trained on varied renders: the model card has every command.

``--batching pairs`` is an alternative tried during development: each batch holds one one-object
image of every seen shape × colour pair (so neither attribute alone tells the samples apart) plus
``--multi`` multi-object scenes; with ``--attribute-loss`` > 0 it adds, around the main
``ClipLoss``, shape-only and colour-only ``ClipLoss`` terms over groups of samples in which that
attribute never repeats ("a circle" vs "a star" ...). It did not beat the default per image seen
in short runs and costs more per image, so it is not the default.

Robustness options (issue 15; see the model card for what they measured): ``--n-varied N``
adds N scenes of the ``train`` split drawn by :mod:`indexer.shapes.varied` (48–512 px canvases,
any rotation, outlines, textured backgrounds, JPEG, blur, ...; captions leave out a replaced
background); ``--init FOLDER`` fine-tunes from a model folder; ``--shape-loss`` / ``--colour-loss``
add zero-shot classification terms against the shape / colour prompts; ``--scramble N`` feeds
the shape term colour-permuted copies so colour cannot stand in for shape. A checkpoint is
written to ``--out`` at every check.

Same seed, same arguments and the same number of threads give the same weights (float sums can
differ between thread counts). This is a script: it prints its progress.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from PIL import Image
from safetensors.torch import load_file, save_file

from indexer.shapes import synthetic, varied

RENDER_SIZE = 64  # what bench/eval_tiny.py and the demo collection render
MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's OPENAI_DATASET_MEAN / _STD
STD = (0.26862954, 0.26130258, 0.27577711)


def vision_cfg(kind: str, image_size: int) -> dict:
    """The open_clip ``vision_cfg`` of an image tower preset at ``image_size`` pixels."""
    presets: dict[str, dict] = {
        "resnet": {"layers": [1, 1, 1, 1], "width": 16, "head_width": 32},
        "resnet32": {"layers": [1, 1, 1, 1], "width": 32, "head_width": 32},
        "vit": {"patch_size": 8, "width": 128, "layers": 4, "head_width": 32, "mlp_ratio": 2.0},
        "vit16": {"patch_size": 16, "width": 128, "layers": 4, "head_width": 32, "mlp_ratio": 2.0},
        "vit6": {"patch_size": 8, "width": 128, "layers": 6, "head_width": 32, "mlp_ratio": 2.0},
        "vit96": {"patch_size": 8, "width": 96, "layers": 6, "head_width": 32, "mlp_ratio": 2.0},
    }
    return {"image_size": image_size, **presets[kind]}


VISION_KINDS = ("resnet", "resnet32", "vit", "vit16", "vit6", "vit96")
TEXT_CFG: dict = {
    "context_length": 32,
    "vocab_size": 49408,
    "width": 128,
    "heads": 4,
    "layers": 3,
    "mlp_ratio": 2.0,
}


@dataclass
class TrainArgs:
    """Command-line arguments of the script."""

    out: Path
    seed: int
    n_train: int
    steps: int
    batching: str
    batch_size: int
    multi: int
    attribute_rate: float
    attribute_loss: float
    lr: float
    weight_decay: float
    warmup: int
    threads: int
    workers: int
    vision: str
    image_size: int
    log_every: int
    check_every: int
    cache: Path | None
    n_varied: int
    init: Path | None
    shape_loss: float
    colour_loss: float
    scramble: int


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    """Read the command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for config + weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=40_000, help="distinct training scenes")
    p.add_argument("--steps", type=int, default=2500, help="optimizer steps")
    p.add_argument(
        "--batching",
        choices=("pairs", "random"),
        default="random",
        help="pairs: one image of every seen pair + --multi scenes; random: --batch-size scenes",
    )
    p.add_argument("--batch-size", type=int, default=256, help="batch size of --batching random")
    p.add_argument("--multi", type=int, default=24, help="multi-object scenes per pairs batch")
    p.add_argument(
        "--attribute-rate",
        type=float,
        default=0.5,
        help="chance that a shape (colour) gets one shape-only (colour-only) caption per batch",
    )
    p.add_argument(
        "--attribute-loss",
        type=float,
        default=1.0,
        help="weight of the shape-only and colour-only ClipLoss terms of pairs batches",
    )
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (results depend on it; 1 is robust)"
    )
    p.add_argument("--workers", type=int, default=2, help="processes that render the images")
    p.add_argument("--vision", choices=VISION_KINDS, default="vit16", help="image tower preset")
    p.add_argument("--image-size", type=int, default=64, help="model input side in pixels")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--check-every", type=int, default=100, help="steps between quick checks")
    p.add_argument("--cache", type=Path, default=None, help="optional .npy cache of renders")
    p.add_argument(
        "--n-varied",
        type=int,
        default=0,
        help="extra training scenes drawn by varied.render_varied (sizes, strokes, backgrounds, "
        "artefacts), mixed uniformly with the --n-train plain renders",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="fine-tune from the weights in this local-dir model folder (same config)",
    )
    p.add_argument(
        "--shape-loss",
        type=float,
        default=0.0,
        help="weight of a zero-shot shape term: one-object images against the ten shape "
        "prompts ('a photo of a star', ...), cross-entropy through the text tower",
    )
    p.add_argument(
        "--colour-loss",
        type=float,
        default=0.0,
        help="weight of the same term for the twelve colour prompts ('a red shape', ...)",
    )
    p.add_argument(
        "--scramble",
        type=int,
        default=0,
        help="feed the shape term up to this many one-object images with their colour channels "
        "permuted or greyed instead of the originals: colour can then no longer stand in for "
        "shape (without it the term teaches 'red is never a circle' from the held-out split)",
    )
    ns = p.parse_args(argv)
    return TrainArgs(**vars(ns))


def model_config(args: TrainArgs) -> dict:
    """The open_clip model config for these arguments."""
    return {
        "embed_dim": 128,
        "vision_cfg": vision_cfg(args.vision, args.image_size),
        "text_cfg": dict(TEXT_CFG),
    }


def preprocess_config(image_size: int) -> dict:
    """The ``preprocess_cfg`` stored next to the weights."""
    return {
        "size": image_size,
        "mode": "RGB",
        "mean": list(MEAN),
        "std": list(STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }


def render(specs: list, image_size: int, workers: int) -> torch.Tensor:
    """Render at :data:`RENDER_SIZE` and resize as the model's preprocessing does → uint8 NCHW."""
    array = synthetic.render_array(specs, RENDER_SIZE, workers=workers)
    if image_size != RENDER_SIZE:
        size = (image_size, image_size)
        array = np.stack(
            [np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BICUBIC)) for a in array]
        )
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def encode_text_trimmed(model: open_clip.CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` computed only up to the longest caption in the batch.

    The text tower is causal and pools at the end-of-text token, so padding after the longest
    caption changes nothing; dropping it saves most of the text tower's work on short captions.
    """
    length = int((tokens != 0).sum(dim=1).max())
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    return x @ model.text_projection


class CaptionTokens:
    """Tokenizes captions with the production open_clip tokenizer, caching repeated ones."""

    def __init__(self, context_length: int) -> None:
        self._tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=context_length)
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self._cache]
        if missing:
            for caption, row in zip(missing, self._tokenizer(missing), strict=True):
                self._cache[caption] = row
        return torch.stack([self._cache[c] for c in captions])


def caption(
    spec: synthetic.SceneSpec,
    rng: random.Random,
    used: set[str],
    *,
    shape: bool | None = None,
    colour: bool | None = None,
    background: bool = True,
) -> str:
    """A caption of ``spec`` not in ``used`` (which it joins), from ``synthetic.caption_scene``.

    For a one-object scene, ``shape`` / ``colour`` (when not None) require the caption to name
    (True) or not to name (False) the object's shape / colour. Falls back to a caption that
    repeats one already in the batch only if 50 draws found no other. ``background=False``
    refuses captions that describe the background (the image's background was replaced).
    """
    obj = spec.objects[0]
    text = ""
    for _ in range(50):
        text = synthetic.caption_scene(spec, rng)
        words = text.split()
        if not background and "background" in words:
            continue
        if len(spec.objects) == 1 and (
            (shape is not None and (obj.shape in words) != shape)
            or (colour is not None and (obj.colour in words) != colour)
        ):
            continue
        if text not in used:
            break
    used.add(text)
    return text


class PairBatches:
    """Batches of one one-object image per seen pair plus a few multi-object scenes."""

    def __init__(self, specs: list, args: TrainArgs) -> None:
        self.specs = specs
        self.args = args
        self.pairs = sorted(synthetic.SEEN_PAIRS)
        by_pair: dict[tuple[str, str], list[int]] = {p: [] for p in self.pairs}
        multi = []
        for i, spec in enumerate(specs):
            if len(spec.objects) == 1:
                by_pair[next(iter(spec.pairs))].append(i)
            else:
                multi.append(i)
        self.by_pair = [np.asarray(by_pair[p]) for p in self.pairs]
        self.multi = np.asarray(multi)
        self.rng = np.random.default_rng(args.seed)
        self.caption_rng = random.Random(f"train-captions-{args.seed}")

    def __call__(self) -> tuple[np.ndarray, list[str], list]:
        rng, crng = self.rng, self.caption_rng
        single = np.array([pool[rng.integers(len(pool))] for pool in self.by_pair])
        multi = rng.choice(self.multi, size=self.args.multi, replace=False)
        # Which one-object samples get a single-attribute caption: per shape and per colour at
        # most one, never the same sample for both.
        order = rng.permutation(len(single))
        attribute: dict[int, str] = {}
        taken_shapes: set[str] = set()
        taken_colours: set[str] = set()
        for k in order:
            shape, colour = self.pairs[k]
            if shape not in taken_shapes and crng.random() < self.args.attribute_rate:
                taken_shapes.add(shape)
                attribute[k] = "shape"
            elif colour not in taken_colours and crng.random() < self.args.attribute_rate:
                taken_colours.add(colour)
                attribute[k] = "colour"
            # A shape or colour that was offered once is not offered again in this batch.
            taken_shapes.add(shape)
            taken_colours.add(colour)
        used: set[str] = set()
        captions = []
        for k, i in enumerate(single):
            kind = attribute.get(k)
            spec = self.specs[i]
            if kind == "shape":
                captions.append(caption(spec, crng, used, shape=True, colour=False))
            elif kind == "colour":
                captions.append(caption(spec, crng, used, shape=False, colour=True))
            else:
                captions.append(caption(spec, crng, used, shape=True, colour=True))
        captions += [caption(self.specs[i], crng, used) for i in multi]
        groups = []
        if self.args.attribute_loss > 0:
            groups = self.attribute_groups(single, 0, shape=True) + self.attribute_groups(
                single, 1, shape=False
            )
        return np.concatenate([single, multi]), captions, groups

    def attribute_groups(
        self, single: np.ndarray, part: int, *, shape: bool
    ) -> list[tuple[np.ndarray, list[str]]]:
        """Groups of one-object samples, one per shape (colour), captioned by shape (colour).

        Within a group every shape (colour) occurs once, so the single-attribute captions are
        all different and the group is a clean contrastive problem on that attribute alone.
        """
        rng, crng = self.rng, self.caption_rng
        by_value: dict[str, list[int]] = {}
        for k, pair in enumerate(self.pairs):
            by_value.setdefault(pair[part], []).append(k)
        members = [rng.permutation(ks) for ks in by_value.values()]
        groups = []
        for j in range(min(len(ks) for ks in members)):
            index = np.array([ks[j] for ks in members])
            used: set[str] = set()
            texts = [
                caption(self.specs[single[k]], crng, used, shape=shape, colour=not shape)
                for k in index
            ]
            groups.append((index, texts))
        return groups


class RandomBatches:
    """Uniformly shuffled batches of ``--batch-size`` scenes, captions unique per batch."""

    def __init__(self, specs: list, args: TrainArgs, background: np.ndarray | None = None) -> None:
        self.specs = specs
        self.args = args
        # False where the image's background no longer matches its spec (varied renders).
        self.background = np.ones(len(specs), bool) if background is None else background
        self.rng = np.random.default_rng(args.seed)
        self.caption_rng = random.Random(f"train-captions-{args.seed}")
        self.permutation = self.rng.permutation(len(specs))
        self.cursor = 0

    def __call__(self) -> tuple[np.ndarray, list[str], list]:
        size = self.args.batch_size
        if self.cursor + size > len(self.permutation):
            self.permutation, self.cursor = self.rng.permutation(len(self.specs)), 0
        index = self.permutation[self.cursor : self.cursor + size]
        self.cursor += size
        used: set[str] = set()
        captions = [
            caption(self.specs[i], self.caption_rng, used, background=bool(self.background[i]))
            for i in index
        ]
        return index, captions, []


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW → float NCHW normalised with the config's mean and std."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's rule: no weight decay on gains, biases, embeddings of rank 1, logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        skip = param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name
        (no_decay if skip or "logit_scale" in name else decay).append(param)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def quick_check(
    model: open_clip.CLIP, tokens: CaptionTokens, images: torch.Tensor, specs: list
) -> tuple[float, float, float]:
    """Text→image P@10 (seen, held-out pairs) and held-out zero-shot shape accuracy."""
    model.eval()
    with torch.no_grad():
        feats = torch.cat(
            [model.encode_image(normalise(images[i : i + 512])) for i in range(0, len(images), 512)]
        )
        feats = F.normalize(feats, dim=-1)
        pairs = sorted(synthetic.SEEN_PAIRS | synthetic.HELD_OUT_PAIRS)
        queries = tokens([f"a photo of {synthetic.object_phrase(s, c)}" for s, c in pairs])
        text = F.normalize(model.encode_text(queries), dim=-1)
        top = (text @ feats.T).topk(10, dim=1).indices
        shapes = tokens([f"a photo of {synthetic.object_phrase(s)}" for s in synthetic.SHAPES])
        predicted = (feats @ F.normalize(model.encode_text(shapes), dim=-1).T).argmax(dim=1)
    model.train()
    seen, held = [], []
    for (shape, colour), row in zip(pairs, top.tolist(), strict=True):
        p = sum((shape, colour) in specs[i].pairs for i in row) / 10
        (held if (shape, colour) in synthetic.HELD_OUT_PAIRS else seen).append(p)
    shape_ok = [
        synthetic.SHAPES[int(predicted[i])] == spec.objects[0].shape
        for i, spec in enumerate(specs)
        if len(spec.objects) == 1 and spec.pairs <= synthetic.HELD_OUT_PAIRS
    ]
    return float(np.mean(seen)), float(np.mean(held)), float(np.mean(shape_ok))


def save_model(model: open_clip.CLIP, cfg: dict, out: Path) -> None:
    """Write ``open_clip_config.json`` + ``open_clip_model.safetensors`` (fp16) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    # Large matrices (mostly the 49408-row token table) are stored in fp16, which halves the
    # file; open_clip casts them back to the model's dtype on load. Small tensors (norms,
    # batch-norm statistics, the logit scale) stay as they are.
    state = {
        k: (v.half() if v.is_floating_point() and v.numel() >= 65536 else v).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(out / "open_clip_model.safetensors"), metadata={"format": "pt"})
    image_size = cfg["vision_cfg"]["image_size"]
    config = {"model_cfg": cfg, "preprocess_cfg": preprocess_config(image_size)}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")


def training_images(specs: list, args: TrainArgs) -> torch.Tensor:
    """The rendered training set, read from / written to ``--cache`` when given.

    The cache is used only if its sidecar ``.json`` matches the seed, size and image side, so a
    stale cache is re-rendered rather than trained on.
    """
    key = {"seed": args.seed, "n_train": args.n_train, "image_size": args.image_size}
    sidecar = args.cache.with_suffix(".json") if args.cache is not None else None
    cached = sidecar is not None and args.cache.exists() and sidecar.exists()
    if cached and json.loads(sidecar.read_text()) == key:
        return torch.from_numpy(np.load(args.cache))
    images = render(specs, args.image_size, args.workers)
    if args.cache is not None:
        np.save(args.cache, images.numpy())
        sidecar.write_text(json.dumps(key))
    return images


def varied_images(specs: list, args: TrainArgs) -> tuple[torch.Tensor, np.ndarray]:
    """The varied renders (uint8 NCHW) and their background-kept flags, cached like the rest."""
    key = {"seed": args.seed, "n_varied": args.n_varied, "image_size": args.image_size}
    cache = args.cache.with_name(args.cache.stem + "-varied.npz") if args.cache else None
    sidecar = cache.with_suffix(".json") if cache is not None else None
    cached = cache is not None and cache.exists() and sidecar.exists()
    if cached and json.loads(sidecar.read_text()) == key:
        data = np.load(cache)
        return torch.from_numpy(data["images"]), data["kept"]
    array, kept = varied.render_varied_array(
        specs, seed=1_000_000 + args.seed, size=args.image_size, workers=args.workers
    )
    images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
    if cache is not None:
        np.savez(cache, images=images.numpy(), kept=kept)
        sidecar.write_text(json.dumps(key))
    return images, kept


def load_init(model: open_clip.CLIP, folder: Path) -> None:
    """Load the weights of a ``local-dir`` model folder into ``model`` (fp16 tensors cast).

    The image tower may have another patch size than the folder's (a ViT at patch 16 starts a
    ViT at patch 8): the patch embedding's kernels are resized (bilinear, scaled so that a
    patch's response keeps its size) and the position grid is interpolated (open_clip's
    ``resize_pos_embed``); every other tensor must match.
    """
    state = load_file(str(folder / "open_clip_model.safetensors"))
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) for k, v in state.items()}
    kernel = state.get("visual.conv1.weight")
    wanted = reference.get("visual.conv1.weight")
    if kernel is not None and wanted is not None and kernel.shape != wanted.shape:
        area = (kernel.shape[-1] * kernel.shape[-2]) / (wanted.shape[-1] * wanted.shape[-2])
        state["visual.conv1.weight"] = area * F.interpolate(
            kernel, size=tuple(wanted.shape[-2:]), mode="bilinear", antialias=True
        )
        open_clip.model.resize_pos_embed(state, model)
    model.load_state_dict(state)


# Prompts of the zero-shot attribute terms, cycled per step; {a} is the name with its article.
SHAPE_PROMPTS = ("a photo of {a}", "{a}", "a picture of {a}")
COLOUR_PROMPTS = ("{a} shape", "something {name}", "a photo of {a} object")


def attribute_loss(
    model: open_clip.CLIP,
    tokens: CaptionTokens,
    image_features: torch.Tensor,
    labels: list[str | None],
    names: list[str],
    prompt: str,
    scale: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy of samples with a label against one prompt per name (zero-shot style).

    Samples whose label is None (several objects) are left out; ``prompt`` is formatted with
    ``name`` and ``a`` (the name with its article: ``"a photo of {a}"`` → "a photo of an ellipse").
    """
    rows = [k for k, label in enumerate(labels) if label is not None]
    if not rows:
        return image_features.sum() * 0
    texts = [prompt.format(name=n, a=synthetic.object_phrase(n)) for n in names]
    text = F.normalize(encode_text_trimmed(model, tokens(texts)), dim=-1)
    target = torch.tensor([names.index(labels[k]) for k in rows])
    return F.cross_entropy(scale * image_features[rows] @ text.T, target)


_PERMUTATIONS = ((1, 0, 2), (2, 1, 0), (0, 2, 1), (1, 2, 0), (2, 0, 1))


def scramble_colours(images: torch.Tensor, step: int) -> torch.Tensor:
    """uint8 NCHW images with their colour channels permuted (a different non-identity
    permutation per image) or, for every fourth image, greyed; deterministic from ``step``."""
    generator = torch.Generator().manual_seed(step)
    out = images.clone()
    choice = torch.randint(0, len(_PERMUTATIONS) + 2, (len(images),), generator=generator)
    for k, c in enumerate(choice.tolist()):
        if c < len(_PERMUTATIONS):
            out[k] = images[k][list(_PERMUTATIONS[c])]
        else:
            out[k] = images[k].float().mean(dim=0, keepdim=True).round().to(torch.uint8)
    return out


def main(argv: list[str] | None = None) -> None:
    """Train and save the model."""
    args = parse_args(argv)
    start = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    cfg = model_config(args)
    print(f"config: {json.dumps(cfg)}", flush=True)
    print(f"args: {args}", flush=True)

    specs = synthetic.sample_scenes(args.n_train, seed=args.seed, split="train")
    images = training_images(specs, args)
    background = np.ones(len(specs), bool)
    if args.n_varied:
        extra = synthetic.sample_scenes(args.n_varied, seed=500_000 + args.seed, split="train")
        extra_images, kept = varied_images(extra, args)
        specs = specs + extra
        images = torch.cat([images, extra_images])
        background = np.concatenate([background, kept])
    val_specs = synthetic.sample_scenes(1200, seed=10_000 + args.seed, split="all")
    val_images = render(val_specs, args.image_size, workers=1)
    varied_val = None
    if args.n_varied:
        array, _ = varied.render_varied_array(
            val_specs, seed=2_000_000 + args.seed, size=args.image_size
        )
        varied_val = (torch.from_numpy(array).permute(0, 3, 1, 2).contiguous(), val_specs)
    print(f"rendered {len(specs)} training images in {time.time() - start:.0f} s", flush=True)

    model = open_clip.CLIP(**cfg, output_dict=True)
    if args.init is not None:
        load_init(model, args.init)
        print(f"initialised from {args.init}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)
    tokens = CaptionTokens(cfg["text_cfg"]["context_length"])
    loss_fn = ClipLoss()
    optimizer = torch.optim.AdamW(
        param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6
    )
    if args.batching == "pairs":
        batches = PairBatches(specs, args)
    else:
        batches = RandomBatches(specs, args, background)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * progress))

    train_start = time.time()
    running = 0.0
    seen_images = 0
    model.train()
    for step in range(args.steps):
        index, captions, groups = batches()
        seen_images += len(index)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)

        batch = normalise(images[torch.from_numpy(index)])
        all_captions = captions + [text for _, texts in groups for text in texts]
        unique = list(dict.fromkeys(all_captions))
        where = {c: k for k, c in enumerate(unique)}
        text_features = F.normalize(encode_text_trimmed(model, tokens(unique)), dim=-1)
        image_features = F.normalize(model.encode_image(batch), dim=-1)
        scale = model.logit_scale.exp()
        rows = torch.tensor([where[c] for c in captions])
        loss = loss_fn(image_features, text_features[rows], scale)
        if groups:
            # Shape-only and colour-only contrastive terms, each over a group in which the
            # attribute never repeats; averaged over the groups.
            extra = [
                loss_fn(
                    image_features[torch.from_numpy(members)],
                    text_features[torch.tensor([where[c] for c in texts])],
                    scale,
                )
                for members, texts in groups
            ]
            loss = loss + args.attribute_loss * torch.stack(extra).mean()
        if args.shape_loss or args.colour_loss:
            objects = [specs[i].objects for i in index]
            one = [o[0] if len(o) == 1 else None for o in objects]
            rng_prompt = SHAPE_PROMPTS[step % len(SHAPE_PROMPTS)]
            if args.shape_loss:
                shapes = [o.shape if o else None for o in one]
                features = image_features
                if args.scramble:
                    rows = [k for k, o in enumerate(one) if o is not None][: args.scramble]
                    features = F.normalize(
                        model.encode_image(
                            normalise(scramble_colours(images[torch.from_numpy(index[rows])], step))
                        ),
                        dim=-1,
                    )
                    shapes = [shapes[k] for k in rows]
                loss = loss + args.shape_loss * attribute_loss(
                    model, tokens, features, shapes, list(synthetic.SHAPES), rng_prompt, scale
                )
            if args.colour_loss:
                colours = [o.colour if o else None for o in one]
                prompt = COLOUR_PROMPTS[step % len(COLOUR_PROMPTS)]
                loss = loss + args.colour_loss * attribute_loss(
                    model, tokens, image_features, colours, list(synthetic.COLOURS), prompt, scale
                )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))

        running = loss.item() if step == 0 else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            elapsed = time.time() - train_start
            print(
                f"step {step + 1}/{args.steps} loss {running:.3f} lr {lr_at(step):.2e} "
                f"scale {model.logit_scale.exp().item():.1f} {seen_images / elapsed:.0f} img/s "
                f"elapsed {elapsed:.0f} s",
                flush=True,
            )
        if (step + 1) % args.check_every == 0 or step + 1 == args.steps:
            seen, held, shape = quick_check(model, tokens, val_images, val_specs)
            print(
                f"  check: text→image P@10 seen {seen:.3f} held-out {held:.3f}, "
                f"held-out shape accuracy {shape:.3f}",
                flush=True,
            )
            if varied_val is not None:
                seen, held, shape = quick_check(model, tokens, *varied_val)
                print(
                    f"  varied: text→image P@10 seen {seen:.3f} held-out {held:.3f}, "
                    f"held-out shape accuracy {shape:.3f}",
                    flush=True,
                )
            # A checkpoint at every check, so a run stopped early still leaves a model.
            save_model(model, cfg, args.out)

    save_model(model, cfg, args.out)
    print(f"saved to {args.out} after {time.time() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()

"""A synthetic image domain with known attributes: coloured shapes on simple backgrounds.

Every image is drawn from a :class:`SceneSpec`, the list of its objects (shape, colour, size,
position) plus its background, so captions and relevance labels come straight from the
generating attributes. The tiny shipped model ``anyshot-tiny`` is trained on this domain, the
``anyshot demo`` command indexes a collection of it, and the tests use it as ground truth.

About 20% of the shape × colour combinations (:data:`HELD_OUT_PAIRS`) never appear in the
training split: retrieving them by text is the zero-shot test.

Everything is deterministic from a seed: :func:`sample_scene` draws attributes and a render
seed from the caller's :class:`random.Random`, and :func:`render_scene` draws the small
continuous variations (rotation, jitter, colour noise, blur, pixel noise) from that render seed,
so no two images are pixel-identical yet each can be redrawn exactly.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "HELD_OUT_PAIRS",
    "POSITIONS",
    "SEEN_PAIRS",
    "SHAPES",
    "SIZES",
    "ObjectSpec",
    "SceneSpec",
    "Split",
    "caption_scene",
    "generate_collection",
    "object_phrase",
    "pairs_for_split",
    "render_array",
    "render_scene",
    "sample_scene",
    "sample_scenes",
]

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "cross",
    "ring",
    "diamond",
    "heart",
    "ellipse",
)
"""Shape names, in a fixed order (the order defines :data:`HELD_OUT_PAIRS`)."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "purple": (125, 50, 170),
    "orange": (250, 140, 20),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "pink": (250, 150, 195),
    "brown": (125, 75, 35),
    "grey": (128, 128, 128),
    "cyan": (40, 210, 225),
}
"""Colour names and their RGB values, in a fixed order."""

SIZES: dict[str, float] = {"small": 0.26, "large": 0.52}
"""Size names and the object's diameter as a fraction of the image side."""

POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (0.5, 0.5),
    "left": (0.26, 0.5),
    "right": (0.74, 0.5),
    "top": (0.5, 0.26),
    "bottom": (0.5, 0.74),
}
"""Position names and the object's centre (x, y) as fractions of the image side."""

BACKGROUNDS: tuple[str, ...] = ("plain", "stripes", "dots", "noise")
"""Background kinds; each is drawn in one named colour from :data:`COLOURS`."""

Split = Literal["train", "test", "all"]


def _held_out_pairs() -> frozenset[tuple[str, str]]:
    # (3·shape + colour) ≡ 0 (mod 5) picks exactly 24 of the 120 pairs (20%): two or three
    # colours per shape and exactly two shapes per colour, so every shape and every colour is
    # still seen in training with most of its partners.
    return frozenset(
        (shape, colour)
        for s, shape in enumerate(SHAPES)
        for c, colour in enumerate(COLOURS)
        if (3 * s + c) % 5 == 0
    )


HELD_OUT_PAIRS: frozenset[tuple[str, str]] = _held_out_pairs()
"""(shape, colour) combinations that never appear in the training split (about 20%)."""

SEEN_PAIRS: frozenset[tuple[str, str]] = (
    frozenset((shape, colour) for shape in SHAPES for colour in COLOURS) - HELD_OUT_PAIRS
)
"""(shape, colour) combinations of the training split."""

_PLURALS = {"cross": "crosses"}
_POSITION_PHRASES = {
    "centre": ("in the centre", "in the middle"),
    "left": ("on the left",),
    "right": ("on the right",),
    "top": ("at the top",),
    "bottom": ("at the bottom",),
}
_BACKGROUND_ADJECTIVES = {
    "plain": ("plain", ""),
    "stripes": ("striped",),
    "dots": ("dotted", "polka-dot"),
    "noise": ("noisy", "speckled"),
}
_COUNT_WORDS = {2: "two", 3: "three"}


@dataclass(frozen=True)
class ObjectSpec:
    """One shape in a scene.

    Attributes:
        shape: A name from :data:`SHAPES`.
        colour: A name from :data:`COLOURS`.
        size: A name from :data:`SIZES`.
        position: A name from :data:`POSITIONS`.
    """

    shape: str
    colour: str
    size: str
    position: str


@dataclass(frozen=True)
class SceneSpec:
    """The generating attributes of one image.

    Attributes:
        objects: One to three objects, drawn in this order.
        background: A kind from :data:`BACKGROUNDS`.
        background_colour: A name from :data:`COLOURS`, never one of the objects' colours.
        seed: Seeds the small continuous variations of :func:`render_scene`.
    """

    objects: tuple[ObjectSpec, ...]
    background: str
    background_colour: str
    seed: int = 0

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        """The (shape, colour) pairs present in the scene."""
        return frozenset((o.shape, o.colour) for o in self.objects)

    def to_dict(self) -> dict:
        """Plain JSON-ready attributes (objects as a list of dicts)."""
        return asdict(self) | {"objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> SceneSpec:
        """Rebuild a spec written by :meth:`to_dict`."""
        objects = tuple(ObjectSpec(**o) for o in data["objects"])
        return cls(
            objects=objects,
            background=data["background"],
            background_colour=data["background_colour"],
            seed=int(data["seed"]),
        )


def pairs_for_split(split: Split) -> frozenset[tuple[str, str]]:
    """The (shape, colour) pairs a split may contain.

    Args:
        split: ``"train"`` (seen pairs only), ``"test"`` (held-out pairs only) or ``"all"``.

    Returns:
        The allowed pairs.

    Raises:
        ValueError: If ``split`` is not one of the three names.
    """
    if split == "train":
        return SEEN_PAIRS
    if split == "test":
        return HELD_OUT_PAIRS
    if split == "all":
        return SEEN_PAIRS | HELD_OUT_PAIRS
    raise ValueError(f"unknown split {split!r}: expected 'train', 'test' or 'all'")


# Object layouts for multi-object scenes: positions far enough apart for small objects.
_LAYOUTS = {
    2: (
        ("left", "right"),
        ("top", "bottom"),
        ("left", "top"),
        ("right", "bottom"),
        ("top", "right"),
    ),
    3: (("left", "centre", "right"), ("top", "centre", "bottom"), ("left", "top", "right")),
}


def sample_scene(
    rng: random.Random, *, allowed_pairs: Iterable[tuple[str, str]] | None = None
) -> SceneSpec:
    """Draw the attributes of one scene.

    Most scenes (60%) hold one object; the rest two or three small ones, half of the time all
    alike (``"two small green stars"``).

    Args:
        rng: The source of randomness; the same state gives the same scene.
        allowed_pairs: (shape, colour) pairs objects may take; all pairs if None.

    Returns:
        The scene, with a render seed drawn from ``rng``.

    Raises:
        ValueError: If ``allowed_pairs`` is empty.
    """
    pairs = sorted(allowed_pairs) if allowed_pairs is not None else None
    if pairs is not None and not pairs:
        raise ValueError("allowed_pairs is empty")

    def draw_pair() -> tuple[str, str]:
        if pairs is None:
            return rng.choice(SHAPES), rng.choice(tuple(COLOURS))
        return rng.choice(pairs)

    r = rng.random()
    count = 1 if r < 0.6 else 2 if r < 0.85 else 3
    if count == 1:
        shape, colour = draw_pair()
        objects = (
            ObjectSpec(shape, colour, rng.choice(tuple(SIZES)), rng.choice(tuple(POSITIONS))),
        )
    else:
        layout = rng.choice(_LAYOUTS[count])
        alike = rng.random() < 0.5
        first = draw_pair()
        drawn = [first if alike or i == 0 else draw_pair() for i in range(count)]
        objects = tuple(
            ObjectSpec(shape, colour, "small", position)
            for (shape, colour), position in zip(drawn, layout, strict=True)
        )
    used = {o.colour for o in objects}
    background_colour = rng.choice([c for c in COLOURS if c not in used])
    background = rng.choice(BACKGROUNDS)
    return SceneSpec(objects, background, background_colour, seed=rng.getrandbits(32))


def sample_scenes(n: int, *, seed: int, split: Split = "all") -> list[SceneSpec]:
    """Draw ``n`` scenes deterministically from ``seed``.

    Args:
        n: How many scenes.
        seed: The seed; the same seed and split give the same scenes.
        split: Which (shape, colour) pairs objects may take (see :func:`pairs_for_split`).

    Returns:
        The scenes.
    """
    rng = random.Random(seed)
    allowed = pairs_for_split(split)
    return [sample_scene(rng, allowed_pairs=allowed) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# Rendering


def _unit_polygon(shape: str) -> list[tuple[float, float]]:
    """Outline of a shape of radius about 1 around the origin (y grows downwards)."""

    def regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list:
        return [
            (
                radius * math.cos(phase + 2 * math.pi * k / n),
                radius * math.sin(phase + 2 * math.pi * k / n),
            )
            for k in range(n)
        ]

    if shape in ("circle", "ring"):
        return regular(48)
    if shape == "ellipse":
        return [(x, 0.58 * y) for x, y in regular(48)]
    if shape == "square":
        return [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]
    if shape == "diamond":
        return [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]
    if shape == "triangle":
        return [(x, y + 0.2) for x, y in regular(3, 1.05)]
    if shape == "hexagon":
        return regular(6, phase=0.0)
    if shape == "star":
        outer = regular(5)
        inner = regular(5, 0.42, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        a, b = 0.3, 0.95
        return [
            (-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
            (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a),
        ]  # fmt: skip
    if shape == "heart":
        points = []
        for k in range(48):
            t = 2 * math.pi * k / 48
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((x / 16.5, -y / 16.5 + 0.1))
        return points
    raise ValueError(f"unknown shape {shape!r}")


_UNIT_POLYGONS = {shape: np.asarray(_unit_polygon(shape)) for shape in SHAPES}
_RING_HOLE = 0.55
_SUPERSAMPLE = 4


def _jittered_colour(name: str, rng: np.random.Generator, spread: int = 12) -> tuple[int, int, int]:
    rgb = np.asarray(COLOURS[name]) + rng.integers(-spread, spread + 1, size=3)
    r, g, b = (int(v) for v in np.clip(rgb, 0, 255))
    return r, g, b


def _background(spec: SceneSpec, side: int, rng: np.random.Generator) -> Image.Image:
    """Background at supersampled resolution."""
    base = _jittered_colour(spec.background_colour, rng)
    canvas = Image.new("RGB", (side, side), base)
    if spec.background == "plain":
        return canvas
    # The pattern colour is a lighter or darker shade of the same named colour, so the
    # background keeps one name.
    light = sum(base) / 3 >= 140
    shade = tuple(int(v * 0.65) if light else int(v + (255 - v) * 0.45) for v in base)
    draw = ImageDraw.Draw(canvas)
    if spec.background == "stripes":
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(0.12, 0.22) * side
        phase = rng.uniform(0, period)
        normal = np.array([math.cos(angle), math.sin(angle)])
        tangent = np.array([-normal[1], normal[0]])
        centre = np.array([side / 2, side / 2])
        reach = side * 0.75
        offset = -reach + phase
        while offset < reach:
            corners = [
                centre + normal * u + tangent * v
                for u, v in (
                    (offset, -reach),
                    (offset + period / 2, -reach),
                    (offset + period / 2, reach),
                    (offset, reach),
                )
            ]
            draw.polygon([tuple(c) for c in corners], fill=shade)
            offset += period
        return canvas
    if spec.background == "dots":
        spacing = rng.uniform(0.12, 0.2) * side
        radius = spacing * rng.uniform(0.18, 0.3)
        ox, oy = rng.uniform(0, spacing, size=2)
        for y in np.arange(oy - spacing, side + spacing, spacing):
            for x in np.arange(ox - spacing, side + spacing, spacing):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=shade)
        return canvas
    if spec.background == "noise":
        cells = side // 16 + 1
        coarse = rng.normal(0, 1, size=(cells, cells))
        amount = np.clip(128 + 64 * coarse, 0, 255).astype(np.uint8)
        mask = Image.fromarray(amount).resize((side, side), Image.Resampling.BICUBIC)
        return Image.composite(Image.new("RGB", (side, side), shade), canvas, mask)
    raise ValueError(f"unknown background {spec.background!r}")


def _draw_object(canvas: Image.Image, obj: ObjectSpec, rng: np.random.Generator) -> None:
    """Paint one object onto a supersampled canvas."""
    side = canvas.width
    diameter = SIZES[obj.size] * rng.uniform(0.9, 1.1)
    cx, cy = POSITIONS[obj.position]
    cx += rng.uniform(-0.025, 0.025)
    cy += rng.uniform(-0.025, 0.025)
    angle = math.radians(rng.uniform(-18, 18))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    radius = diameter / 2 * side
    centre = np.array([cx * side, cy * side])

    def place(points: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in points @ rotation.T * radius + centre]

    colour = _jittered_colour(obj.colour, rng)
    if obj.shape == "ring":
        mask = Image.new("L", (side, side), 0)
        draw = ImageDraw.Draw(mask)
        draw.polygon(place(_UNIT_POLYGONS["circle"]), fill=255)
        draw.polygon(place(_UNIT_POLYGONS["circle"] * _RING_HOLE), fill=0)
        canvas.paste(colour, mask=mask)
    else:
        ImageDraw.Draw(canvas).polygon(place(_UNIT_POLYGONS[obj.shape]), fill=colour)


def render_scene(spec: SceneSpec, size: int = 64) -> Image.Image:
    """Draw a scene.

    The render seed in ``spec`` fixes the small variations (size ±10%, position jitter, rotation
    up to ±18°, colour jitter, pattern phase, blur, pixel noise), so the same spec always gives
    the same pixels and two specs differing only in seed give different pixels.

    Args:
        spec: The scene.
        size: Side of the square image in pixels (e.g. 64–96).

    Returns:
        An RGB image of ``size`` × ``size`` pixels.
    """
    rng = np.random.default_rng(spec.seed)
    canvas = _background(spec, size * _SUPERSAMPLE, rng)
    for obj in spec.objects:
        _draw_object(canvas, obj, rng)
    image = canvas.resize((size, size), Image.Resampling.BOX)
    blur = rng.uniform(0.0, 0.7)
    if blur > 0.15:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    noise = rng.normal(0, rng.uniform(1.0, 4.0), (size, size, 3))
    pixels = np.asarray(image, np.int16) + np.rint(noise).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _render_chunk(args: tuple[list[SceneSpec], int]) -> np.ndarray:
    specs, size = args
    return np.stack([np.asarray(render_scene(spec, size)) for spec in specs])


def render_array(specs: Sequence[SceneSpec], size: int = 64, *, workers: int = 1) -> np.ndarray:
    """Draw many scenes into one uint8 array, for training and evaluation without files.

    Args:
        specs: The scenes.
        size: Side of each image in pixels.
        workers: Worker processes; 1 draws in this process. The result does not depend on it.

    Returns:
        A ``(len(specs), size, size, 3)`` uint8 array, in the order of ``specs``.
    """
    if not specs:
        return np.zeros((0, size, size, 3), np.uint8)
    chunk = 256
    jobs = [(list(specs[i : i + chunk]), size) for i in range(0, len(specs), chunk)]
    if workers <= 1 or len(jobs) == 1:
        return np.concatenate([_render_chunk(job) for job in jobs])
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(_render_chunk, jobs)))


# ---------------------------------------------------------------------------------------------
# Captions


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _with_article(phrase: str) -> str:
    return f"{_article(phrase)} {phrase}"


def object_phrase(shape: str, colour: str | None = None, size: str | None = None) -> str:
    """An object named with its article, e.g. ``"an orange circle"`` or ``"a large star"``.

    Args:
        shape: A name from :data:`SHAPES`.
        colour: A name from :data:`COLOURS`, or None to leave it out.
        size: A name from :data:`SIZES`, or None to leave it out.

    Returns:
        The phrase.
    """
    return _with_article(" ".join(w for w in (size, colour, shape) if w))


def _plural(shape: str) -> str:
    return _PLURALS.get(shape, shape + "s")


def _background_phrase(spec: SceneSpec, rng: random.Random) -> str:
    adjective = rng.choice(_BACKGROUND_ADJECTIVES[spec.background])
    words = " ".join(w for w in (adjective, spec.background_colour) if w)
    return f"{_with_article(words)} background"


def _single_caption(obj: ObjectSpec, spec: SceneSpec, rng: random.Random) -> str:
    c, h, s = obj.colour, obj.shape, obj.size
    position = rng.choice(_POSITION_PHRASES[obj.position])
    templates = (
        (3, lambda: _with_article(f"{c} {h}")),
        (2, lambda: f"a photo of {_with_article(f'{c} {h}')}"),
        (2, lambda: _with_article(f"{s} {c} {h}")),
        (2, lambda: f"{_with_article(f'{s} {c} {h}')} on {_background_phrase(spec, rng)}"),
        (1, lambda: f"{_with_article(f'{c} {h}')} on {_background_phrase(spec, rng)}"),
        (1, lambda: f"{_with_article(f'{c} {h}')} {position}"),
        (1, lambda: f"{_with_article(f'{s} {c} {h}')} {position}"),
        (1, lambda: f"{_background_phrase(spec, rng)} with {_with_article(f'{c} {h}')}"),
        # Single attributes teach the text tower colour and shape apart.
        (2, lambda: f"{_with_article(c)} shape"),
        (1, lambda: f"something {c}"),
        (1, lambda: f"a photo of {_with_article(f'{c} object')}"),
        (2, lambda: _with_article(h)),
        (1, lambda: f"a photo of {_with_article(h)}"),
        (1, lambda: _with_article(f"{s} {h}")),
        (1, lambda: f"{_with_article(h)} on {_background_phrase(spec, rng)}"),
        (1, lambda: f"{_with_article(f'{c} shape')} {position}"),
    )
    return _weighted(templates, rng)()


def _multi_caption(spec: SceneSpec, rng: random.Random) -> str:
    objects = spec.objects
    count = _COUNT_WORDS[len(objects)]
    first = objects[0]
    if len(spec.pairs) == 1:
        c, h = first.colour, first.shape
        templates = (
            (3, lambda: f"{count} small {c} {_plural(h)}"),
            (3, lambda: f"{count} {c} {_plural(h)}"),
            (1, lambda: f"{count} {c} {_plural(h)} on {_background_phrase(spec, rng)}"),
            (1, lambda: f"{count} {_plural(h)}"),
            (1, lambda: f"{count} {c} shapes"),
            (1, lambda: f"a photo of {count} {c} {_plural(h)}"),
        )
        return _weighted(templates, rng)()

    def listing() -> str:
        names = [_with_article(f"{o.colour} {o.shape}") for o in objects]
        return ", ".join(names[:-1]) + f" and {names[-1]}"

    def one_of() -> str:
        o = rng.choice(objects)
        return _with_article(f"{o.colour} {o.shape}")

    templates = (
        (4, listing),
        (1, lambda: f"{listing()} on {_background_phrase(spec, rng)}"),
        (1, lambda: f"{count} shapes on {_background_phrase(spec, rng)}"),
        (1, lambda: f"{count} small shapes"),
        (1, one_of),
    )
    return _weighted(templates, rng)()


def _weighted(templates: Sequence[tuple[int, object]], rng: random.Random):
    weights = [w for w, _ in templates]
    return rng.choices([t for _, t in templates], weights=weights)[0]


def caption_scene(spec: SceneSpec, rng: random.Random) -> str:
    """Describe a scene in one of several phrasings, from its attributes.

    Phrasings range from full descriptions (``"a large red circle on a striped blue
    background"``, ``"two small green stars"``, ``"a red circle and a blue square"``) to single
    attributes (``"a red shape"``, ``"a circle"``); every phrasing is true of the scene.

    Args:
        spec: The scene.
        rng: Picks the phrasing.

    Returns:
        The caption, lower case.
    """
    if len(spec.objects) == 1:
        return _single_caption(spec.objects[0], spec, rng)
    return _multi_caption(spec, rng)


# ---------------------------------------------------------------------------------------------
# Collections on disk


@dataclass(frozen=True)
class _WriteJob:
    specs: list[SceneSpec]
    paths: list[Path]
    size: int
    quality: int = field(default=95)


def _write_chunk(job: _WriteJob) -> None:
    for spec, path in zip(job.specs, job.paths, strict=True):
        image = render_scene(spec, job.size)
        if path.suffix == ".png":
            image.save(path)
        else:
            image.save(path, quality=job.quality)


def generate_collection(
    folder: str | Path,
    n: int,
    *,
    seed: int,
    split: Split = "all",
    image_size: int = 96,
    image_format: Literal["png", "jpeg"] = "png",
    workers: int = 1,
) -> list[tuple[Path, SceneSpec]]:
    """Write a collection of scenes as image files plus a ``labels.jsonl`` to a folder.

    Each line of ``labels.jsonl`` holds ``path`` (relative to the folder), ``caption`` and
    ``attributes`` (:meth:`SceneSpec.to_dict`).

    Args:
        folder: Where to write; created if missing. Existing files of the same names are
            overwritten.
        n: How many images.
        seed: The same seed, split and size give the same files.
        split: Which (shape, colour) pairs objects may take (see :func:`pairs_for_split`).
        image_size: Side of each image in pixels.
        image_format: ``"png"`` (lossless) or ``"jpeg"``.
        workers: Worker processes for drawing; the files do not depend on it.

    Returns:
        (path, spec) for each image, in order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = sample_scenes(n, seed=seed, split=split)
    caption_rng = random.Random(f"captions-{seed}")
    suffix = ".png" if image_format == "png" else ".jpg"
    width = max(4, len(str(n - 1)))
    paths = [folder / f"{split}-{i:0{width}d}{suffix}" for i in range(n)]

    chunk = 64
    jobs = [
        _WriteJob(specs[i : i + chunk], paths[i : i + chunk], image_size)
        for i in range(0, n, chunk)
    ]
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            _write_chunk(job)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_chunk, jobs))

    with (folder / "labels.jsonl").open("w", encoding="utf-8") as labels:
        for path, spec in zip(paths, specs, strict=True):
            record = {
                "path": path.name,
                "caption": caption_scene(spec, caption_rng),
                "attributes": spec.to_dict(),
            }
            labels.write(json.dumps(record) + "\n")
    return list(zip(paths, specs, strict=True))

"""Images with known text in them, rendered here: for OCR tests and ``bench/bench_ocr.py``.

Fonts are DejaVu where the machine has them (Debian's ``fonts-dejavu-core``), else Pillow's
own scalable default font. Each image says which words it holds, so recall can be counted.
"""

from __future__ import annotations

import glob
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORDS = (
    "coffee",
    "receipt",
    "invoice",
    "station",
    "harbour",
    "library",
    "market",
    "garden",
    "bakery",
    "museum",
    "parking",
    "ticket",
    "window",
    "summer",
    "winter",
    "bridge",
    "castle",
    "airport",
    "platform",
    "express",
    "welcome",
    "danger",
    "closed",
    "opening",
    "monday",
    "friday",
    "orange",
    "yellow",
    "purple",
    "silver",
    "camera",
    "kitchen",
    "bottle",
    "island",
    "forest",
    "mountain",
    "river",
    "street",
    "avenue",
    "central",
    "theatre",
    "concert",
    "program",
    "meeting",
    "budget",
    "report",
    "total",
    "amount",
    "payment",
    "credit",
)
"""Words the rendered images hold (ordinary English, 5+ letters mostly)."""


def font_files() -> list[str]:
    """The DejaVu TrueType files of this machine (empty when there are none)."""
    found = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf"))
    return [f for f in found if "ExtraLight" not in f]


def load_font(size: int, path: str | None = None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font of ``size`` pixels: ``path``, else the first DejaVu font, else Pillow's default."""
    files = font_files()
    chosen = path or (files[0] if files else None)
    if chosen:
        return ImageFont.truetype(chosen, size)
    return ImageFont.load_default(size=size)


def textured_background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A photo-like background: smooth colour gradients, blotches and grain."""
    w, h = size
    nprng = np.random.default_rng(rng.randrange(2**32))
    low = nprng.uniform(40, 220, size=(4, 4, 3)).astype(np.float32)
    base = Image.fromarray(low.astype(np.uint8), "RGB").resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(base, dtype=np.float32)
    arr += nprng.normal(0, 12, size=arr.shape)
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 8)):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randint(10, max(11, w // 5))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(2))


def photo_without_text(rng: random.Random, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A textured image with no text in it."""
    return textured_background(rng, size)


@dataclass(frozen=True)
class TextImage:
    """A rendered image and the words drawn in it."""

    image: Image.Image
    words: tuple[str, ...]
    style: str


def _contrast_colour(background: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    region = np.asarray(background.crop(box), dtype=np.float32)
    return (10, 10, 10) if region.mean() > 128 else (250, 250, 250)


def render_text_image(
    rng: random.Random,
    words: tuple[str, ...],
    *,
    size: tuple[int, int] = (640, 480),
    font_size: int = 36,
    font_path: str | None = None,
    rotate: float = 0.0,
    blur: float = 0.0,
    perspective: float = 0.0,
    textured: bool = True,
    panel: bool = False,
) -> TextImage:
    """Draw ``words`` (a few per line) on a background, then rotate, warp and blur it.

    Args:
        rng: The randomness (positions, colours).
        words: What to write.
        size: Image size.
        font_size: Pixels.
        font_path: A TrueType file; None: the default.
        rotate: Degrees.
        blur: Gaussian blur radius.
        perspective: How strongly the corners move (0..0.3 of the size).
        textured: A photo-like background, else plain white.
        panel: Write on a plain box (a sign on a photo) rather than straight on the texture.
    """
    w, h = size
    image = textured_background(rng, size) if textured else Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = load_font(font_size, font_path)
    lines = [" ".join(words[i : i + 3]) for i in range(0, len(words), 3)]
    line_h = int(font_size * 1.4)
    block_w = max(int(draw.textlength(line, font=font)) for line in lines)
    block_h = line_h * len(lines)
    x0 = rng.randint(8, max(8, w - block_w - 8))
    y0 = rng.randint(8, max(8, h - block_h - 8))
    box = (x0, y0, min(w, x0 + block_w), min(h, y0 + block_h))
    if panel:
        pad = font_size // 3
        fill = tuple(rng.randint(200, 255) for _ in range(3))
        draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=fill)
    colour = _contrast_colour(image, box)
    for i, line in enumerate(lines):
        draw.text((x0, y0 + i * line_h), line, font=font, fill=colour)
    if rotate:
        image = image.rotate(
            rotate, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(128, 128, 128)
        )
    if perspective:
        d = [rng.uniform(-perspective, perspective) for _ in range(8)]
        quad = (
            d[0] * w, d[1] * h,
            d[2] * w, h + d[3] * h,
            w + d[4] * w, h + d[5] * h,
            w + d[6] * w, d[7] * h,
        )  # fmt: skip
        image = image.transform(size, Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    style = f"font{font_size} rot{rotate:g} blur{blur:g} persp{perspective:g}"
    return TextImage(image, tuple(words), style)


def render_set(
    folder: Path, count: int, *, seed: int = 0, without_text: int = 0
) -> dict[str, tuple[str, ...]]:
    """Write ``count`` varied text images and ``without_text`` plain photos as JPEGs.

    Returns:
        Each file's path and the words in it (empty for the photos without text).
    """
    rng = random.Random(seed)
    fonts = font_files() or [None]
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, tuple[str, ...]] = {}
    for i in range(count):
        words = tuple(rng.sample(WORDS, rng.randint(1, 5)))
        text = render_text_image(
            rng,
            words,
            font_size=rng.choice((18, 24, 32, 44, 60)),
            font_path=rng.choice(fonts),
            rotate=rng.choice((0, 0, 3, -6, 12)),
            blur=rng.choice((0, 0, 0.8, 1.5)),
            perspective=rng.choice((0, 0, 0.05, 0.1)),
            textured=rng.random() < 0.8,
            panel=rng.random() < 0.4,
        )
        path = folder / f"text_{i:04d}.jpg"
        text.image.save(path, quality=90)
        truth[str(path)] = text.words
    for i in range(without_text):
        path = folder / f"photo_{i:04d}.jpg"
        photo_without_text(rng).save(path, quality=90)
        truth[str(path)] = ()
    return truth

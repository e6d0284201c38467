"""A second, independent renderer of coloured shapes, for evaluating ``anyshot-tiny`` only.

Nothing here is imported by training (``indexer/shapes/train.py`` draws with
``indexer.shapes.synthetic`` and ``indexer.shapes.varied``, both PIL polygon code). This module
shares only the *names* of shapes and colours with them and draws everything differently:

- shapes are signed distance functions evaluated per pixel with numpy (Inigo Quilez's exact 2-D
  SDFs: box with optional rounded corners, equilateral triangle, five-point star with a fatter
  inner radius, hexagon, rhombus, union-of-boxes cross, annulus ring, the two-arc heart), not
  polygons;
- its own palette (ColorBrewer-like RGB values, e.g. blue is (55, 126, 184), not (40, 80, 220));
- canvases of 40–400 px, also non-square (the model's preprocessing crops the centre);
- edges hard, one-pixel or two-pixel smooth (its own anti-aliasing, no supersampling); filled or
  outlined with strokes of 1.5 px to a quarter of the radius; any rotation; aspect 0.85–1.2;
- backgrounds in unnamed random colours kept far from the object's colour: solid, gradient,
  checkerboard, radial vignette, grid lines, multi-octave value noise;
- optional Gaussian pixel noise.

Run ``python bench/other_renderer.py OUT.png`` to write a contact sheet of 64 samples.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from indexer.shapes import synthetic

SHAPES = synthetic.SHAPES  # the names only: every shape is drawn by this module's own code
PALETTE = {
    "red": (228, 26, 28),
    "green": (60, 170, 70),
    "blue": (45, 100, 190),
    "yellow": (255, 221, 10),
    "purple": (140, 70, 165),
    "orange": (255, 127, 0),
    "black": (12, 12, 12),
    "white": (252, 252, 252),
    "pink": (247, 140, 195),
    "brown": (150, 85, 40),
    "grey": (150, 150, 150),
    "cyan": (0, 200, 215),
}
# Outlining these would turn them into other shapes (an outlined circle is a ring).
_FILLED_ONLY = frozenset({"circle", "ring", "ellipse"})


@dataclass(frozen=True)
class Item:
    """One shape of a drawn image."""

    shape: str
    colour: str


# ---------------------------------------------------------------------------------------------
# Signed distance functions, unit size; p has shape (..., 2) with y pointing up.


def _length(p: np.ndarray) -> np.ndarray:
    return np.sqrt((p**2).sum(-1))


def _box(p: np.ndarray, bx: float, by: float) -> np.ndarray:
    d = np.abs(p) - np.array([bx, by])
    return _length(np.maximum(d, 0)) + np.minimum(np.maximum(d[..., 0], d[..., 1]), 0)


def _triangle(p: np.ndarray, r: float) -> np.ndarray:
    k = math.sqrt(3.0)
    x = np.abs(p[..., 0]) - r
    y = p[..., 1] + r / k
    flip = x + k * y > 0
    x2 = np.where(flip, (x - k * y) / 2, x)
    y2 = np.where(flip, (-k * x - y) / 2, y)
    x2 = x2 - np.clip(x2, -2 * r, 0)
    return -np.sqrt(x2**2 + y2**2) * np.sign(y2)


def _star5(p: np.ndarray, r: float, rf: float) -> np.ndarray:
    k1 = np.array([0.809016994375, -0.587785252292])
    k2 = np.array([-k1[0], k1[1]])
    p = p.copy()
    p[..., 0] = np.abs(p[..., 0])
    p = p - 2 * np.maximum(p @ k1, 0)[..., None] * k1
    p = p - 2 * np.maximum(p @ k2, 0)[..., None] * k2
    p[..., 0] = np.abs(p[..., 0])
    p[..., 1] -= r
    ba = rf * np.array([-k1[1], k1[0]]) - np.array([0, 1])
    h = np.clip((p @ ba) / (ba @ ba), 0, r)
    return _length(p - h[..., None] * ba) * np.sign(p[..., 1] * ba[0] - p[..., 0] * ba[1])


def _hexagon(p: np.ndarray, r: float) -> np.ndarray:
    k = np.array([-0.866025404, 0.5])
    kz = 0.577350269
    p = np.abs(p)
    p = p - 2 * np.minimum(p @ k, 0)[..., None] * k
    q = np.stack([p[..., 0] - np.clip(p[..., 0], -kz * r, kz * r), p[..., 1] - r], -1)
    return _length(q) * np.sign(q[..., 1])


def _rhombus(p: np.ndarray, bx: float, by: float) -> np.ndarray:
    b = np.array([bx, by])
    p = np.abs(p)
    q = b - 2 * p
    h = np.clip((q[..., 0] * b[0] - q[..., 1] * b[1]) / (b @ b), -1, 1)
    corner = 0.5 * np.stack([b[0] * (1 - h), b[1] * (1 + h)], -1)
    d = _length(p - corner)
    return d * np.sign(p[..., 0] * b[1] + p[..., 1] * b[0] - b[0] * b[1])


def _heart(p: np.ndarray) -> np.ndarray:
    # Quilez's heart spans y 0..1.1 with its point at the origin: centre and scale it.
    p = p * 1.15 + np.array([0.0, 0.55])
    x, y = np.abs(p[..., 0]), p[..., 1]
    upper = np.sqrt((x - 0.25) ** 2 + (y - 0.75) ** 2) - math.sqrt(2) / 4
    m = np.maximum(x + y, 0) * 0.5
    lower = np.sqrt(np.minimum(x**2 + (y - 1) ** 2, (x - m) ** 2 + (y - m) ** 2)) * np.sign(x - y)
    return np.where(y + x > 1, upper, lower) / 1.15


def _ellipse(p: np.ndarray, a: float, b: float) -> np.ndarray:
    # Not exact, but close to the boundary, which is where it matters.
    q = p / np.array([a, b])
    k = _length(q)
    grad = _length(p / np.array([a * a, b * b]))
    return k * (k - 1) / np.maximum(grad, 1e-6)


def sdf(shape: str, p: np.ndarray, rounded: float) -> np.ndarray:
    """Signed distance to a shape of radius about 1 (negative inside)."""
    if shape == "circle":
        return _length(p) - 1.0
    if shape == "ring":
        return np.abs(_length(p) - 0.8) - 0.22
    if shape == "square":
        return _box(p, 0.78 - rounded, 0.78 - rounded) - rounded
    if shape == "triangle":
        return _triangle(p - np.array([0, -0.15]), 0.95)
    if shape == "star":
        return _star5(p, 1.0, 0.5)
    if shape == "hexagon":
        return _hexagon(p, 0.88)
    if shape == "cross":
        arm = 0.27
        return np.minimum(_box(p, arm, 0.92), _box(p, 0.92, arm))
    if shape == "diamond":
        return _rhombus(p, 0.62, 1.0)
    if shape == "heart":
        return _heart(p)
    if shape == "ellipse":
        return _ellipse(p, 1.0, 0.55)
    raise ValueError(f"unknown shape {shape!r}")


# ---------------------------------------------------------------------------------------------
# Drawing


def _random_rgb(rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    for _ in range(100):
        rgb = rng.uniform(0, 255, 3)
        if all(np.abs(rgb - a).sum() > 200 for a in avoid):
            return rgb
    return 255 - avoid[0]


def _value_noise(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-octave value noise in [0, 1], bilinear interpolation of random lattices."""
    total = np.zeros((h, w))
    amplitude, weight = 1.0, 0.0
    cells = int(rng.integers(2, 6))
    for _ in range(4):
        lattice = rng.random((cells + 1, cells + 1))
        ys = np.linspace(0, cells, h, endpoint=False)
        xs = np.linspace(0, cells, w, endpoint=False)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        a = lattice[y0][:, x0]
        b = lattice[y0][:, x0 + 1]
        c = lattice[y0 + 1][:, x0]
        d = lattice[y0 + 1][:, x0 + 1]
        total += amplitude * (
            a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy
        )
        weight += amplitude
        amplitude *= 0.5
        cells *= 2
    return total / weight


def _background(h: int, w: int, rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    one = _random_rgb(rng, avoid)
    two = np.clip(one + rng.normal(0, 45, 3), 0, 255)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    kind = rng.choice(("solid", "gradient", "checker", "vignette", "grid", "noise"))
    if kind == "solid":
        t = np.zeros((h, w))
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(angle) + yy * math.sin(angle)) / max(h, w)
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
    elif kind == "checker":
        cell = rng.uniform(0.05, 0.2) * max(h, w)
        t = ((xx // cell + yy // cell) % 2).astype(float)
    elif kind == "vignette":
        r = np.sqrt((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.7 * max(h, w))
        t = np.clip(r, 0, 1)
    elif kind == "grid":
        cell = rng.uniform(0.08, 0.25) * max(h, w)
        width = max(1.0, rng.uniform(0.02, 0.1) * cell)
        t = (((xx % cell) < width) | ((yy % cell) < width)).astype(float)
    else:
        t = _value_noise(h, w, rng)
    return one[None, None] * (1 - t[..., None]) + two[None, None] * t[..., None]


def _coverage(d_px: np.ndarray, edge: str) -> np.ndarray:
    """Coverage of a pixel from the signed distance in pixels to the edge."""
    if edge == "hard":
        return (d_px < 0).astype(float)
    width = 1.0 if edge == "smooth" else 2.0
    return np.clip(0.5 - d_px / width, 0, 1)


def draw(items: list[Item], seed: int) -> Image.Image:
    """Draw one image holding ``items`` (one or two), fully determined by ``seed``.

    Args:
        items: The shapes; with two, each gets half of the image.
        seed: Fixes canvas, placement, style, background and noise.

    Returns:
        An RGB image of 40–400 px per side.
    """
    rng = np.random.default_rng(seed)
    short = int(rng.integers(40, 401))
    aspect = 1.0 if rng.random() < 0.5 else rng.uniform(0.75, 1.33)
    h, w = (short, int(short * aspect)) if aspect >= 1 else (int(short / aspect), short)
    colours = [np.array(PALETTE[item.colour], float) for item in items]
    canvas = _background(h, w, rng, colours)
    edge = rng.choice(("hard", "smooth", "soft"))
    yy, xx = np.mgrid[0:h, 0:w].astype(float) + 0.5
    slots = [(0.5, 0.5)] if len(items) == 1 else [(0.3, 0.5), (0.7, 0.5)]
    if len(items) == 2 and rng.random() < 0.5:
        slots = [(0.5, 0.3), (0.5, 0.7)]
    for item, colour, (sx, sy) in zip(items, colours, slots, strict=True):
        # Place inside the central square the model's centre crop keeps.
        side = short
        ox, oy = (w - side) / 2, (h - side) / 2
        extent = 0.38 if len(items) == 1 else 0.2
        radius = side * rng.uniform(0.45, 1.0) * extent
        cx = ox + side * sx + rng.uniform(-0.08, 0.08) * side
        cy = oy + side * sy + rng.uniform(-0.08, 0.08) * side
        angle = rng.uniform(0, 2 * math.pi)
        stretch = 1.0 if item.shape in ("circle", "ring") else rng.uniform(0.85, 1.2)
        dx, dy = (xx - cx) / radius, -(yy - cy) / radius  # y up, unit radius
        c, s = math.cos(angle), math.sin(angle)
        p = np.stack([(c * dx + s * dy) / stretch, (-s * dx + c * dy) * stretch], -1)
        rounded = rng.uniform(0, 0.2) if rng.random() < 0.4 else 0.0
        d_px = sdf(item.shape, p, rounded) * radius
        if item.shape not in _FILLED_ONLY and rng.random() < 0.35:
            stroke = rng.uniform(1.5, max(2.0, 0.25 * radius))
            d_px = np.abs(d_px + stroke / 2) - stroke / 2
        alpha = _coverage(d_px, edge)[..., None]
        tint = np.clip(colour + rng.normal(0, 8, 3), 0, 255)
        canvas = canvas * (1 - alpha) + tint[None, None] * alpha
    if rng.random() < 0.5:
        canvas = canvas + rng.normal(0, rng.uniform(2, 10), canvas.shape)
    return Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))


def collection(per_pair: int, n_pairs_of_two: int, seed: int) -> list[tuple[list[Item], int]]:
    """A deterministic test collection: ``per_pair`` one-shape images of every shape × colour
    pair plus ``n_pairs_of_two`` two-shape images, each with its drawing seed."""
    rng = np.random.default_rng(seed)
    pairs = [Item(s, c) for s in SHAPES for c in PALETTE]
    scenes = [[item] for item in pairs for _ in range(per_pair)]
    for _ in range(n_pairs_of_two):
        a, b = rng.choice(len(pairs), size=2, replace=False)
        if pairs[a].colour == pairs[b].colour:
            continue
        scenes.append([pairs[a], pairs[b]])
    seeds = rng.integers(0, 2**32, size=len(scenes))
    return [(items, int(s)) for items, s in zip(scenes, seeds, strict=True)]


def main() -> None:
    """Write a contact sheet of 64 samples (each resized to 96 px) to the given path."""
    out = sys.argv[1] if len(sys.argv) > 1 else "other_renderer.png"
    scenes = collection(1, 16, seed=1)
    rng = np.random.default_rng(0)
    scenes = [scenes[i] for i in rng.permutation(len(scenes))[:64]]
    sheet = Image.new("RGB", (8 * 96, 8 * 96))
    for k, (items, seed) in enumerate(scenes):
        sheet.paste(draw(items, seed).resize((96, 96)), ((k % 8) * 96, (k // 8) * 96))
    sheet.save(out)


if __name__ == "__main__":
    main()

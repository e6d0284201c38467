"""Varied renderings of synthetic scenes, for training ``anyshot-tiny`` beyond one drawing style.

:func:`render_scene` in :mod:`indexer.shapes.synthetic` draws every scene the same way: 64–96 px,
filled polygons, rotation within ±18°, four background kinds, light blur and noise. A model
trained only on it learns that style, and its shape recognition falls near chance on shapes drawn
by other code. :func:`render_varied` draws the same :class:`SceneSpec` with far more freedom:

- canvas side 48–512 px (then resized to the model input as its preprocessing does), with or
  without anti-aliasing (supersampling);
- continuous size within the size word's range, stretch (aspect 0.8–1.25), any rotation;
- filled or outlined shapes with strokes of varied width (never an outlined circle, which would
  be a ring), ring holes of varied size;
- the scene's background kind redrawn with other periods and shades, or replaced by a gradient,
  a texture or a smooth photo-like field, or by a background in unnamed colours kept clear of
  the objects' colours (solid, gradient, checkerboard, grid, vignette); then ``background_kept``
  is False and captions must not describe the background; plus optional clutter (thin grey
  lines and specks);
- each shape drawn in one of many ways (:func:`shape_parts`: a star's inner radius, rounded
  corners, a cross's arm width, a rhombus's width, an ellipse's axes, a heart from a curve or
  from two discs and a wedge), so no single polygon stands for a name;
- blur, pixel noise, a coarse resize round trip and JPEG compression.

Captions of :func:`synthetic.caption_scene` stay true except for the background phrases when the
background was replaced. Everything is deterministic from the ``seed`` argument.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from indexer.shapes import synthetic
from indexer.shapes.synthetic import SceneSpec

__all__ = ["render_varied", "render_varied_array", "shape_parts"]

_RESAMPLE = (
    Image.Resampling.BICUBIC,
    Image.Resampling.BILINEAR,
    Image.Resampling.LANCZOS,
    Image.Resampling.NEAREST,
    Image.Resampling.BOX,
)
# Shapes whose outline alone would read as another shape (an outlined circle is a ring).
_NO_OUTLINE = frozenset({"circle", "ring", "ellipse"})
# Stretching a circle or ring far would make an ellipse.
_ROUND = frozenset({"circle", "ring"})


def _colour(name: str, rng: np.random.Generator, spread: int = 22) -> tuple[int, int, int]:
    rgb = np.asarray(synthetic.COLOURS[name], float)
    rgb = rgb * rng.uniform(0.88, 1.08) + rng.integers(-spread, spread + 1, size=3)
    r, g, b = (int(v) for v in np.clip(rgb, 0, 255))
    return r, g, b


def _shade(base: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, ...]:
    light = sum(base) / 3 >= 140
    k = rng.uniform(0.25, 0.5)
    return tuple(int(v * (1 - k)) if light else int(v + (255 - v) * k) for v in base)


def _smooth_field(side: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [0, 1] of ``side`` × ``side`` (bicubic-upsampled noise)."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    field = Image.fromarray(coarse, mode="F").resize((side, side), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(field), 0, 1)


def _free_colour(avoid: list[tuple[int, int, int]], rng: np.random.Generator) -> np.ndarray:
    """Any RGB colour at least a clear step away from the ``avoid`` colours."""
    for _ in range(20):
        rgb = rng.integers(0, 256, size=3).astype(np.float32)
        if all(np.abs(rgb - np.asarray(a, np.float32)).sum() > 150 for a in avoid):
            return rgb
    return rgb


def _free_background(spec: SceneSpec, side: int, rng: np.random.Generator) -> Image.Image:
    """A background in unnamed colours: solid, a two-colour gradient, a checkerboard, a grid of
    lines or a radial vignette, kept clear of the objects' colours."""
    avoid = [synthetic.COLOURS[o.colour] for o in spec.objects]
    a = _free_colour(avoid, rng)
    b = np.clip(a + rng.uniform(-90, 90, size=3), 0, 255) if rng.random() < 0.6 else a
    if np.abs(b - a).sum() < 1 or any(np.abs(b - np.asarray(c)).sum() < 150 for c in avoid):
        b = a
    kind = rng.choice(("solid", "gradient", "checker", "grid", "vignette"))
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    if kind == "solid":
        ramp = np.zeros((side, side), np.float32)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ramp = np.clip(0.5 + (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle), 0, 1)
    elif kind == "checker":
        cells = rng.uniform(3, 14)
        ramp = ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(np.float32)
    elif kind == "grid":
        cells, width = rng.uniform(3, 12), rng.uniform(0.04, 0.15)
        ramp = (((x * cells) % 1 < width) | ((y * cells) % 1 < width)).astype(np.float32)
    else:
        ramp = np.clip(np.hypot(x - 0.5, y - 0.5) * rng.uniform(1.2, 2.2), 0, 1)
    pixels = a * (1 - ramp[..., None]) + b * ramp[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _background(spec: SceneSpec, side: int, rng: np.random.Generator) -> tuple[Image.Image, bool]:
    """The canvas background and whether it still matches the spec's background words."""
    if rng.random() < 0.3:
        return _free_background(spec, side, rng), False
    base = _colour(spec.background_colour, rng)
    shade = _shade(base, rng)
    kind = spec.background if rng.random() < 0.6 else rng.choice(("gradient", "texture", "photo"))
    canvas = Image.new("RGB", (side, side), base)
    draw = ImageDraw.Draw(canvas)
    if kind == "plain":
        return canvas, True
    if kind == "stripes":
        period = rng.uniform(0.06, 0.3) * side
        width = period * rng.uniform(0.25, 0.6)
        angle = rng.uniform(0, math.pi)
        normal = np.array([math.cos(angle), math.sin(angle)])
        tangent = np.array([-normal[1], normal[0]])
        centre = np.array([side / 2, side / 2])
        offset = -side + rng.uniform(0, period)
        while offset < side:
            corners = [
                centre + normal * u + tangent * v
                for u, v in ((offset, -side), (offset + width, -side), (offset + width, side),
                             (offset, side))
            ]  # fmt: skip
            draw.polygon([tuple(c) for c in corners], fill=shade)
            offset += period
        return canvas, True
    if kind == "dots":
        spacing = rng.uniform(0.07, 0.25) * side
        radius = spacing * rng.uniform(0.12, 0.35)
        jitter = rng.uniform(0, 0.3) * spacing
        for y in np.arange(-spacing, side + spacing, spacing):
            for x in np.arange(-spacing, side + spacing, spacing):
                dx, dy = rng.uniform(-jitter, jitter + 1e-6, size=2)
                draw.ellipse(
                    (x + dx - radius, y + dy - radius, x + dx + radius, y + dy + radius), fill=shade
                )
        return canvas, True
    if kind == "noise":
        field = _smooth_field(side, int(rng.integers(4, 24)), rng)
        mask = Image.fromarray((field * 255).astype(np.uint8))
        return Image.composite(Image.new("RGB", (side, side), shade), canvas, mask), True
    if kind == "gradient":
        t = np.linspace(0, 1, side, dtype=np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        ramp = np.clip(
            0.5 + (t[None, :] - 0.5) * math.cos(angle) + (t[:, None] - 0.5) * math.sin(angle),
            0,
            1,
        )
    elif kind == "texture":
        # Fine grain on top of coarse blotches, like paper, fabric or concrete.
        ramp = 0.6 * _smooth_field(side, int(rng.integers(3, 8)), rng) + 0.4 * rng.random(
            (side, side), dtype=np.float32
        )
    else:  # photo: a smooth field blending two shades and a third, unrelated low-contrast tint
        ramp = _smooth_field(side, int(rng.integers(2, 6)), rng)
    a, b = np.asarray(base, np.float32), np.asarray(shade, np.float32)
    pixels = a * (1 - ramp[..., None]) + b * ramp[..., None]
    if kind == "photo":
        tint = rng.uniform(-25, 25, size=3).astype(np.float32)
        pixels += _smooth_field(side, int(rng.integers(2, 5)), rng)[..., None] * tint
        pixels += rng.normal(0, 4, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), False


def _clutter(canvas: Image.Image, rng: np.random.Generator) -> None:
    """Thin grey lines and small specks, never in a named colour of the scene."""
    side = canvas.width
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 8))):
        grey = int(rng.integers(60, 200))
        colour = (grey, grey, grey)
        x, y = rng.uniform(0, side, size=2)
        if rng.random() < 0.5:
            length = rng.uniform(0.05, 0.2) * side
            angle = rng.uniform(0, 2 * math.pi)
            end = (x + length * math.cos(angle), y + length * math.sin(angle))
            draw.line([(x, y), end], fill=colour, width=max(1, int(side * 0.008)))
        else:
            r = rng.uniform(0.004, 0.015) * side
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    k = np.arange(n)
    angle = phase + 2 * math.pi * k / n
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _rounded(corners: np.ndarray, rounding: float) -> np.ndarray:
    """A convex polygon with its corners cut into arcs (``rounding``: share of each edge)."""
    if rounding <= 0:
        return corners
    points = []
    n = len(corners)
    for k in range(n):
        prev, here, after = corners[k - 1], corners[k], corners[(k + 1) % n]
        a = here + (prev - here) * rounding
        b = here + (after - here) * rounding
        for t in np.linspace(0, 1, 6):  # quadratic Bézier through the corner
            points.append((1 - t) ** 2 * a + 2 * (1 - t) * t * here + t**2 * b)
    return np.asarray(points)


def _circle_points(cx: float, cy: float, r: float, n: int = 32) -> np.ndarray:
    return _regular(n, r, 0.0) + np.array([cx, cy])


def shape_parts(shape: str, rng: np.random.Generator) -> list[np.ndarray]:
    """One drawing of ``shape`` as polygons (their union is the shape) of radius about 1.

    Every call may draw the shape another way: a star's inner radius, rounded corners, the
    width of a cross's arms, a rhombus's width, an ellipse's axes, a heart built from a curve or
    from two discs and a wedge. The names stay true: no variation turns one shape into another.
    """
    if shape in ("circle", "ring"):
        return [_regular(48)]
    if shape == "ellipse":
        return [_regular(48) * np.array([1.0, rng.uniform(0.42, 0.68)])]
    if shape == "square":
        half = 0.82
        corners = np.array([(-half, -half), (half, -half), (half, half), (-half, half)])
        return [_rounded(corners, rng.uniform(0.05, 0.3) if rng.random() < 0.35 else 0.0)]
    if shape == "diamond":
        width = rng.uniform(0.5, 0.75)
        corners = np.array([(0.0, -1.0), (width, 0.0), (0.0, 1.0), (-width, 0.0)])
        return [_rounded(corners, rng.uniform(0.05, 0.2) if rng.random() < 0.25 else 0.0)]
    if shape == "triangle":
        corners = _regular(3, 1.05) + np.array([0.0, 0.2])
        corners[0, 1] += rng.uniform(-0.15, 0.1)  # apex a little higher or lower
        return [_rounded(corners, rng.uniform(0.05, 0.2) if rng.random() < 0.25 else 0.0)]
    if shape == "hexagon":
        corners = _regular(6, phase=0.0 if rng.random() < 0.5 else math.pi / 6)
        return [_rounded(corners, rng.uniform(0.05, 0.25) if rng.random() < 0.25 else 0.0)]
    if shape == "star":
        outer = _regular(5)
        inner = _regular(5, rng.uniform(0.34, 0.6), -math.pi / 2 + math.pi / 5)
        return [np.stack([outer, inner], axis=1).reshape(-1, 2)]
    if shape == "cross":
        a, b = rng.uniform(0.2, 0.42), 0.95
        return [
            np.array([(-a, -b), (a, -b), (a, b), (-a, b)]),
            np.array([(-b, -a), (b, -a), (b, a), (-b, a)]),
        ]
    if shape == "heart":
        if rng.random() < 0.5:
            return [synthetic._UNIT_POLYGONS["heart"] * np.array([rng.uniform(0.85, 1.15), 1.0])]
        # Two discs side by side and a wedge from their outer sides down to the point.
        r = rng.uniform(0.42, 0.55)
        cy = rng.uniform(-0.45, -0.3)
        cx = r * rng.uniform(0.8, 1.0)
        tip = rng.uniform(0.85, 1.05)
        low = cy + r * 0.35
        wedge = np.array([(-cx - r * 0.94, low), (cx + r * 0.94, low), (0.0, tip)])
        return [_circle_points(-cx, cy, r), _circle_points(cx, cy, r), wedge]
    raise ValueError(f"unknown shape {shape!r}")


def _draw_object(canvas: Image.Image, obj, rng: np.random.Generator) -> None:
    side = canvas.width
    radius = synthetic.SIZES[obj.size] * rng.uniform(0.75, 1.3) / 2 * side
    cx, cy = synthetic.POSITIONS[obj.position]
    centre = np.array([cx + rng.uniform(-0.05, 0.05), cy + rng.uniform(-0.05, 0.05)]) * side
    stretch = rng.uniform(0.92, 1.08) if obj.shape in _ROUND else rng.uniform(0.8, 1.25)
    angle = rng.uniform(-math.pi, math.pi) if rng.random() < 0.6 else rng.uniform(-0.4, 0.4)
    c, s = math.cos(angle), math.sin(angle)
    transform = np.array([[c, -s], [s, c]]) @ np.diag([stretch, 1 / stretch])

    def place(points: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in points @ transform.T * radius + centre]

    colour = _colour(obj.colour, rng)
    outline = obj.shape not in _NO_OUTLINE and rng.random() < 0.3
    parts = shape_parts(obj.shape, rng)
    mask = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(mask)
    stroke = radius * rng.uniform(0.1, 0.3)
    if outline and len(parts) == 1:
        draw.polygon(place(parts[0]), outline=255, width=max(1, int(stroke)))
    else:
        for part in parts:
            draw.polygon(place(part), fill=255)
        if outline:  # a composite shape: the union minus a shrunken copy of it
            inset = max(0.3, 1 - stroke / radius)
            for part in parts:
                draw.polygon(place(part * inset), fill=0)
    if obj.shape == "ring":
        draw.polygon(place(parts[0] * rng.uniform(0.35, 0.75)), fill=0)
    canvas.paste(colour, mask=mask)


def render_varied(spec: SceneSpec, seed: int, size: int = 64) -> tuple[Image.Image, bool]:
    """Draw a scene in a randomly varied style.

    Args:
        spec: The scene (its own ``seed`` is not used; ``seed`` fixes every variation).
        seed: The same seed and spec give the same pixels.
        size: Side of the returned image in pixels (the model input).

    Returns:
        The RGB image of ``size`` × ``size`` pixels, and whether the background still matches
        the spec's background kind and colour (False: captions must leave the background out).
    """
    rng = np.random.default_rng(seed)
    side = int(rng.integers(48, 513))
    supersample = 1 if rng.random() < 0.35 or side > 320 else 3 if side < 160 else 2
    canvas, kept = _background(spec, side * supersample, rng)
    for obj in spec.objects:
        _draw_object(canvas, obj, rng)
    if rng.random() < 0.3:
        _clutter(canvas, rng)
    image = canvas.resize((side, side), Image.Resampling.BOX) if supersample > 1 else canvas
    if rng.random() < 0.35:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6) * side / 96))
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(1.0, 8.0), (side, side, 3))
        pixels = np.asarray(image, np.int16) + np.rint(noise).astype(np.int16)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.25:
        small = int(rng.integers(32, 64))
        image = image.resize((small, small), _RESAMPLE[int(rng.integers(len(_RESAMPLE)))])
    if rng.random() < 0.4:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(15, 90)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image.resize((size, size), Image.Resampling.BICUBIC), kept


def _render_chunk(args: tuple[list[SceneSpec], list[int], int]) -> tuple[np.ndarray, np.ndarray]:
    specs, seeds, size = args
    drawn = [render_varied(spec, seed, size) for spec, seed in zip(specs, seeds, strict=True)]
    return np.stack([np.asarray(image) for image, _ in drawn]), np.array([k for _, k in drawn])


def render_varied_array(
    specs: Sequence[SceneSpec], *, seed: int, size: int = 64, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Draw many scenes in varied styles.

    Args:
        specs: The scenes.
        seed: Image ``i`` is drawn with seed ``(seed, i)``; the result does not depend on
            ``workers``.
        size: Side of each returned image.
        workers: Worker processes; 1 draws in this process.

    Returns:
        A ``(len(specs), size, size, 3)`` uint8 array and a bool array: background kept.
    """
    if not specs:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros(0, bool)
    seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(len(specs))]
    chunk = 256
    jobs = [
        (list(specs[i : i + chunk]), seeds[i : i + chunk], size)
        for i in range(0, len(specs), chunk)
    ]
    if workers <= 1 or len(jobs) == 1:
        parts = [_render_chunk(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_render_chunk, jobs))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

"""Videos made for tests and benchmarks: the synthetic domain's shapes, moving, in time windows.

``make_video(path, [Segment(0, 3, "star", "blue"), Segment(3, 5, "circle", "red"), ...])``
writes a video in which each segment's scene (one large shape on a plain background, drawn by
:func:`indexer.shapes.synthetic.render_scene`) shows from its start to its end, drifting a
little, so that "a red circle" matches the frames of [3, 5) s only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from indexer.shapes.synthetic import COLOURS, ObjectSpec, SceneSpec, render_scene

CODECS = {
    "h264": ("libx264", ".mp4", {"preset": "ultrafast"}),
    "hevc": ("libx265", ".mp4", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "vp9": ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": "8"}),
    "av1": ("libsvtav1", ".mkv", {"preset": "12"}),
    "mpeg4": ("mpeg4", ".avi", {}),
}
"""Codec name → (encoder in PyAV's wheel, container extension, encoder options)."""


@dataclass(frozen=True)
class Segment:
    """One shape on a plain background from ``start`` to ``end`` seconds."""

    start: float
    end: float
    shape: str
    colour: str
    background: str = "white"


def _scene(segment: Segment, height: int, seed: int) -> Image.Image:
    spec = SceneSpec(
        objects=(ObjectSpec(segment.shape, segment.colour, "large", "centre"),),
        background="plain",
        background_colour=segment.background,
        seed=seed,
    )
    return render_scene(spec, 96).resize((height, height), Image.Resampling.BILINEAR)


def make_video(
    path: Path,
    segments: list[Segment],
    *,
    size: tuple[int, int] = (160, 90),
    fps: int = 10,
    codec: str = "h264",
    gop: int | None = None,
    rotation: int = 0,
) -> Path:
    """Write a video of the segments (back to back; the last one's end is the length).

    Args:
        path: The file to write (its extension picks the container).
        segments: The scenes, in time order.
        size: Frame width and height (even numbers).
        fps: Frames per second.
        codec: A key of :data:`CODECS`.
        gop: Frames between keyframes; None: the encoder's default.
        rotation: Degrees counterclockwise the display matrix turns every frame (a phone's
            portrait video is stored sideways with 90 or -90); 0: no matrix.

    Returns:
        ``path``.
    """
    encoder, _, options = CODECS[codec]
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    length = max(s.end for s in segments)
    scenes = [_scene(s, height, seed=i + 1) for i, s in enumerate(segments)]
    backgrounds = [COLOURS[s.background] for s in segments]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(encoder, rate=fps, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(math.ceil(length * fps)):
            t = index / fps
            which = next(
                (i for i, s in enumerate(segments) if s.start <= t < s.end), len(segments) - 1
            )
            canvas = Image.new("RGB", (width, height), backgrounds[which])
            drift = int(0.08 * height * math.sin(2 * math.pi * t / 4))
            canvas.paste(scenes[which], ((width - height) // 2 + drift, 0))
            frame = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


RED_CIRCLE_STORY = [
    Segment(0, 3, "star", "blue"),
    Segment(3, 5, "circle", "red"),
    Segment(5, 8, "heart", "cyan"),
]
"""8 s: a blue star, then a red circle from 3 s to 5 s, then a cyan heart."""

"""Videos as sequences of moments: which frames to keep, and reading them with PyAV.

A video is indexed as one point per kept frame (:func:`frame_id` of its URI and time). Frames
are chosen by content, not only by the clock:

- a frame is kept when it is a keyframe, or when the cheap scene-change test says it differs
  from the last kept frame (the fraction of the cells of a 32x18 thumbnail that changed), or
  when ``max_gap`` seconds passed since the last kept frame; never sooner than ``min_gap``
  after it;
- frames too close to the last kept one are dropped before they are converted (only decoded),
  and non-reference frames (B-frames) are not decoded at all;
- a video longer than ``keyframes_after`` seconds decodes only its keyframes, then seeks to
  fill the gaps longer than ``max_gap``: an hour of video is never decoded in full;
- FFmpeg decodes with its own threads (frame and slice threading), at reduced resolution where
  the decoder has such a mode (``lowres``: MPEG-4 part 2, MPEG-1/2, MJPEG) and the frame stays
  at least the model's input;
- frames are turned upright by the stream's display matrix (phones store portrait videos
  sideways with a rotation flag);
- a stretch of a video can be read alone (``start``/``end``: seek, then decode that stretch
  only), so one long video can be split by time ranges across workers
  (:func:`time_ranges`); the first frame decoded in a stretch is kept.

Bad input never raises anything but :class:`~indexer.errors.VideoDecodeError` (nothing
usable: the file is skipped with its reason). A video that breaks midway (corrupt packets, a
truncated file, the deadline, the frame cap) keeps the frames decoded until then and says why
in :attr:`DecodedVideo.notes`.

PyAV is imported inside the functions: discovery and the report stay cheap to import.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from indexer.errors import VideoDecodeError
from indexer.formats import video_format_of_name
from indexer.schema import point_id

if TYPE_CHECKING:
    from PIL import Image

    from indexer.config import IndexSettings

logger = logging.getLogger(__name__)

HASH_SPAN = 1 << 20
"""Bytes hashed at each end of a video for its content hash (:func:`video_hash`)."""

TINY_SIZE = (32, 18)
"""The thumbnail (width, height) on which the scene-change test runs."""

CELL_CHANGE = 24
"""A thumbnail cell changed when one of its channels moved by more than this (of 255)."""

MAX_BAD_PACKETS = 200
"""Undecodable packets in a row after which a video is given up (what was kept stays)."""


@dataclass(frozen=True, slots=True)
class FrameChoice:
    """How frames are chosen and what a video may cost (from :class:`IndexSettings`)."""

    min_gap: float = 1.0
    max_gap: float = 10.0
    scene_change: float = 0.03
    keyframes_after: float = 300.0
    max_frames: int = 10_000
    max_pixels: int = 40_000_000
    timeout: float = 600.0

    @classmethod
    def from_settings(cls, settings: IndexSettings) -> FrameChoice:
        """The choice an index run's settings make."""
        return cls(
            min_gap=settings.video_min_gap,
            max_gap=max(settings.video_max_gap, settings.video_min_gap),
            scene_change=settings.video_scene_change,
            keyframes_after=settings.video_keyframes_after,
            max_frames=settings.video_max_frames,
            max_pixels=settings.video_max_pixels,
            timeout=settings.video_timeout,
        )


@dataclass
class DecodedVideo:
    """The frames kept from one video, and what the file says of itself.

    Attributes:
        frames: ``(t, image)`` pairs, ``t`` in seconds from the start, ascending; images are
            RGB, their short side about the size asked for. Empty when the frames went to a
            callback (``on_frame``).
        times: The kept frames' times, in the order they were kept.
        duration: Seconds (from the header, else the last frame's time).
        width, height: The frame size the stream declares.
        codec: The codec's FFmpeg name (``h264``, ``vp9``, ...).
        notes: Why the video was indexed only in part (empty when read to its end).
        decode_seconds: Time spent reading.
        turns: Quarter turns counterclockwise applied to every frame to show it upright (the
            stream's display matrix: phones store portrait videos sideways); ``width`` and
            ``height`` are then the upright ones.
        decoded_size: The (width, height) the decoder gave: smaller than the stream's when it
            decoded at reduced resolution (FFmpeg's ``lowres``: MPEG-4 part 2, MPEG-1/2,
            MJPEG and others; H.264, HEVC, VP9 and AV1 decoders have no such mode).
    """

    frames: list[tuple[float, Image.Image]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    duration: float = 0.0
    width: int = 0
    height: int = 0
    codec: str = ""
    notes: list[str] = field(default_factory=list)
    decode_seconds: float = 0.0
    decoded_size: tuple[int, int] = (0, 0)
    turns: int = 0


def frame_id(uri: str, t: float) -> int:
    """The point id of the frame of video ``uri`` at ``t`` seconds (milliseconds count)."""
    return point_id(f"{uri}#t={t:.3f}")


def video_hash(path: str, size: int | None = None) -> str:
    """A content hash of a video: its first and last MiB and its size (cheap on big files).

    Raises:
        OSError: The file cannot be read.
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size if size is None else size
        digest = hashlib.blake2b(str(size).encode(), digest_size=16)
        digest.update(file.read(HASH_SPAN))
        if size > 2 * HASH_SPAN:
            file.seek(size - HASH_SPAN)
            digest.update(file.read(HASH_SPAN))
        elif size > HASH_SPAN:
            digest.update(file.read())
    return digest.hexdigest()


def video_format(path: str) -> str:
    """The container name stored in a frame's payload (``MP4``, ``WEBM``, ...)."""
    return video_format_of_name(path) or "VIDEO"


def _changed_fraction(tiny: np.ndarray, last: np.ndarray | None) -> float:
    if last is None:
        return 1.0
    diff = np.abs(tiny.astype(np.int16) - last.astype(np.int16)).max(axis=2)
    return float((diff > CELL_CHANGE).mean())


def _scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The frame size whose short side is ``short_side`` (never larger than the frame)."""
    scale = min(1.0, short_side / max(1, min(width, height)))
    return max(2, round(width * scale)), max(2, round(height * scale))


def lowres_level(width: int, height: int, short_side: int) -> int:
    """How many times (0-3) a decoder may halve a frame's sides and keep ``short_side``."""
    level = 0
    while level < 3 and min(width, height) >> (level + 1) >= short_side:
        level += 1
    return level


def quarter_turns(frame: Any) -> int:
    """Quarter turns counterclockwise (0-3) that show ``frame`` upright, from its display
    matrix (0 when it has none, or an angle that is no multiple of 90°)."""
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    turns = round(degrees / 90)
    return turns % 4 if math.isfinite(degrees) and abs(degrees - 90 * turns) < 1 else 0


def upright(image: Image.Image, turns: int) -> Image.Image:
    """``image`` turned ``turns`` quarter turns counterclockwise."""
    from PIL import Image

    steps = (
        None,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
    )
    step = steps[turns % 4]
    return image if step is None else image.transpose(step)


def _frame_time(frame: Any, stream: Any, fallback: float) -> float:
    t = frame.time
    if t is None or not math.isfinite(t):
        return fallback
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    return max(0.0, float(t) - start)


class _Handed(Exception):
    """Wraps an exception of ``on_frame``, to tell it from the decoder's own."""


class _Reader:
    """One pass over a video: keeps frames by the rules of :class:`FrameChoice`."""

    def __init__(
        self,
        path: str,
        choice: FrameChoice,
        short_side: int,
        on_frame: Callable[[float, Image.Image], None] | None,
    ) -> None:
        self.path = path
        self.choice = choice
        self.short_side = short_side
        self.on_frame = on_frame
        self.started = time.monotonic()
        self.elsewhere = 0.0  # seconds spent in on_frame: not the video's decoding time
        self.result = DecodedVideo()
        self.last_kept = -math.inf
        self.last_seen = 0.0  # the latest frame time decoded
        self.last_tiny: np.ndarray | None = None
        self.size = (0, 0)
        self.start = 0.0  # the stretch read: frames before start are skipped,
        self.end = math.inf  # and the read stops at the first frame at or after end
        self.reached_end = False  # a frame at or after end was decoded: the stretch is whole

    def late(self) -> bool:
        return time.monotonic() - self.started - self.elsewhere > self.choice.timeout

    def full(self) -> bool:
        return len(self.result.times) >= self.choice.max_frames

    def offer(self, frame: Any, t: float, *, force: bool = False) -> None:
        """Keep ``frame`` when the rules say so."""
        choice = self.choice
        self.last_seen = max(self.last_seen, t)
        if not self.result.decoded_size[0]:
            self.result.decoded_size = (int(frame.width), int(frame.height))
            self.result.turns = quarter_turns(frame)
        if t < self.last_kept + choice.min_gap:
            return  # the cheap drop: no conversion
        tiny = frame.to_ndarray(width=TINY_SIZE[0], height=TINY_SIZE[1], format="rgb24")
        due = (
            force
            or frame.key_frame
            or t >= self.last_kept + choice.max_gap
            or _changed_fraction(tiny, self.last_tiny) >= choice.scene_change
        )
        if not due:
            return
        width, height = self.size
        image = upright(frame.to_image(width=width, height=height), self.result.turns)
        t = round(t, 3)
        self.result.times.append(t)
        if self.on_frame is None:
            self.result.frames.append((t, image))
        else:
            handed = time.monotonic()
            try:
                self.on_frame(t, image)
            except Exception as exc:  # the caller's failure, not the video's: passed on
                raise _Handed() from exc
            self.elsewhere += time.monotonic() - handed
        self.last_kept = t
        self.last_tiny = tiny


def read_video_frames(
    path: str,
    choice: FrameChoice,
    *,
    short_side: int = 224,
    on_frame: Callable[[float, Image.Image], None] | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> DecodedVideo:
    """Decode the frames of a video worth indexing.

    Args:
        path: A local video file.
        choice: Gaps, scene-change threshold, limits and deadline.
        short_side: The short side of the kept frames, in pixels (the model's input size).
        on_frame: Called with each kept frame as it is decoded, instead of keeping the frames
            in the result (a long video's frames need not all fit in memory). Its time does
            not count against the deadline; its exceptions end the read.
        start: Read from this second on (a seek to the keyframe before it; earlier frames
            are decoded only as far as the codec needs them). The first frame read is kept.
        end: Stop before this second; None: read to the end. The deadline and the frame cap
            apply to the stretch.

    Returns:
        The kept frames, with the video's duration, size, codec and notes.

    Raises:
        VideoDecodeError: The file cannot be opened, holds no video stream, claims absurd
            sizes, or no frame could be decoded.
    """
    import av  # FFmpeg, from PyAV's wheels

    reader = _Reader(path, choice, short_side, on_frame)
    result = reader.result
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"cannot open video: {_why(exc)}") from exc
    try:
        stream = _video_stream(container, path, choice)
        ctx = stream.codec_context
        width, height = int(ctx.width), int(ctx.height)
        result.width, result.height = width, height
        result.codec = ctx.name or ""
        reader.size = _scaled_size(width, height, short_side)
        level = lowres_level(width, height, short_side)
        if level:  # decoders without a reduced-resolution mode ignore the option
            ctx.options = {**ctx.options, "lowres": str(level)}
        result.duration = _header_duration(container, stream)
        stream.thread_type = "AUTO"
        reader.start = max(0.0, start)
        reader.end = math.inf if end is None else end
        long_video = result.duration > choice.keyframes_after > 0
        ctx.skip_frame = "NONKEY" if long_video else "NONREF"
        if reader.start > 0:
            _seek(container, stream, reader.start)
        _decode_pass(container, stream, reader)
        if long_video and not reader.late() and not reader.full():
            _fill_gaps(container, stream, reader)
    except VideoDecodeError:
        raise
    except Exception as exc:  # PyAV/FFmpeg errors of every kind: keep what was decoded
        if isinstance(exc, _Handed) and exc.__cause__ is not None:
            raise exc.__cause__ from None
        if not result.times:
            raise VideoDecodeError(path, f"cannot decode video: {_why(exc)}") from exc
        result.notes.append(f"stopped early: {_why(exc)}")
    finally:
        container.close()
    result.frames.sort(key=lambda pair: pair[0])
    if result.turns % 2:
        result.width, result.height = result.height, result.width
    stretch_end = min(reader.end, result.duration)
    if result.times and result.duration <= 0:
        result.duration = max(result.times)
    elif (
        not result.notes
        and not reader.reached_end
        and reader.last_seen
        < stretch_end - max(2 * choice.min_gap, 0.05 * (stretch_end - reader.start))
    ):
        result.notes.append(
            f"the stream ended at {reader.last_seen:.1f} s of the {result.duration:.1f} s its "
            "header claims (truncated or corrupt)"
        )
    result.decode_seconds = time.monotonic() - reader.started - reader.elsewhere
    if not result.times:
        reason = "; ".join(result.notes) or "no frame could be decoded"
        raise VideoDecodeError(path, f"no frame decoded: {reason}")
    return result


def _video_stream(container: Any, path: str, choice: FrameChoice) -> Any:
    """The container's first video stream, when its header is sane.

    Raises:
        VideoDecodeError: No video stream, no frame size, or absurd frame sizes.
    """
    streams = container.streams.video
    if not streams:
        audio = " (audio only)" if container.streams.audio else ""
        raise VideoDecodeError(path, f"no video stream{audio}")
    stream = streams[0]
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise VideoDecodeError(path, "no decodable video stream (no frame size)")
    if width * height > choice.max_pixels or max(width, height) > 65_535:
        raise VideoDecodeError(
            path, f"{width}x{height} frames exceed video_max_pixels ({choice.max_pixels})"
        )
    return stream


def video_duration(path: str, choice: FrameChoice) -> float:
    """The duration a video's header claims, in seconds (0 when it says none), read without
    decoding a frame: what splitting a video into stretches needs.

    Raises:
        VideoDecodeError: As :func:`read_video_frames` for a file it would refuse at once.
    """
    import av

    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"cannot open video: {_why(exc)}") from exc
    try:
        return _header_duration(container, _video_stream(container, path, choice))
    finally:
        container.close()


def _header_duration(container: Any, stream: Any) -> float:
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    else:
        return 0.0
    return seconds if math.isfinite(seconds) and 0 < seconds < 10 * 365 * 86_400 else 0.0


def _seek(container: Any, stream: Any, t: float) -> None:
    """Seek to the keyframe at or before ``t`` seconds from the start."""
    base = stream.time_base
    origin = float(stream.start_time * base) if stream.start_time else 0.0
    container.seek(int((t + origin) / base), stream=stream, backward=True)


def time_ranges(duration: float, part_seconds: float) -> list[tuple[float, float | None]]:
    """Split ``duration`` seconds into consecutive stretches of ``part_seconds`` at most.

    The last stretch is open (``None``: to the end), so frames past a header's duration are
    still read. One stretch ``(0, None)`` when the video is not longer than a part.
    """
    if part_seconds <= 0 or duration <= part_seconds:
        return [(0.0, None)]
    count = math.ceil(duration / part_seconds)
    edges = [round(k * duration / count, 3) for k in range(count)]
    return [(a, b) for a, b in itertools.pairwise(edges)] + [(edges[-1], None)]


def _decode_pass(container: Any, stream: Any, reader: _Reader) -> None:
    """Decode the stream once (all reference frames, or keyframes only), offering frames."""
    import av

    result = reader.result
    bad_in_row = 0
    last_t = 0.0
    rate = float(stream.average_rate or 25)
    count = 0
    for packet in container.demux(stream):
        if reader.late():
            result.notes.append(
                f"deadline of {reader.choice.timeout:g} s reached at {last_t:.1f} s "
                f"of {result.duration:.1f} s"
            )
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            bad_in_row += 1
            if bad_in_row == 1:
                result.notes.append(f"corrupt data near {last_t:.1f} s skipped: {_why(exc)}")
            if bad_in_row >= MAX_BAD_PACKETS:
                result.notes.append(f"gave up after {bad_in_row} undecodable packets")
                return
            continue
        bad_in_row = 0
        for frame in frames:
            count += 1
            last_t = _frame_time(frame, stream, reader.start + count / rate)
            if last_t < reader.start:
                continue  # decoded only to reach the stretch
            if last_t >= reader.end:
                reader.reached_end = True
                return
            reader.offer(frame, last_t)
            if reader.full():
                result.notes.append(
                    f"frame cap video_max_frames ({reader.choice.max_frames}) reached "
                    f"at {last_t:.1f} s"
                )
                return


def _fill_gaps(container: Any, stream: Any, reader: _Reader) -> None:
    """Seek to the middle of the gaps that keyframes left longer than ``max_gap``."""
    choice = reader.choice
    kept = sorted(reader.result.times)
    # A later stretch's first gap is filled from its start on: the stretch before it ends with
    # a kept frame up to max_gap earlier.
    first = reader.start - choice.max_gap if reader.start > 0 else 0.0
    edges = [first, *kept, min(reader.end, reader.result.duration)]
    targets: list[float] = []
    for start, end in itertools.pairwise(edges):
        t = start + choice.max_gap
        while t < end - choice.min_gap:
            targets.append(t)
            t += choice.max_gap
    stream.codec_context.skip_frame = "DEFAULT"
    for target in targets:
        if reader.late() or reader.full():
            reader.result.notes.append(f"gap filling stopped at {target:.1f} s (time or frames)")
            return
        _seek(container, stream, target)
        for frame in container.decode(stream):
            t = _frame_time(frame, stream, target)
            if t >= reader.end:
                break  # the next stretch's
            if t >= target:
                reader.last_kept, reader.last_tiny = -math.inf, None
                reader.offer(frame, t, force=True)
                break
            if reader.late():
                break


def read_frame_at(
    source: str | BinaryIO, t: float, *, short_side: int = 512, shown: str | None = None
) -> Image.Image:
    """The frame of a video at (or just after) ``t`` seconds, for thumbnails.

    Args:
        source: The video's path, or the file opened (and checked) by the caller.
        t: Seconds from the start.
        short_side: The frame's short side at most, in pixels.
        shown: How the video is named in errors; default its path.

    Raises:
        VideoDecodeError: The file cannot be opened or holds no frame there.
    """
    import av

    path = shown if shown is not None else str(source)
    try:
        container = av.open(source, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoDecodeError(path, f"cannot open video: {_why(exc)}") from exc
    try:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        size = _scaled_size(int(ctx.width or 2), int(ctx.height or 2), short_side)
        base = stream.time_base
        start = float(stream.start_time * base) if stream.start_time else 0.0
        if t > 0:
            container.seek(int((t + start) / base), stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if _frame_time(frame, stream, t) >= t - 1e-3:
                break
        if last is None:
            raise VideoDecodeError(path, f"no frame at {t:.3f} s")
        return upright(last.to_image(width=size[0], height=size[1]), quarter_turns(last))
    except VideoDecodeError:
        raise
    except Exception as exc:
        raise VideoDecodeError(path, f"cannot decode video: {_why(exc)}") from exc
    finally:
        container.close()


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]

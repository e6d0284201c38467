"""Reading videos (indexer.video): which frames are kept, and every kind of bad input.

The videos are made here with the encoders in PyAV's wheel (tests/video_files.py): a blue star,
then a red circle from 3 s to 5 s, then a cyan heart, drifting a little.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from video_files import CODECS, RED_CIRCLE_STORY, Segment, make_video

from indexer.errors import ImageDecodeError, VideoDecodeError
from indexer.formats import is_image_name, is_indexed_name, is_video_name
from indexer.video import (
    DecodedVideo,
    FrameChoice,
    frame_id,
    lowres_level,
    read_frame_at,
    read_video_frames,
    time_ranges,
    video_duration,
    video_hash,
)
from indexer.video_indexing import VideoPart, join_parts


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "story.mp4", RED_CIRCLE_STORY)


def times(path: Path, **choice: float) -> list[float]:
    return [t for t, _ in read_video_frames(str(path), FrameChoice(**choice)).frames]


def red_share(image) -> float:
    pixels = np.asarray(image.convert("RGB"), np.int16)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    return float(red.mean())


def test_the_registry_holds_videos_beside_images() -> None:
    assert is_video_name("/a/B.MP4") and is_video_name("x.webm") and is_video_name("y.mkv")
    assert not is_image_name("x.mp4")
    assert is_indexed_name("x.mov") and is_indexed_name("x.jpg")
    assert not is_video_name("x.gif") and is_image_name("x.gif")  # animated GIFs stay images
    assert not is_indexed_name("notes.txt") and not is_video_name(".mp4")


@pytest.mark.parametrize("codec", list(CODECS))
def test_every_codec_decodes_with_a_frame_per_scene(tmp_path: Path, codec: str) -> None:
    path = make_video(tmp_path / f"story{CODECS[codec][1]}", RED_CIRCLE_STORY, codec=codec)
    video = read_video_frames(str(path), FrameChoice(), short_side=64)
    kept = [t for t, _ in video.frames]
    assert video.notes == []
    assert math.isclose(video.duration, 8.0, abs_tol=0.2)
    assert (video.width, video.height) == (160, 90)
    assert kept == sorted(kept) and kept[0] == 0.0
    assert all(b - a >= 1.0 - 1e-6 for a, b in itertools.pairwise(kept))  # min gap
    circle = [t for t, image in video.frames if red_share(image) > 0.05]
    assert circle and all(3.0 <= t < 5.0 for t in circle), (kept, circle)
    assert min(video.frames[0][1].size) == 64


def test_a_still_video_keeps_one_frame_per_max_gap(tmp_path: Path) -> None:
    path = make_video(tmp_path / "still.mp4", [Segment(0, 25, "star", "blue")], fps=5)
    # The drift moves the star: a scene-change threshold of 1.0 sees no change at all.
    kept = times(path, scene_change=1.0, max_gap=10.0)
    assert len(kept) in (3, 4) and all(b - a <= 10.0 + 1e-6 for a, b in itertools.pairwise(kept))


def test_a_scene_cut_is_kept_at_once(tmp_path: Path) -> None:
    path = make_video(
        tmp_path / "cut.mp4", [Segment(0, 6.2, "star", "blue"), Segment(6.2, 9, "ring", "red")]
    )
    kept = times(path, scene_change=0.15, max_gap=100.0, min_gap=0.5)  # drift: < 0.08
    assert any(6.2 <= t <= 6.4 for t in kept), kept


def test_long_videos_decode_keyframes_and_fill_the_gaps(tmp_path: Path) -> None:
    path = make_video(
        tmp_path / "long.mp4",
        [Segment(0, 20, "star", "blue"), Segment(20, 40, "circle", "red")],
        fps=5,
        gop=150,  # a keyframe every 30 s (and at the cut, where x264 puts one)
    )
    video = read_video_frames(str(path), FrameChoice(keyframes_after=10.0, max_gap=8.0))
    kept = [t for t, _ in video.frames]
    assert kept[0] == 0.0 and len(kept) < 12
    gaps = np.diff([0.0, *kept, video.duration])
    assert gaps.max() <= 8.0 + 1.0, kept  # sought frames fill what keyframes left
    assert any(red_share(image) > 0.05 for _, image in video.frames)


def test_frames_can_go_to_a_callback(story: Path) -> None:
    seen: list[float] = []
    video = read_video_frames(str(story), FrameChoice(), on_frame=lambda t, image: seen.append(t))
    assert video.frames == [] and seen == video.times and len(seen) >= 4


def test_a_callback_failure_is_the_callers(story: Path) -> None:
    def fail(t: float, image: object) -> None:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError, match="store down"):
        read_video_frames(str(story), FrameChoice(), on_frame=fail)


def test_ids_hash_and_frame_at(story: Path) -> None:
    assert frame_id("/v.mp4", 3.0) == frame_id("/v.mp4", 3.0004)
    assert frame_id("/v.mp4", 3.0) != frame_id("/v.mp4", 4.0) != frame_id("/w.mp4", 4.0)
    assert frame_id("/v.mp4", 1.5) < 2**53
    first = video_hash(str(story))
    assert first == video_hash(str(story)) and len(first) == 32
    assert red_share(read_frame_at(str(story), 4.0)) > 0.05
    assert red_share(read_frame_at(str(story), 1.0)) < 0.01
    with open(story, "rb") as file:
        assert read_frame_at(file, 4.0, short_side=32).size == (57, 32)


# -- bad input -----------------------------------------------------------------------------------


def skip_reason(path: Path, **choice: float) -> str:
    with pytest.raises(VideoDecodeError) as caught:
        read_video_frames(str(path), FrameChoice(**choice))
    assert isinstance(caught.value, ImageDecodeError)  # one family for every shell
    return caught.value.reason


def test_zero_length_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert skip_reason(tmp_path / "empty.mp4").startswith("cannot open video")


def test_not_a_video_at_all(tmp_path: Path) -> None:
    (tmp_path / "text.mp4").write_bytes(b"hello, this is no video\n" * 100)
    assert skip_reason(tmp_path / "text.mp4").startswith("cannot open video")


def test_audio_only(tmp_path: Path) -> None:
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        for index in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert skip_reason(path) == "no video stream (audio only)"


def test_truncated_keeps_the_frames_before_the_cut(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.mkv", RED_CIRCLE_STORY, codec="h264")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"  # Matroska: clusters readable without an index at the end
    cut.write_bytes(data[: len(data) // 2])
    video = read_video_frames(str(cut), FrameChoice())
    kept = [t for t, _ in video.frames]
    assert kept and kept[0] == 0.0 and max(kept) < 8.0
    header_only = tmp_path / "header.mp4"
    header_only.write_bytes(make_video(tmp_path / "w.mp4", RED_CIRCLE_STORY).read_bytes()[:200])
    assert skip_reason(header_only)  # a moov-less MP4 head: nothing to index, said why


@pytest.mark.parametrize(("name", "codec"), [("noisy.mp4", "h264"), ("noisy.avi", "mpeg4")])
def test_corrupt_packets_mid_stream(tmp_path: Path, name: str, codec: str) -> None:
    path = make_video(tmp_path / name, RED_CIRCLE_STORY, codec=codec, gop=10)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    data[middle : middle + 3000] = noise
    path.write_bytes(bytes(data))
    video = read_video_frames(str(path), FrameChoice())
    kept = [t for t, _ in video.frames]
    assert kept[:3] == [0.0, 1.0, 2.0], (kept, video.notes)  # the frames before the damage
    assert len(video.notes) == 1  # and a word on the rest
    if name.endswith(".mp4"):  # the sample table still finds the frames after the damage
        assert "corrupt data near" in video.notes[0] and max(kept) >= 7.0
    else:  # the AVI demuxer stops there
        assert "the stream ended at" in video.notes[0] and max(kept) < 5.0


def test_absurd_frame_size_is_refused_from_the_header(story: Path) -> None:
    assert "exceed video_max_pixels" in skip_reason(story, max_pixels=10_000)


def test_deadline_keeps_what_was_decoded(tmp_path: Path) -> None:
    path = make_video(tmp_path / "slow.mp4", [Segment(0, 60, "star", "blue")], fps=25)
    with pytest.raises(VideoDecodeError, match="deadline"):
        read_video_frames(str(path), FrameChoice(timeout=1e-9))
    video = read_video_frames(str(path), FrameChoice(timeout=0.05))
    assert video.frames or video.notes  # a fast machine may finish in 50 ms
    if video.notes:
        assert "deadline of 0.05 s reached" in video.notes[0]


def test_frame_cap(story: Path) -> None:
    video = read_video_frames(str(story), FrameChoice(max_frames=2))
    assert len(video.frames) == 2 and "video_max_frames (2)" in video.notes[0]


def test_variable_frame_rate_times_come_from_the_stream(tmp_path: Path) -> None:
    """30 fps for 3 s, then 2 fps: times are the frames' own, not counted at a fixed rate."""
    from video_files import _scene

    path = tmp_path / "vfr.mkv"
    scenes = [_scene(segment, 90, seed=i + 1) for i, segment in enumerate(RED_CIRCLE_STORY)]
    stamps = [i / 30 for i in range(90)] + [3 + i / 2 for i in range(10)]  # ms time base
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t in stamps:
            which = 0 if t < 3 else 1 if t < 5 else 2
            canvas = Image.new("RGB", (160, 90), "white")
            canvas.paste(scenes[which], (35, 0))
            frame = av.VideoFrame.from_image(canvas)
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    video = read_video_frames(str(path), FrameChoice())
    circle = [t for t, image in video.frames if red_share(image) > 0.05]
    assert circle and all(3.0 <= t < 5.0 for t in circle), video.times
    # Still scenes: the first frame and the two cuts. At a fixed 30 fps count, the cut at 5 s
    # (the 95th frame) would read 3.13 s.
    assert video.times == [0.0, 3.0, 5.0] and abs(video.duration - 7.5) < 0.1


# Stretches: one video split by time ranges, for workers that read a part each.


def test_time_ranges_cut_a_long_video_into_equal_stretches() -> None:
    assert time_ranges(10.0, 15.0) == [(0.0, None)]
    assert time_ranges(10.0, 0.0) == [(0.0, None)]  # 0: never split
    assert time_ranges(30.0, 15.0) == [(0.0, 15.0), (15.0, None)]
    assert time_ranges(31.0, 15.0) == [(0.0, 10.333), (10.333, 20.667), (20.667, None)]


def test_a_stretch_reads_only_its_time_range(story: Path) -> None:
    whole = read_video_frames(str(story), FrameChoice())
    middle = read_video_frames(str(story), FrameChoice(), start=2.5, end=5.5)
    tail = read_video_frames(str(story), FrameChoice(), start=5.5)
    assert middle.times and all(2.5 <= t < 5.5 for t in middle.times)
    assert middle.times[0] < 2.5 + 0.2  # the stretch starts with a kept frame
    assert any(red_share(image) > 0.05 for _, image in middle.frames)
    assert tail.times and all(t >= 5.5 for t in tail.times)
    assert not middle.notes and not tail.notes  # stopping at ``end`` is no truncation
    assert (
        whole.duration
        == middle.duration
        == tail.duration
        == video_duration(str(story), FrameChoice())
    )


def test_stretches_of_a_long_video_cover_it_like_one_read(tmp_path: Path) -> None:
    path = make_video(
        tmp_path / "long.mp4",
        [Segment(0, 20, "star", "blue"), Segment(20, 40, "circle", "red")],
        fps=5,
        gop=150,
    )
    choice = FrameChoice(keyframes_after=10.0, max_gap=8.0)
    parts = [
        read_video_frames(str(path), choice, start=a, end=b) for a, b in time_ranges(40.0, 15.0)
    ]
    assert all(not part.notes for part in parts), [part.notes for part in parts]
    kept = sorted(t for part in parts for t in part.times)
    assert len(kept) == len(set(kept)) and kept[0] == 0.0
    assert np.diff([0.0, *kept, 40.0]).max() <= 8.0 + 1.0, kept


def test_a_stretch_past_the_end_holds_nothing(story: Path) -> None:
    with pytest.raises(VideoDecodeError, match="no frame decoded"):
        read_video_frames(str(story), FrameChoice(), start=60.0)


def test_video_duration_refuses_what_reading_refuses(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="cannot open video"):
        video_duration(str(empty), FrameChoice())


def _part(start: float, times: list[float], notes: list[str] | None = None) -> VideoPart:
    vectors = np.eye(8, dtype=np.float32)[[int(t) % 8 for t in times]]
    read = DecodedVideo(times=times, duration=20.0, width=160, height=90, notes=notes or [])
    return VideoPart(start, read, vectors)


def test_joined_stretches_keep_time_order_min_gap_and_the_cap() -> None:
    joined = join_parts(
        "file:///v.mp4",
        [_part(0.0, [0.0, 4.0, 9.6]), _part(10.0, [10.0, 13.0]), _part(15.0, [15.0, 19.0])],
        FrameChoice(min_gap=1.0),
    )
    assert joined.video.times == [0.0, 4.0, 9.6, 13.0, 15.0, 19.0]  # 10.0: within min_gap of 9.6
    assert joined.vectors.shape == (6, 8) and joined.vectors[3, 13 % 8] == 1.0
    assert joined.video.notes == []
    capped = join_parts(
        "file:///v.mp4",
        [_part(0.0, [0.0, 4.0]), _part(10.0, [10.0, 13.0])],
        FrameChoice(max_frames=3),
    )
    assert capped.video.times == [0.0, 4.0, 10.0] and "frame cap" in capped.video.notes[0]


def test_a_failed_stretch_is_a_note_and_no_stretch_is_an_error() -> None:
    joined = join_parts(
        "file:///v.mp4",
        [_part(0.0, [0.0, 5.0]), "cannot decode video: boom", _part(14.0, [14.0], ["late"])],
        FrameChoice(),
    )
    assert joined.video.times == [0.0, 5.0, 14.0]
    assert joined.video.notes == [
        "stretch 2 of 3: cannot decode video: boom",
        "stretch 3 of 3: late",
    ]
    with pytest.raises(VideoDecodeError, match="boom"):
        join_parts("file:///v.mp4", ["boom", "bang"], FrameChoice())


def test_lowres_halves_only_while_the_model_input_fits() -> None:
    assert lowres_level(1280, 720, 224) == 1  # 360 ≥ 224 > 180
    assert lowres_level(1280, 720, 180) == 2
    assert lowres_level(3840, 2160, 64) == 3  # FFmpeg's decoders halve three times at most
    assert lowres_level(320, 180, 224) == 0


def test_decoders_with_a_lowres_mode_decode_smaller_frames(tmp_path: Path) -> None:
    segments = [Segment(0, 2, "star", "blue"), Segment(2, 4, "circle", "red")]
    mpeg4 = make_video(tmp_path / "v.avi", segments, size=(640, 360), codec="mpeg4")
    h264 = make_video(tmp_path / "v.mp4", segments, size=(640, 360), codec="h264")
    small = read_video_frames(str(mpeg4), FrameChoice(), short_side=90)
    assert small.decoded_size == (160, 90) and (small.width, small.height) == (640, 360)
    assert {image.size for _, image in small.frames} == {(160, 90)}
    assert any(red_share(image) > 0.05 for t, image in small.frames if t >= 2)
    full = read_video_frames(str(h264), FrameChoice(), short_side=90)  # no lowres in H.264
    assert full.decoded_size == (640, 360) and len(full.times) == len(small.times)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_frames_are_turned_upright_by_the_display_matrix(tmp_path: Path, rotation: int) -> None:
    """A phone stores a portrait video sideways with a rotation flag: frames (and thumbnails)
    come out upright, and the stored size is the upright one."""
    path = make_video(tmp_path / "phone.mp4", RED_CIRCLE_STORY, size=(160, 90), rotation=rotation)
    video = read_video_frames(str(path), FrameChoice(), short_side=64)
    upright_size = (64, 114) if rotation != 180 else (114, 64)
    assert {image.size for _, image in video.frames} == {upright_size}
    assert (video.width, video.height) == ((90, 160) if rotation != 180 else (160, 90))
    sideways = read_video_frames(str(make_video(tmp_path / "plain.mp4", RED_CIRCLE_STORY)),
                                 FrameChoice(), short_side=64)  # fmt: skip
    turn = {90: Image.Transpose.ROTATE_90, -90: Image.Transpose.ROTATE_270,
            180: Image.Transpose.ROTATE_180}[rotation]  # fmt: skip
    expected = np.asarray(sideways.frames[0][1].transpose(turn), np.int16)
    assert np.abs(np.asarray(video.frames[0][1], np.int16) - expected).mean() < 6
    assert read_frame_at(str(path), 4.0).size == ((90, 160) if rotation != 180 else (160, 90))

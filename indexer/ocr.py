"""Text inside images (OCR): an optional stage of index runs, and how searches match it.

The engine is RapidOCR (``rapidocr-onnxruntime``): PaddleOCR's PP-OCRv4 detection and
recognition models in ONNX, shipped inside the wheel and run by ONNX Runtime on the CPU,
offline. On the rendered set of ``bench/bench_ocr.py`` it found about twice the words Debian's
Tesseract 5.3 found, at a similar speed (see ``bench/README.md``). It is imported only when a
run reads text (``index.ocr``), so plain runs and queries start as before.

**The gate.** Most photos hold no text. Each image is first run through the detector alone at
a small size (:data:`GATE_SIDE` pixels on its longer side, a few milliseconds); only an image
in which it finds a text region is read in full (detection at up to :data:`READ_SIDE` pixels,
then recognition of each region). The detector is the gate rather than the CLIP embedding's
likeness to "a sign, a document" prompts because it works the same for every model (a CLIP
model knows text only as well as it was trained to, and anyshot's tiny test model not at all)
and it is the very first step of reading anyway.

**Limits.** Text is stored up to :data:`MAX_TEXT_CHARS` characters; at most
:data:`MAX_REGIONS` regions are read per image, and recognition stops at the run's time
budget per image (``index.ocr_seconds``): an image of 10,000 words keeps what was read by
then.

**Payload.** ``text`` holds the recognised lines joined by spaces (absent when none was found,
never empty); ``ocr_version`` marks an image whose text was looked for, so that a later run
with OCR on reads only the images that lack it (without re-embedding them).

**Matching** (:func:`match_words`): case-insensitive, by word. A query word of
:data:`INFIX_MIN_LETTERS` letters or more also matches inside a longer stored word (the
recognition model often drops the space between two words: ``riverpayment``), and one of
:data:`FUZZY_MIN_LETTERS` letters or more also matches a stored word, or part of one, one edit
away (one wrong, missing or extra character), since OCR misreads a letter now and then.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.errors import ConfigError, QueryError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

OCR_VERSION = 1
"""Stored as ``ocr_version`` in the payload of every image whose text was looked for."""
MAX_TEXT_CHARS = 4_000
"""The most characters of recognised text stored per image."""
MAX_REGIONS = 300
"""The most text regions recognised per image (a page of small print has a few hundred)."""
GATE_SIDE = 320
"""Pixels of the longer side at which the gate looks for text regions."""
READ_SIDE = 1_600
"""Pixels of the longer side, at most, at which text is detected and read."""
REC_CHUNK = 24
"""Regions recognised between two looks at the clock."""
MIN_SCORE = 0.5
"""Recognised lines less certain than this are dropped (RapidOCR's own default)."""
FUZZY_MIN_LETTERS = 5
"""Query words this long or longer match a stored word one edit away."""
INFIX_MIN_LETTERS = 4
"""Query words this long or longer also match inside a longer stored word."""
MAX_QUERY_WORDS = 32
"""The most words an ``ocr`` query may hold."""
MAX_WORD_CHARS = 64
"""The longest word an ``ocr`` query may hold."""

_WORD = re.compile(r"\w+", re.UNICODE)
_TWO_CHARACTERS = re.compile(r"\w\w", re.UNICODE)


@dataclass(frozen=True)
class TextReading:
    """What reading one image gave.

    Attributes:
        text: The recognised text (empty when none was found), at most
            :data:`MAX_TEXT_CHARS` characters.
        gated: True when the gate found no text region, so the image was not read in full.
        cut: True when the text, the regions or the time budget ran out.
        seconds: Time taken.
    """

    text: str
    gated: bool = False
    cut: bool = False
    seconds: float = 0.0


class TextReader:
    """Reads the text in images with RapidOCR; load it once per run.

    Args:
        gate: Look for text regions at a small size first and read only images that have one.
        max_seconds: Time budget per image (detection included); recognition stops once it
            is spent, after its first :data:`REC_CHUNK` regions, and what was read is kept.
        threads: ONNX Runtime threads per session; None: ONNX Runtime's choice.

    Raises:
        ConfigError: The OCR engine is not installed or its models do not load.
    """

    def __init__(
        self, *, gate: bool = True, max_seconds: float = 30.0, threads: int | None = None
    ) -> None:
        self.gate = gate
        self.max_seconds = max_seconds
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:  # a core dependency: only a broken install lacks it
            raise ConfigError(
                f"OCR needs the rapidocr-onnxruntime package ({exc}); reinstall anyshot"
            ) from exc
        options: dict[str, Any] = {"det_limit_type": "max", "use_cls": False}
        if threads is not None:
            options |= {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
        try:
            self._engine = RapidOCR(**options)
        except Exception as exc:
            raise ConfigError(f"cannot load the OCR models: {exc}") from exc

    def read(self, image: Image.Image) -> TextReading:
        """Read the text of one image (gated, capped); see the module's docstring.

        Args:
            image: A decoded image (any mode).

        Returns:
            The text, and whether the gate skipped it or a limit cut it.
        """
        started = time.perf_counter()
        rgb = image.convert("RGB")
        if self.gate and not self._has_text_region(rgb):
            return TextReading("", gated=True, seconds=time.perf_counter() - started)
        bgr = _bgr(_fit(rgb, READ_SIDE))
        engine = self._engine
        bgr, _, _ = engine.preprocess(bgr)
        bgr, _ = engine.maybe_add_letterbox(bgr, {})
        boxes, _ = engine.auto_text_det(bgr)
        if boxes is None or len(boxes) == 0:
            return TextReading("", seconds=time.perf_counter() - started)
        cut = len(boxes) > MAX_REGIONS
        crops = engine.get_crop_img_list(bgr, list(boxes[:MAX_REGIONS]))
        lines: list[str] = []
        for start in range(0, len(crops), REC_CHUNK):
            if start and time.perf_counter() - started > self.max_seconds:
                cut = True
                break
            recognised, _ = engine.text_rec(crops[start : start + REC_CHUNK])
            lines += [text.strip() for text, score in recognised if score >= MIN_SCORE]
        # A lone character is more often a texture read as a letter than text.
        text = " ".join(line for line in lines if _TWO_CHARACTERS.search(line))
        text, shortened = cap_text(text)
        return TextReading(text, cut=cut or shortened, seconds=time.perf_counter() - started)

    def _has_text_region(self, rgb: Image.Image) -> bool:
        boxes, _ = self._engine.text_det(_bgr(_fit(rgb, GATE_SIDE)))
        return boxes is not None and len(boxes) > 0


def _fit(image: Image.Image, side: int) -> Image.Image:
    """``image`` shrunk so that its longer side is at most ``side`` pixels."""
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, reducing_gap=2.0)


def _bgr(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def cap_text(text: str, limit: int = MAX_TEXT_CHARS) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters at a word boundary; and whether it was cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut), True


# -- matching -----------------------------------------------------------------------------------


def text_words(text: str) -> list[str]:
    """The lower-cased words of a text (letters and digits)."""
    return _WORD.findall(text.casefold())


def query_words(query: str) -> list[str]:
    """The distinct words of an ``ocr`` query, in order.

    Raises:
        QueryError: No word in it, too many words, or a word too long to be one.
    """
    if len(query) > MAX_QUERY_WORDS * (MAX_WORD_CHARS + 1):
        raise QueryError(f"the ocr query is too long ({len(query)} characters)")
    words = list(dict.fromkeys(text_words(query)))
    if not words:
        raise QueryError("the ocr query needs at least one word (letters or digits)")
    if len(words) > MAX_QUERY_WORDS:
        raise QueryError(f"the ocr query may hold at most {MAX_QUERY_WORDS} words")
    long = next((w for w in words if len(w) > MAX_WORD_CHARS), None)
    if long is not None:
        raise QueryError(f"ocr query words may be at most {MAX_WORD_CHARS} characters long")
    return words


def within_one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by at most one substituted, inserted or deleted
    character (Levenshtein distance ≤ 1)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la > lb:
        a, b, la, lb = b, a, lb, la
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    if la == lb:
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


def word_matches(query_word: str, text: str, stored: set[str]) -> bool:
    """True when a lower-cased text holds a lower-cased query word.

    A word matches a stored word equal to it; a word of :data:`INFIX_MIN_LETTERS`+ letters also
    matches inside a longer stored word (OCR often drops the space between two words); a word of
    :data:`FUZZY_MIN_LETTERS`+ letters also matches a stored word, or part of one, one edit away.

    Args:
        query_word: The query word.
        text: The stored text, lower-cased.
        stored: Its words (:func:`text_words`).
    """
    if query_word in stored:
        return True
    n = len(query_word)
    if n < INFIX_MIN_LETTERS:
        return False
    if query_word in text:
        return True
    if n < FUZZY_MIN_LETTERS:
        return False
    # One edit leaves one half of the word intact: a cheap test before any edit distance.
    half = n // 2
    halves = (query_word[:half], query_word[half:])
    if not any(part in text for part in halves):
        return False
    for word in stored:
        if len(word) < n - 1 or not any(part in word for part in halves):
            continue
        if len(word) <= n + 1:
            if within_one_edit(query_word, word):
                return True
            continue
        for size in (n - 1, n, n + 1):
            if any(
                within_one_edit(query_word, word[i : i + size]) for i in range(len(word) - size + 1)
            ):
                return True
    return False


def match_words(words: list[str], text: str) -> float:
    """The fraction of query ``words`` (lower-cased) that ``text`` holds
    (see :func:`word_matches`)."""
    if not words or not text:
        return 0.0
    lowered = text.casefold()
    stored = set(text_words(lowered))
    return sum(word_matches(word, lowered, stored) for word in words) / len(words)

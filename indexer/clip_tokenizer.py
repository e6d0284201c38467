"""CLIP's byte-pair tokenizer without torch: the tokens of open_clip's ``SimpleTokenizer``.

open_clip's tokenizer module imports torch and builds its tokenizer at import time; a text
query that runs its text tower through ONNX Runtime needs only the token ids. This module
gives the same ids (start and end tokens, lower-casing, ftfy and HTML-entity cleaning,
truncation to the context with the end token kept) as a numpy array, reading the BPE merges
file that open_clip ships in its package folder, found without running open_clip's
``__init__`` (which imports torch).

Only the CLIP BPE vocabulary with the ``lower`` cleaning is reproduced: models with another
tokenizer (SigLIP, Hugging Face tokenizers, other cleaning) keep the torch path.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.errors import ModelError

VOCABULARY_FILE = "bpe_simple_vocab_16e6.txt.gz"
"""open_clip's (and OpenAI CLIP's) BPE merges file, in open_clip's package folder."""

MERGES = 49152 - 256 - 2
"""How many merges of the file the CLIP vocabulary uses (49408 tokens with the specials)."""

START_OF_TEXT = "<start_of_text>"
END_OF_TEXT = "<end_of_text>"
DEFAULT_CONTEXT_LENGTH = 77

# CLIP's pre-tokenization: the special tokens, English contractions, runs of letters, single
# digits, runs of other non-space characters (``regex`` syntax for the Unicode classes).
_WORD_PATTERN = (
    START_OF_TEXT
    + "|"
    + END_OF_TEXT
    + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


def open_clip_vocabulary() -> Path:
    """The BPE merges file in open_clip's package folder (open_clip is not imported).

    Raises:
        ModelError: open_clip is not installed, or its folder holds no vocabulary file.
    """
    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / VOCABULARY_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(f"cannot find open_clip's {VOCABULARY_FILE} (is open_clip installed?)")


@functools.cache
def _byte_symbols() -> dict[int, str]:
    """Each byte as a printable character, the way CLIP's BPE spells bytes.

    The order matters: it is the order of the vocabulary's first 256 tokens (printable bytes
    first, as themselves, then the others mapped above 255).
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols = dict(zip(printable, printable, strict=True))
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = 256 + extra
            extra += 1
    return {byte: chr(code) for byte, code in symbols.items()}


def clean_lower(text: str) -> str:
    """open_clip's ``lower`` cleaning: ftfy, HTML entities (twice), spaces squeezed, lower case."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Text → CLIP BPE token ids, identical to open_clip's ``SimpleTokenizer`` (``lower`` clean).

    Args:
        vocabulary: The gzipped BPE merges file; None: the one shipped with open_clip.
        context_length: Tokens per text, start and end included (77 for CLIP).

    Raises:
        ModelError: The vocabulary file cannot be found or read.
    """

    def __init__(self, vocabulary: Path | None = None, context_length: int = 77) -> None:
        import regex

        path = vocabulary if vocabulary is not None else open_clip_vocabulary()
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                lines = fh.read().split("\n")[1 : MERGES + 1]
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ModelError(f"cannot read the CLIP vocabulary {path}: {exc}") from exc
        merges = [tuple(line.split()) for line in lines]
        if len(merges) != MERGES or any(len(pair) != 2 for pair in merges):
            raise ModelError(f"{path} is not a CLIP BPE merges file")
        self._byte_symbols = _byte_symbols()
        symbols = list(self._byte_symbols.values())
        vocab = symbols + [symbol + "</w>" for symbol in symbols]
        vocab += ["".join(pair) for pair in merges] + [START_OF_TEXT, END_OF_TEXT]
        self._ids = {token: index for index, token in enumerate(vocab)}
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._words: dict[str, tuple[str, ...]] = {
            START_OF_TEXT: (START_OF_TEXT,),
            END_OF_TEXT: (END_OF_TEXT,),
        }
        self._pattern = regex.compile(_WORD_PATTERN, regex.IGNORECASE)
        self.start_id = self._ids[START_OF_TEXT]
        self.end_id = self._ids[END_OF_TEXT]
        self.vocab_size = len(self._ids)
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        """The token ids of one text, without start and end tokens."""
        ids: list[int] = []
        for word in self._pattern.findall(clean_lower(text)):
            spelled = "".join(self._byte_symbols[byte] for byte in word.encode("utf-8"))
            ids.extend(self._ids[piece] for piece in self._merge(spelled))
        return ids

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids of texts, shape ``(len(texts), context_length)``, int64, zero-padded.

        A text longer than the context is cut, its last kept token replaced by the end token
        (as open_clip does).
        """
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.end_id
            out[row, : len(ids)] = ids
        return out

    def _merge(self, word: str) -> tuple[str, ...]:
        """Apply the BPE merges to one pre-token, lowest rank first."""
        cached = self._words.get(word)
        if cached is not None:
            return cached
        pieces = (*word[:-1], word[-1] + "</w>")
        while len(pieces) > 1:
            pairs = set(itertools.pairwise(pieces))
            best = min(pairs, key=lambda pair: self._ranks.get(pair, len(self._ranks)))
            if best not in self._ranks:
                break
            merged: list[str] = []
            index = 0
            while index < len(pieces):
                if (
                    index < len(pieces) - 1
                    and pieces[index] == best[0]
                    and pieces[index + 1] == best[1]
                ):
                    merged.append(best[0] + best[1])
                    index += 2
                else:
                    merged.append(pieces[index])
                    index += 1
            pieces = tuple(merged)
        self._words[word] = pieces
        return pieces

"""The torch-free CLIP tokenizer gives exactly open_clip's tokens."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from indexer.clip_tokenizer import ClipTokenizer, open_clip_vocabulary
from indexer.errors import ModelError

TEXTS = [
    "a red circle",
    "A Red CIRCLE",
    "",
    "   ",
    "a",
    "two small green stars on a striped blue background!",
    "it's we'll they'd I'm you've she's isn't",
    "Héllo wörld! naïve café, crème brûlée, Ærøskøbing, Straße",
    "&amp;lt;b&amp;gt; bold &quot;x&quot; &lt;i&gt;it&lt;/i&gt; &#39;quoted&#39; &copy; &nbsp;",
    "🐶🐱 emoji 👍🏽 family 👨‍👩‍👧 flag 🇫🇷 ❤️",
    "数字 123 4567 日本語のテキスト 한국어 текст на русском العربية עברית हिन्दी",
    "tabs\tand\nnewlines\r\n  and   runs of    spaces ",
    "punctuation!!! ??? ... --- ((nested)) [brackets] {braces} @user #tag $5.99 50% a/b\\c",
    "<start_of_text> literal special tokens <end_of_text>",
    "ﬁ ligature Ⅻ roman, full-width ＡＢＣ１２３, combining é (e + U+0301)",
    "zero\u200bwidth\u00a0nbsp soft\u00adhyphen",
    "mojibake: cafÃ© and â€œquotesâ€\x9d",
    "x " * 100,
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "photo_of_a_dog, taken 2024-01-01 at 12:30pm; ISO-100 f/2.8",
    "a photo of a " + "very " * 80 + "long description",
]


@pytest.fixture(scope="module")
def ours() -> ClipTokenizer:
    return ClipTokenizer()


@pytest.fixture(scope="module")
def theirs():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")


@pytest.mark.parametrize("text", TEXTS)
def test_tokens_equal_open_clips(ours: ClipTokenizer, theirs, text: str) -> None:
    assert ours([text]).tolist() == theirs([text]).tolist()


def test_a_batch_is_int64_of_the_context_length(ours: ClipTokenizer, theirs) -> None:
    tokens = ours(TEXTS)
    assert tokens.dtype == np.int64 and tokens.shape == (len(TEXTS), 77)
    assert np.array_equal(tokens, theirs(TEXTS).numpy())


def test_long_texts_are_cut_with_the_end_token_kept(ours: ClipTokenizer) -> None:
    tokens = ours(["x " * 100])[0]
    assert tokens[0] == ours.start_id and tokens[-1] == ours.end_id
    assert ours.vocab_size == 49408


def test_a_shorter_context(ours: ClipTokenizer, theirs) -> None:
    short = ClipTokenizer(context_length=16)
    assert short(TEXTS).tolist() == theirs(TEXTS, context_length=16).tolist()


def test_a_missing_or_bad_vocabulary_is_one_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="cannot read the CLIP vocabulary"):
        ClipTokenizer(tmp_path / "missing.txt.gz")
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ModelError, match="cannot read the CLIP vocabulary"):
        ClipTokenizer(bad)


def test_tokenizing_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from indexer.clip_tokenizer import ClipTokenizer\n"
        "ClipTokenizer()(['a red circle'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'open_clip'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
    assert open_clip_vocabulary().name == "bpe_simple_vocab_16e6.txt.gz"

"""How ``ocr`` queries match stored text: words, case, one wrong character, limits."""

from __future__ import annotations

import pytest

from indexer.errors import QueryError
from indexer.ocr import (
    MAX_QUERY_WORDS,
    MAX_TEXT_CHARS,
    cap_text,
    match_words,
    query_words,
    within_one_edit,
)


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [
        ("coffee", "coffee", True),
        ("coffee", "coffer", True),  # one substituted
        ("coffee", "cofee", True),  # one missing
        ("coffee", "cofffee", True),  # one extra
        ("coffee", "toffey", False),  # two substituted
        ("coffee", "cof", False),
        ("", "a", True),
    ],
)
def test_within_one_edit(a: str, b: str, close: bool) -> None:
    assert within_one_edit(a, b) is close
    assert within_one_edit(b, a) is close


@pytest.mark.parametrize(
    ("words", "text", "fraction"),
    [
        (["coffee"], "Best COFFEE in town", 1.0),  # case-insensitive
        (["coffee"], "Best cofFEF in town", 1.0),  # one wrong letter in a 6-letter word
        (["coffee"], "Best cafFEF in town", 0.0),  # two wrong letters
        (["river"], "riverpayment", 1.0),  # OCR dropped the space between two words
        (["station"], "mainstatlon12", 1.0),  # inside a longer word, one wrong letter
        (["cat"], "concatenate", 0.0),  # a 3-letter word matches only as a word
        (["cat"], "the cat sat", 1.0),
        (["tea"], "the tee", 0.0),  # short words must be exact
        (["coffee", "tea"], "coffee shop", 0.5),
        (["budget"], "", 0.0),
    ],
)
def test_match_words(words: list[str], text: str, fraction: float) -> None:
    assert match_words(words, text) == fraction


def test_query_words_are_lower_cased_distinct_words() -> None:
    assert query_words("  Coffee, coffee! TEA ") == ["coffee", "tea"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "at least one word"),
        ("   ", "at least one word"),
        ("!!! ???", "at least one word"),
        ("x" * 65, "at most 64 characters"),
        (" ".join(f"w{i}" for i in range(MAX_QUERY_WORDS + 1)), f"at most {MAX_QUERY_WORDS}"),
        ("word " * 2_000, "too long"),
    ],
)
def test_bad_queries_are_one_line_errors(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as caught:
        query_words(query)
    assert "\n" not in str(caught.value)


def test_long_text_is_cut_at_a_word() -> None:
    text = " ".join(["lorem"] * 10_000)
    cut, shortened = cap_text(text)
    assert shortened and len(cut) <= MAX_TEXT_CHARS and cut.endswith("lorem")
    assert cap_text("a  b\n c") == ("a b c", False)

"""The words ``anyshot-tiny`` knows: the vocabulary of the synthetic shapes domain.

``anyshot-tiny`` was trained only on captions of :mod:`indexer.shapes.synthetic` (``"two small green
stars"``, ``"a red circle on a striped blue background"``). A query with other words ("a dog
on a beach") still returns coloured shapes, ranked by the words it does know: the engine
warns instead of letting that pass for an answer.
"""

from __future__ import annotations

import re
from functools import cache

TINY_MODEL = "anyshot-tiny"
"""The shipped model that knows only the synthetic shapes domain."""

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")

_FILLER = frozenset(
    # The captions' own glue (see synthetic.caption_scene) and the engine's prompt templates.
    [
        "a",
        "an",
        "the",
        "of",
        "on",
        "in",
        "at",
        "with",
        "and",
        "photo",
        "picture",
        "image",
        "close-up",
        "good",
        "something",
        "object",
        "shape",
        "shapes",
        "background",
        "middle",
        "one",
    ]
)
_BACKGROUND_WORDS = frozenset(["plain", "striped", "dotted", "polka-dot", "noisy", "speckled"])
_COUNT_WORDS = frozenset({"two", "three"})


@cache
def domain_words() -> frozenset[str]:
    """Every word of the captions anyshot-tiny was trained on, and of the prompt templates."""
    # Only for this model: the generator is off the search path.
    from indexer.shapes import synthetic

    shapes = set(synthetic.SHAPES)
    plurals = {"crosses" if shape == "cross" else f"{shape}s" for shape in shapes}
    return frozenset(
        shapes
        | plurals
        | set(synthetic.COLOURS)
        | set(synthetic.SIZES)
        | set(synthetic.POSITIONS)
        | set(synthetic.BACKGROUNDS)
        | _BACKGROUND_WORDS
        | _COUNT_WORDS
        | _FILLER
    )


def unknown_words(text: str) -> list[str]:
    """The words of ``text`` that are not in :func:`domain_words`, in order, once each."""
    known = domain_words()
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in known))


def out_of_domain_warning(words: list[str]) -> str:
    """The warning for a query with words anyshot-tiny does not know."""
    shown = ", ".join(repr(word) for word in words[:10])
    more = f" and {len(words) - 10} more" if len(words) > 10 else ""
    return (
        f"{TINY_MODEL} knows only coloured shapes (shapes, colours, sizes, positions and "
        f"backgrounds of the demo domain), not {shown}{more}: the results match the other "
        f"words only; index real photos with a pretrained model such as ViT-B-32"
    )

"""The trimmed text encoder gives the features of open_clip's own ``encode_text``."""

from __future__ import annotations

import torch

from indexer.embed import trimmed_text_encoder


def test_trimmed_text_features_equal_the_full_context(embedder) -> None:
    texts = ["a red circle", "two small green stars on a striped blue background!", "a"]
    tokens = embedder._tokenizer(texts)
    encode = trimmed_text_encoder(embedder.model)
    assert encode is not None
    with torch.inference_mode():
        full = embedder.model.encode_text(tokens)
        trimmed = encode(tokens)
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-4)
    vectors = embedder.embed_texts(texts)
    expected = torch.nn.functional.normalize(full, dim=-1).numpy()
    assert abs(vectors - expected).max() < 1e-5


def test_models_it_does_not_know_keep_their_own_encoder() -> None:
    assert trimmed_text_encoder(torch.nn.Linear(2, 2)) is None

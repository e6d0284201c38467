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


def test_a_full_context_text_goes_through_the_trimmed_path_too(embedder) -> None:
    tokens = embedder._tokenizer(["circle " * 200])  # fills the whole context
    assert int(tokens.argmax(dim=1).max()) + 1 == tokens.shape[1]
    encode = trimmed_text_encoder(embedder.model)
    with torch.inference_mode():
        torch.testing.assert_close(
            encode(tokens), embedder.model.encode_text(tokens), atol=1e-5, rtol=1e-4
        )


def test_int8_text_tower_keeps_text_vectors_and_rankings() -> None:
    from indexer.config import ModelSettings
    from indexer.embed import Embedder

    texts = ["a red circle", "two small green stars", "a large blue ring on dots", "a heart"]
    exact = Embedder(ModelSettings(name="anyshot-tiny", precision="fp32"))
    int8 = Embedder(ModelSettings(name="anyshot-tiny", precision="fp32", text_int8=True))
    assert int8.text_int8 and not exact.text_int8
    from indexer.int8 import Int8SelfAttention

    # Quantized on the first text, not at load (an index run never needs the text tower).
    assert any(type(m) is torch.nn.Linear for m in int8.model.transformer.modules())
    int8.ready_text_tower()
    modules = list(int8.model.transformer.modules())
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in modules)
    assert sum(isinstance(m, Int8SelfAttention) for m in modules) == len(
        exact.model.transformer.resblocks
    )
    assert not any(isinstance(m, torch.nn.Linear) for m in modules)
    a, b = exact.embed_texts(texts), int8.embed_texts(texts)
    assert (a * b).sum(axis=1).min() > 0.99
    assert (a @ a.T).argsort(axis=1).tolist() == (b @ b.T).argsort(axis=1).tolist()
    # The image tower is untouched: the same pixels give the same vectors.
    pixels = torch.randint(0, 256, (2, exact.image_size, exact.image_size, 3), dtype=torch.uint8)
    assert abs(exact.embed_pixels(pixels.numpy()) - int8.embed_pixels(pixels.numpy())).max() < 1e-6

"""The generator's torch-free half (forward pass, document, chunking, fusion) and its training
refusals, on tiny random data."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.errors import QueryError, StoreError
from indexer.generator import Generator, chunk_text, fuse_ranked, noise_seed, unit_rows
from indexer.generator_train import TrainOptions, embed_descriptions, train_generator
from indexer.schema import ModelIdentity
from indexer.stores.interface import ScoredPoint

MODEL = ModelIdentity("anyshot-tiny", None, 8, "f" * 64)


def random_generator(dim: int = 8, noise: int = 3, hidden: int = 16) -> Generator:
    rng = np.random.default_rng(0)
    shapes = {
        "w1": (dim + noise, hidden),
        "b1": (hidden,),
        "w2": (hidden, hidden),
        "b2": (hidden,),
        "w3": (hidden, dim),
        "b3": (dim,),
        "skip": (dim, dim),
    }
    weights = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    return Generator("mlp", MODEL, noise, weights, pairs=40)


def test_generate_gives_k_unit_rows_per_text_the_first_noise_free_and_seeded():
    generator = random_generator()
    texts = unit_rows(np.random.default_rng(1).standard_normal((2, 8)))
    out = generator.generate(texts, 3, seed=5)
    assert out.shape == (6, 8)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out[0], generator.forward(texts[:1], np.zeros((1, 3), np.float32)))
    assert np.array_equal(out, generator.generate(texts, 3, seed=5))
    assert not np.allclose(out, generator.generate(texts, 3, seed=6))


def test_generate_refuses_another_dimension():
    with pytest.raises(QueryError, match="reads 8-d embeddings, not 4-d"):
        random_generator().generate(np.ones((1, 4), np.float32), 2)


def test_document_round_trip_and_model_check():
    generator = random_generator()
    back = Generator.from_document(generator.to_document())
    texts = unit_rows(np.ones((1, 8)))
    assert np.array_equal(back.generate(texts, 2), generator.generate(texts, 2))
    assert back.model == MODEL and back.pairs == 40
    back.check_model(MODEL)
    with pytest.raises(QueryError, match=r"trained for model 'anyshot-tiny' .*, not 'anyshot"):
        back.check_model(ModelIdentity("anyshot-tiny", None, 8, "0" * 64))
    with pytest.raises(QueryError, match="not 'ViT-B-32'"):
        back.check_model(ModelIdentity("ViT-B-32", None, 8, None))


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(format=9),
        lambda d: d["weights"].pop("w2"),
        lambda d: d["weights"]["w1"].update(shape=[3, 3]),
        lambda d: d["weights"]["b1"].update(data="!!"),
        lambda d: d.pop("model"),
    ],
)
def test_damaged_documents_are_refused(damage):
    document = random_generator().to_document()
    damage(document)
    with pytest.raises(StoreError):
        Generator.from_document(document)


def test_non_finite_weights_are_refused():
    generator = random_generator()
    generator.weights["b3"][0] = np.nan
    with pytest.raises(StoreError, match="not finite"):
        Generator.from_document(generator.to_document())


def test_chunk_text_keeps_sentences_within_the_word_limit():
    assert chunk_text("a red heart") == ["a red heart"]
    assert chunk_text("   ") == []
    text = "One two three. Four five six seven. Eight nine."
    assert chunk_text(text, max_words=4) == [
        "One two three.",
        "Four five six seven.",
        "Eight nine.",
    ]
    assert chunk_text("a b c d e f g h i", max_words=4) == ["a b c d", "e f g h", "i"]
    long = " ".join(f"w{i}" for i in range(200)) + "."
    assert all(len(c.split()) <= 40 for c in chunk_text(long))
    assert " ".join(chunk_text(long)) == long


def points(*pairs: tuple[int, float]) -> list[ScoredPoint]:
    return [ScoredPoint(i, s, {}) for i, s in pairs]


def test_fusions():
    lists = [points((1, 0.9), (2, 0.8), (3, 0.1)), points((2, 0.95), (4, 0.5), (1, 0.2))]
    rrf = fuse_ranked(lists, "rrf", limit=10)
    assert [p.id for p, _, _ in rrf] == [2, 1, 4, 3]  # 2: ranks 2 and 1; 1: ranks 1 and 3
    assert rrf[0][2] == pytest.approx(0.95)  # the best cosine rides along
    assert [p.id for p, _, _ in fuse_ranked(lists, "max", limit=2)] == [2, 1]
    mean = fuse_ranked(lists, "mean", limit=10)
    # a point missing from a list counts that list's... lowest score of all lists (0.1)
    assert [(p.id, round(s, 3)) for p, s, _ in mean] == [(2, 0.875), (1, 0.55), (4, 0.3), (3, 0.1)]
    with pytest.raises(QueryError, match="unknown fusion"):
        fuse_ranked(lists, "sum", limit=3)  # type: ignore[arg-type]


def test_noise_seed_depends_on_the_texts_only():
    assert noise_seed(["a", "b"]) == noise_seed(["a", "b"]) != noise_seed(["a b"])


def test_training_refuses_too_few_pairs_and_unknown_kinds():
    rng = np.random.default_rng(0)
    few = unit_rows(rng.standard_normal((19, 8)))
    with pytest.raises(QueryError, match=r"only 19 captioned images: .* at least 20"):
        train_generator(few, few, MODEL)
    with pytest.raises(QueryError, match="unknown generator kind"):
        train_generator(few, few, MODEL, TrainOptions(kind="vae"))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["mlp", "gan"])
def test_training_maps_texts_to_their_images(kind):
    """A learnable map (a rotation plus noise): the trained generator finds each text's image
    among 60 far better than chance."""
    rng = np.random.default_rng(3)
    images = unit_rows(rng.standard_normal((60, 8)))
    rotation, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    texts = unit_rows(images @ rotation + 0.05 * rng.standard_normal((60, 8)))
    generator = train_generator(
        texts, images, MODEL, TrainOptions(kind=kind, epochs=30, batch_size=32, threads=1)
    )
    generated = generator.generate(texts, 1)
    top1 = np.mean(np.argmax(generated @ images.T, axis=1) == np.arange(60))
    assert top1 > 0.8
    assert generator.info["epochs"] == 30 and generator.pairs == 60


def test_embed_descriptions_averages_the_chunks_of_a_long_text():
    vocabulary = {"red": [1, 0], "blue": [0, 1]}

    def embed(texts: list[str]) -> np.ndarray:
        return unit_rows(np.array([[sum(vocabulary[w][i] for w in t.split()) for i in (0, 1)]
                                   for t in texts], np.float32))  # fmt: skip

    long = " ".join(["red"] * 40 + ["blue"] * 40)
    out = embed_descriptions(embed, ["red", long])
    assert np.allclose(out[0], [1, 0])
    assert np.allclose(out[1], unit_rows(np.array([[1.0, 1.0]]))[0])

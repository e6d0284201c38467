"""The Embedder and the model loader, with a tiny real open_clip model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indexer.config import ModelSettings
from indexer.embed import Embedder, choose_runtime
from indexer.errors import ModelError, ModelUnavailableError, QueryError
from indexer.weights import resolve_model


def test_images_and_texts_become_unit_float32_rows(embedder: Embedder) -> None:
    images = [Image.new("RGB", (50, 40), colour) for colour in ("red", "blue", "green")]
    vectors = embedder.embed_images(images)
    assert vectors.shape == (3, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    texts = embedder.embed_texts(["a red circle", "two blue stars"])
    assert texts.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_batching_does_not_change_results(random_model_name: str) -> None:
    small_batches = Embedder(ModelSettings(name=random_model_name, batch_size=2, precision="fp32"))
    one_batch = Embedder(ModelSettings(name=random_model_name, batch_size=64, precision="fp32"))
    images = [Image.new("RGB", (40, 40), (i * 40, 100, 200 - i * 30)) for i in range(5)]
    np.testing.assert_allclose(
        small_batches.embed_images(images), one_batch.embed_images(images), atol=1e-5
    )
    pixels = one_batch.preprocess_images(images)
    np.testing.assert_allclose(
        one_batch.embed_images(pixels), one_batch.embed_images(images), atol=1e-6
    )


def test_bf16_is_close_to_fp32(random_model_name: str, embedder: Embedder) -> None:
    bf16 = Embedder(ModelSettings(name=random_model_name, precision="bf16"))
    images = [Image.new("RGB", (40, 40), (200, 40, 90))]
    cosine = float(bf16.embed_images(images)[0] @ embedder.embed_images(images)[0])
    assert bf16.runtime.dtype == torch.bfloat16
    assert cosine > 0.99


def test_identity_names_model_and_fingerprints_weights(
    embedder: Embedder, random_model_name: str
) -> None:
    assert embedder.identity.name == random_model_name
    assert embedder.identity.dim == 32
    assert embedder.identity.fingerprint and len(embedder.identity.fingerprint) == 16
    assert embedder.image_size == 32


def test_empty_text_is_refused(embedder: Embedder) -> None:
    with pytest.raises(QueryError, match="empty"):
        embedder.embed_texts(["  "])
    assert embedder.embed_texts([]).shape == (0, 32)
    assert embedder.embed_images([]).shape == (0, 32)


def test_runtime_choice() -> None:
    assert choose_runtime("cpu", "fp32").precision == "fp32"
    assert choose_runtime("cpu", "auto").precision in {"fp32", "bf16", "int8"}
    with pytest.raises(ModelError, match="fp16 is not supported on CPU"):
        choose_runtime("cpu", "fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            choose_runtime("cuda", "auto")
    with pytest.raises(ModelError, match="unknown device"):
        choose_runtime("tpu9", "auto")


def test_pretrained_tag_offline_fails_at_once_with_advice() -> None:
    with pytest.raises(ModelUnavailableError) as caught:
        resolve_model("ViT-B-32", "laion2b_s34b_b79k")
    message = str(caught.value)
    assert "ViT-B-32/laion2b_s34b_b79k is not cached" in message
    assert "--pretrained FOLDER/open_clip_model.safetensors" in message
    with pytest.raises(ModelUnavailableError):
        Embedder(ModelSettings(name="ViT-B-32"))


def test_unknown_names_tags_and_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model 'no-such-arch'"):
        resolve_model("no-such-arch")
    with pytest.raises(ModelError, match="unknown pretrained tag 'nope'"):
        resolve_model("ViT-B-32", "nope")
    with pytest.raises(ModelError, match="no such checkpoint file"):
        resolve_model("ViT-B-32", str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError, match="no such folder"):
        resolve_model(f"local-dir:{tmp_path / 'missing'}")
    with pytest.raises(ModelError, match=r"no open_clip_config\.json"):
        resolve_model(f"local-dir:{tmp_path}")


def test_local_checkpoint_file_resolves_for_an_architecture(tmp_path: Path) -> None:
    checkpoint = tmp_path / "my-weights.safetensors"
    checkpoint.write_bytes(b"x" * 100)
    source = resolve_model("ViT-B-32", str(checkpoint))
    assert source.open_clip_name == "ViT-B-32"
    assert source.open_clip_pretrained == str(checkpoint)
    assert source.tag == "my-weights.safetensors"
    assert source.fingerprint() is not None


def test_a_model_loaded_from_a_file_skips_random_init_and_gets_exactly_its_weights(
    random_model_dir,
) -> None:
    import open_clip

    from indexer.embed import weights_load_instead_of_init

    name = f"local-dir:{random_model_dir}"
    loaded = Embedder(ModelSettings(name=name, precision="fp32")).model.state_dict()
    reference = open_clip.create_model_and_transforms(name)[0].state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[key], reference[key]) for key in reference)
    # torch.nn.init works again afterwards, an error inside included.
    normal = torch.nn.init.normal_
    with pytest.raises(RuntimeError), weights_load_instead_of_init(True):
        assert torch.nn.init.normal_ is not normal
        raise RuntimeError("a failed load")
    assert torch.nn.init.normal_ is normal
    assert torch.nn.init.normal_(torch.zeros(1000)).std() > 0.5

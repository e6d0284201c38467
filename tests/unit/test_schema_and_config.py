"""The collection schema and the settings object."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from indexer.config import Settings
from indexer.schema import POINT_ID_BITS, ModelIdentity, point_id


def test_point_id_is_stable_and_fits_javascript_numbers() -> None:
    assert point_id("/a/b.jpg") == point_id("/a/b.jpg")
    assert point_id("/a/b.jpg") != point_id("/a/c.jpg")
    ids = {point_id(f"/photos/{i}.jpg") for i in range(10_000)}
    assert len(ids) == 10_000
    assert max(ids) < 2**POINT_ID_BITS <= 2**53


def test_model_identity_compatibility() -> None:
    base = ModelIdentity("ViT-B-32", "laion2b_s34b_b79k", 512, None)
    assert base.is_compatible(ModelIdentity("ViT-B-32", "laion2b_s34b_b79k", 512, "f00"))
    assert not base.is_compatible(ModelIdentity("ViT-B-32", "openai", 512))
    assert not ModelIdentity("m", None, 4, "a").is_compatible(ModelIdentity("m", None, 4, "b"))
    assert ModelIdentity.from_dict(base.to_dict()) == base
    assert base.label == "ViT-B-32/laion2b_s34b_b79k"


def test_settings_read_nested_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYSHOT_MODEL__NAME", "anyshot-tiny")
    monkeypatch.setenv("ANYSHOT_STORE__LOCATION", ":memory:")
    monkeypatch.setenv("ANYSHOT_INDEX__BATCH_SIZE", "32")
    settings = Settings()
    assert settings.model.name == "anyshot-tiny"
    assert "name" in settings.model.model_fields_set
    assert settings.store.location == ":memory:"
    assert settings.index.batch_size == 32


def test_settings_defaults_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    settings = Settings()
    assert settings.model.name == "ViT-B-32"
    assert settings.store.location == "/data/anyshot/store"
    monkeypatch.setenv("ANYSHOT_INDEX__BATCH_SIZE", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_a_bad_setting_of_several_kinds_is_one_setting_in_one_line(monkeypatch) -> None:
    from indexer.config import build_settings
    from indexer.errors import ConfigError

    monkeypatch.setenv("ANYSHOT_MODEL__BATCH_SIZE", "0")
    with pytest.raises(ConfigError) as caught:
        build_settings()
    assert str(caught.value) == (
        "ANYSHOT_MODEL__BATCH_SIZE: Input should be greater than or equal to 1 or Input should "
        "be 'auto' (got '0')"
    )
    monkeypatch.setenv("ANYSHOT_MODEL__PRECISION", "int4")
    with pytest.raises(ConfigError, match=r"PRECISION: .*'int8' \(got 'int4'\); and 1 more$"):
        build_settings()

"""Property-based requests from the OpenAPI schema (schemathesis): the API never answers 5xx."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from indexer.config import build_settings
from search.api import create_app
from search.messages import PARQUET_MEDIA_TYPE

pytestmark = pytest.mark.slow

# POST /load takes one Parquet shard's bytes: generated bodies are sent as they are.
schemathesis.serializer.alias(PARQUET_MEDIA_TYPE, "application/octet-stream")


@pytest.fixture(scope="module")
def api_schema(tiny_store_template, tmp_path_factory) -> schemathesis.BaseSchema:
    """The app over a copy of the tiny collection, started; its schema for schemathesis."""
    root = tmp_path_factory.mktemp("schema")
    store = root / "store"
    shutil.copytree(tiny_store_template[1], store)
    allowed = root / "allowed"  # POST /index may read only this empty folder
    allowed.mkdir()
    app_settings = build_settings(store=str(store), workers=0)
    app_settings.api = type(app_settings.api).model_validate(
        {"index_roots": [str(allowed)], "max_k": 50}
    )
    # schemathesis runs the app's lifespan (which opens the store) around its requests
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(app_settings))


def test_no_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    """A few dozen generated requests per operation; any 5xx fails with the request shown.

    The generation is derandomized (hypothesis derives a fixed seed), so every run sends the
    same requests; change ``max_examples`` or drop ``derandomize`` locally to explore more.

    (schemathesis's pytest plugin does not run under this pytest, so the operations are looped
    here, each with its own hypothesis run.)
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 25
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: CI does not flicker
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: schemathesis.Case) -> None:
            statuses.append(case.call_and_validate(checks=[not_a_server_error]).status_code)

        no_server_error()
    assert len(statuses) >= 25 * 10
    assert 200 in statuses and {400, 422} & set(statuses)  # answers and refusals both seen

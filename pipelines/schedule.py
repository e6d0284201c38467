"""Serve the indexing flow on a schedule (cron or interval) against a Prefect server."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import to_jsonable_python

from indexer.config import Settings
from indexer.errors import ConfigError
from pipelines.index_flow import index_images


def serve_index_schedule(
    source: str,
    settings: Settings,
    *,
    cron: str | None = None,
    interval: float | None = None,
    name: str | None = None,
) -> None:
    """Serve ``index_images(source, settings)`` as a deployment with a schedule, until stopped.

    A Prefect server must be reachable (``PREFECT_API_URL``): Prefect's temporary per-process
    server never fires schedules. Stop with SIGTERM or Ctrl-C; at most one run at a time.

    Args:
        source: Folder, list file or image to keep indexed.
        settings: The settings of every run. What was set (by an option or an ``ANYSHOT_*``
            variable) goes into the deployment's parameters, secrets excepted: the runs read
            those from the environment they inherit.
        cron: A cron expression (``"0 * * * *"``: hourly).
        interval: Seconds between runs.
        name: Deployment name; default ``index-<folder name>``.

    Raises:
        ConfigError: No schedule, two schedules, or no Prefect server configured.
    """
    if (cron is None) == (interval is None):
        raise ConfigError("give exactly one schedule: --cron EXPR or --interval SECONDS")
    if interval is not None and interval <= 0:
        raise ConfigError(f"--interval must be positive, not {interval}")
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "scheduling needs a Prefect server: start one (prefect server start) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    deployment = name or f"index-{os.path.basename(os.path.normpath(source)) or 'images'}"
    index_images.serve(
        name=deployment,
        cron=cron,
        interval=interval,
        parameters={"source": source, "settings": settings_parameters(settings)},
        limit=1,
        description=f"Keep the anyshot collection in step with {source}",
    )


def settings_parameters(settings: Settings) -> dict[str, Any]:
    """The settings that were set, as JSON-ready flow parameters, without their secrets.

    Flow parameters are stored by the Prefect server and shown in its UI: a secret (a store or
    API key) must not be among them. A run reads secrets from its environment instead.
    """
    return to_jsonable_python(_set_fields_without_secrets(settings))


def _set_fields_without_secrets(model: BaseModel) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            continue
        fields[name] = _set_fields_without_secrets(value) if isinstance(value, BaseModel) else value
    return fields

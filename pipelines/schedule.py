"""Serve the indexing flow on a schedule (cron or interval) against a Prefect server."""

from __future__ import annotations

import os
from typing import Any

from indexer.errors import ConfigError
from pipelines.index_flow import index_images


def serve_index_schedule(
    source: str,
    *,
    cron: str | None = None,
    interval: float | None = None,
    name: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> None:
    """Serve ``index_images(source, ...)`` as a deployment with a schedule, until stopped.

    A Prefect server must be reachable (``PREFECT_API_URL``): Prefect's temporary per-process
    server never fires schedules. Stop with SIGTERM or Ctrl-C; at most one run at a time.

    Args:
        source: Folder, list file or image to keep indexed.
        cron: A cron expression (``"0 * * * *"``: hourly).
        interval: Seconds between runs.
        name: Deployment name; default ``index-<folder name>``.
        parameters: Further flow parameters (model, store, batch_size, workers).

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
    flow_parameters = {"source": source} | {
        k: v for k, v in (parameters or {}).items() if v is not None
    }
    index_images.serve(
        name=deployment,
        cron=cron,
        interval=interval,
        parameters=flow_parameters,
        limit=1,
        description=f"Keep the anyshot collection in step with {source}",
    )

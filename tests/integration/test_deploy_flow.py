"""The deployment entry point of deploy/prefect.yaml, configured as a deployment configures it.

A worker runs ``pipelines/index_flow.py:index_images_dask`` with the parameters of the deployment
(its settings as JSON) and everything else from ``ANYSHOT_*`` variables (the job's env, the
worker's environment): the Dask scheduler address, the store, the model, the collection layout.
Here the scheduler is a local Dask cluster that this test starts, as a deployment finds one
already running, and the store is an embedded folder, so the workers send their vectors back to
the flow, the one writer.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from indexer.config import Settings
from indexer.stores.opening import open_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def dask_deployment() -> dict:
    config = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    [deployment] = [
        d for d in config["deployments"] if d["entrypoint"].endswith(":index_images_dask")
    ]
    return deployment


def test_dask_deployment_indexes_with_settings_from_the_environment(
    prefect_env, image_folder, random_model_name, tmp_path, monkeypatch
):
    from distributed import LocalCluster

    from pipelines.index_flow import index_images_dask

    deployment = dask_deployment()
    store = tmp_path / "store"
    env = {
        "ANYSHOT_STORE__LOCATION": str(store),
        "ANYSHOT_MODEL__NAME": random_model_name,
        "ANYSHOT_INDEX__BATCH_SIZE": "2",
        "ANYSHOT_STORE__SCALE__QUANTIZATION": "scalar",
        "ANYSHOT_STORE__SCALE__HNSW_M": "8",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        monkeypatch.setenv("ANYSHOT_INDEX__DASK_ADDRESS", cluster.scheduler_address)
        # The deployment's own parameters (JSON), except those that name its site: the source
        # and the store's location.
        parameters = copy.deepcopy(deployment["parameters"])
        del parameters["source"], parameters["settings"]["store"]["location"]
        summary = index_images_dask(str(image_folder["red"].parent), **parameters)
        workers_used = {
            worker for worker, tasks in cluster.get_client().run(_tasks_run).items() if tasks
        }

    assert (summary["indexed"], summary["skipped"]) == (6, 0)
    assert workers_used  # the batches ran on this cluster, reached through the variable
    settings = Settings()
    assert settings.store.location == str(store)
    with open_store(settings.store) as opened:
        info = opened.info()
        assert info.points == 6
        assert info.extra["quantization"] == "scalar" and info.extra["hnsw_m"] == 8
        points = list(opened.scroll(with_vectors=True))
        for point in points:
            [first] = opened.search(point.vector, limit=1)
            assert first.id == point.id
        assert np.allclose([np.linalg.norm(p.vector) for p in points], 1.0, atol=1e-4)


def _tasks_run(dask_worker) -> int:
    """How many task state transitions a Dask worker has seen (called on each worker)."""
    return dask_worker.state.transition_counter

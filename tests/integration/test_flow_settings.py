"""Settings reach the flows and their Dask workers whole; a served store is refused at start.

Real flow runs on the real Prefect server of ``conftest.py``, on a real Dask ``LocalCluster``
started here (worker processes), as a deployment finds one running at ``index.dask_address``.
What a worker task received is read on the worker itself, by a Dask worker plugin that notes
the settings of each task it runs; what it used, from the models it loaded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from click.testing import CliRunner
from distributed import LocalCluster, WorkerPlugin

from indexer.config import Settings
from indexer.errors import StoreServedError
from indexer.stores.edge import EdgeStore
from indexer.stores.holder import advertise_server
from indexer.stores.opening import open_store
from search.cli import main
from search.client import ImageSearch

pytestmark = pytest.mark.slow

# Worker processes unpickle the plugin: send this module's code along, not its import path.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class SettingsSeen(WorkerPlugin):
    """Notes, on a worker, the settings given to each task it runs (Prefect's task wrapper
    passes them in its ``parameters``)."""

    name = "anyshot-settings-seen"

    def setup(self, worker: Any) -> None:
        self.worker = worker
        self.seen: list[dict[str, Any]] = []

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing":
            return
        task = self.worker.state.tasks.get(key)
        parameters = getattr(task.run_spec, "kwargs", {}).get("parameters")
        settings = getattr(parameters, "get", lambda _: None)("settings")
        if isinstance(settings, Settings):
            self.seen.append(summary(settings))


def summary(settings: Settings) -> dict[str, Any]:
    store, model = settings.store, settings.model
    return {
        "collection": store.collection,
        "api_key": store.api_key.get_secret_value() if store.api_key else None,
        "quantization": store.scale.quantization,
        "hnsw_m": store.scale.hnsw_m,
        "reserve_free_mb": store.reserve_free_mb,
        "device": model.device,
        "batch_size": settings.index.batch_size,
    }


def models_loaded(dask_worker: Any) -> list[dict[str, Any]]:
    """The model settings a worker process loaded models with (run on each worker): torch
    models, and cached ONNX image towers (which an earlier test's index run may have exported)."""
    from indexer import embed

    towers = [json.loads(key.split(" ", 1)[1]) for key in embed._SHARED_TOWERS]
    return [json.loads(key) for key in embed._SHARED] + towers


def tasks_run(dask_worker: Any) -> int:
    return dask_worker.state.transition_counter


@pytest.fixture
def cluster(prefect_env: str) -> Iterator[LocalCluster]:
    """Two worker processes, reporting to the test's Prefect server (they inherit its URL)."""
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as started:
        started.get_client().register_plugin(SettingsSeen())
        yield started


def test_programmatic_settings_arrive_whole_on_the_dask_workers(
    cluster, image_folder, random_model_name, tmp_path
):
    settings = Settings(
        model={"name": random_model_name, "device": "cpu", "precision": "fp32"},
        store={
            "location": str(tmp_path / "store"),
            "collection": "shots",
            "api_key": "s3cret-key",
            "scale": {"quantization": "scalar", "hnsw_m": 8},
            "reserve_free_mb": 7,
        },
        index={"batch_size": 2, "dask_address": cluster.scheduler_address},
    )

    with ImageSearch(settings) as client:
        report = client.index(image_folder["red"].parent, runner="dask")

    assert (report.indexed, report.skipped) == (6, 0)
    dask = cluster.get_client()
    seen = [s for per_worker in dask.run(seen_settings).values() for s in per_worker]
    assert seen == [summary(settings)] * 3  # three batches of two, each with every setting
    used = [m for per_worker in dask.run(models_loaded).values() for m in per_worker]
    assert used and {(m["name"], m["device"], m["precision"]) for m in used} == {
        (random_model_name, "cpu", "fp32")
    }
    with open_store(settings.store) as store:
        info = store.info()  # the flow's own process laid the collection out as asked
    assert (info.points, info.extra["quantization"], info.extra["hnsw_m"]) == (6, "scalar", 8)
    assert "s3cret-key" not in json.dumps(flow_run_parameters())  # the server sees no secret


def seen_settings(dask_worker: Any) -> list[dict[str, Any]]:
    return dask_worker.plugins[SettingsSeen.name].seen


def flow_run_parameters() -> list[dict[str, Any]]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        return [run.parameters for run in prefect.read_flow_runs()]


def test_the_dask_address_setting_is_where_the_cli_runs_the_batches(
    cluster, image_folder, random_model_name, tmp_path, monkeypatch
):
    monkeypatch.setenv("ANYSHOT_INDEX__DASK_ADDRESS", cluster.scheduler_address)
    result = CliRunner().invoke(
        main,
        [
            *("index", str(image_folder["red"].parent), "--model", random_model_name),
            *("--store", str(tmp_path / "store"), "--runner", "dask", "--batch-size", "2"),
            "--json",
        ],
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["indexed"] == 6
    dask = cluster.get_client()
    assert sum(dask.run(tasks_run).values()) > 0  # the batches ran on this cluster
    assert len([s for w in dask.run(seen_settings).values() for s in w]) == 3


def test_a_flow_on_a_store_held_by_anyshot_serve_refuses_at_start_in_one_line(
    prefect_env, tmp_path
):
    from pipelines.index_flow import run_index_flow

    folder = tmp_path / "served"
    source = str(tmp_path / "not made yet")  # refused before the source is even looked at
    held = EdgeStore(folder)
    held.hold()  # as `anyshot serve` holds its store, from the start
    advertise_server(folder, "http://127.0.0.1:8123")
    try:
        with pytest.raises(StoreServedError) as refused:
            run_index_flow(source, Settings(store={"location": str(folder)}), runner="prefect")
        result = CliRunner().invoke(
            main, ["index", source, "--store", str(folder), "--runner", "prefect"]
        )
    finally:
        held.close()

    assert str(refused.value) == (
        f"{folder} is open in another process: anyshot serve at http://127.0.0.1:8123 holds "
        f"it; index through the server (anyshot index '{source}' --store {folder} hands the "
        f"run to it) or search it at http://127.0.0.1:8123/"
    )
    assert refused.value.url == "http://127.0.0.1:8123"
    run, logs = last_flow_run_and_logs()
    assert run.state.is_failed()
    assert str(refused.value) in "\n".join(logs)
    assert not any("Traceback" in line for line in logs)
    # The CLI finds no server answering at that URL: the refusal stands, in one line.
    assert result.exit_code == 1
    assert (
        result.stderr.count("\n") == 1 and "anyshot serve at http://127.0.0.1:8123" in result.stderr
    )


def last_flow_run_and_logs() -> tuple[Any, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as prefect:
        [run] = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(), sort=FlowRunSort.START_TIME_DESC, limit=1
        )
        logs = prefect.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))
        )
    return run, [log.message for log in logs]


def test_scheduled_runs_on_a_served_store_fail_in_one_line_each(prefect_env, tmp_path):
    folder, source = tmp_path / "served", tmp_path / "images"
    source.mkdir()
    held = EdgeStore(folder)
    held.hold()
    advertise_server(folder, "http://127.0.0.1:8124")
    log = tmp_path / "schedule.log"
    command = [
        *(str(Path(sys.executable).parent / "anyshot"), "schedule", str(source)),
        *("--interval", "2", "--store", str(folder), "--name", "held-store"),
    ]
    with log.open("w") as output:
        serving = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        runs = wait_for_failed_runs("held-store", count=2, timeout=180)
    finally:
        os.killpg(serving.pid, signal.SIGTERM)
        serving.wait(timeout=60)
        held.close()

    expected = "anyshot serve at http://127.0.0.1:8124 holds it; index through the server"
    for run in runs:
        assert expected in run.state.message
    printed = log.read_text()
    assert printed.count(expected) >= 2
    assert "Traceback" not in printed, printed


def wait_for_failed_runs(deployment: str, count: int, timeout: float) -> list[Any]:
    """Poll the Prefect server until ``count`` runs of ``deployment`` have failed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    failed: list[Any] = []
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as prefect:
            failed = prefect.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.FAILED]))
                ),
            )
        if len(failed) >= count:
            return failed
        time.sleep(1)
    raise AssertionError(f"{len(failed)} failed runs of {deployment} after {timeout} s")

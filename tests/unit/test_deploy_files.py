"""The deployment files refer to real flows, parameters and settings."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml

from indexer.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def setting_names() -> set[str]:
    """Every ANYSHOT_* variable that Settings reads."""
    names = set()
    for section, field in Settings.model_fields.items():
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            names.add(f"ANYSHOT_{section.upper()}__{key.upper()}")
    return names


def test_prefect_yaml_deployments_point_at_flows_with_their_parameters() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        path, _, name = deployment["entrypoint"].partition(":")
        assert (ROOT / path).is_file(), path
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(deployment["parameters"]) <= accepted, deployment["name"]
        assert "source" in deployment["parameters"]
        env = deployment["work_pool"]["job_variables"]["env"]
        anyshot_vars = {key for key in env if key.startswith("ANYSHOT_")}
        assert anyshot_vars <= setting_names(), anyshot_vars - setting_names()
        for schedule in deployment["schedules"]:
            assert len(schedule["cron"].split()) == 5

"""The deployment files parse and agree with each other and with the code.

deploy/prefect.yaml, deploy/compose.yaml, deploy/Dockerfile and deploy/k8s/*.yaml name the same
services, ports, images, volumes and settings; these tests read them all and check that every
reference has something real at its other end (a flow, a CLI command and its options, a setting,
a service that listens on that port, a volume, a Secret key, a Helm chart value).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from pydantic import BaseModel

from indexer.config import FLOW_RUNNERS, Settings
from search.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
VENV_BIN = Path(sys.executable).parent

# Helm chart values keys, from the charts' own values.yaml / values.schema.json:
# qdrant/qdrant-helm charts/qdrant/values.yaml (top level) and PrefectHQ/prefect-helm
# charts/prefect-worker/values.schema.json (top level and `worker`).
QDRANT_CHART_KEYS = {
    "replicaCount", "image", "imagePullSecrets", "nameOverride", "fullnameOverride", "args",
    "env", "service", "ingress", "livenessProbe", "readinessProbe", "startupProbe",
    "additionalLabels", "podAnnotations", "podLabels", "resources", "containerSecurityContext",
    "podSecurityContext", "lifecycle", "updateVolumeFsOwnership", "nodeSelector", "tolerations",
    "affinity", "topologySpreadConstraints", "persistence", "snapshotPersistence",
    "snapshotRestoration", "config", "sidecarContainers", "metrics", "serviceAccount",
    "priorityClassName", "shareProcessNamespace", "podManagementPolicy", "podDisruptionBudget",
    "apiKey", "readOnlyApiKey", "additionalVolumes", "additionalVolumeMounts",
}  # fmt: skip
QDRANT_CHART_NESTED = {
    "image": {"repository", "pullPolicy", "tag", "useUnprivilegedImage"},
    "persistence": {"accessModes", "size", "annotations", "storageClassName",
                    "storageVolumeName", "storageSubPath"},
    "snapshotPersistence": {"enabled", "accessModes", "size", "annotations", "storageClassName",
                            "snapshotsVolumeName", "snapshotsSubPath"},
    "podDisruptionBudget": {"enabled", "maxUnavailable", "minAvailable",
                            "unhealthyPodEvictionPolicy"},
}  # fmt: skip
PREFECT_WORKER_CHART_KEYS = {
    "nameOverride", "fullnameOverride", "namespaceOverride", "commonLabels", "commonAnnotations",
    "worker", "serviceAccount", "role", "rolebinding", "common", "global",
}  # fmt: skip
PREFECT_WORKER_CHART_NESTED = {
    "worker": {
        "autoscaling", "clusterUid", "initContainer", "image", "config", "apiConfig",
        "cloudApiConfig", "selfHostedCloudApiConfig", "serverApiConfig", "revisionHistoryLimit",
        "replicaCount", "resources", "livenessProbe", "podSecurityContext", "priorityClassName",
        "containerSecurityContext", "podLabels", "podAnnotations", "affinity", "nodeSelector",
        "tolerations", "extraEnvVars", "extraEnvVarsCM", "extraEnvVarsCMs",
        "extraEnvVarsSecret", "extraEnvVarsSecrets", "extraContainers", "extraVolumes",
        "extraVolumeMounts", "extraArgs",
    },
    "worker.image": {"repository", "prefectTag", "pullPolicy", "pullSecrets", "debug"},
    "worker.config": {"workPool", "workQueues", "queryInterval", "prefetchSeconds", "http2",
                      "limit", "name", "installPolicy", "type", "baseJobTemplate"},
    "worker.serverApiConfig": {"apiUrl", "uiUrl"},
    "worker.resources": {"requests", "limits"},
    "worker.podSecurityContext": {"fsGroup", "runAsNonRoot", "runAsUser", "seccompProfile"},
}  # fmt: skip


# -- helpers -----------------------------------------------------------------------------------


def setting_names() -> set[str]:
    """Every ANYSHOT_* variable that Settings reads, nested sections included."""

    def walk(model: type[BaseModel], prefix: str) -> Iterator[str]:
        for key, field in model.model_fields.items():
            name = f"{prefix}{key.upper()}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from walk(annotation, f"{name}__")
            else:
                yield name

    return set(walk(Settings, "ANYSHOT_"))


def expand(value: Any) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default (VAR unset)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def assert_real_settings(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every ANYSHOT_* key is a setting, and the values validate together."""
    anyshot = {k: expand(v) for k, v in env.items() if k.startswith("ANYSHOT_")}
    assert set(anyshot) <= setting_names(), set(anyshot) - setting_names()
    for key in list(os.environ):
        if key.startswith("ANYSHOT_"):
            monkeypatch.delenv(key)
    for key, value in anyshot.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    for key in anyshot:
        monkeypatch.delenv(key)
    return settings


def assert_real_fields(model: type[BaseModel], data: dict[str, Any]) -> None:
    """Every key of ``data`` (JSON settings) names a field of ``model``, sections included:
    settings ignore unknown keys, so a misspelt one would change nothing, silently."""
    assert set(data) <= set(model.model_fields), set(data) - set(model.model_fields)
    for key, value in data.items():
        section = model.model_fields[key].annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            assert_real_fields(section, value)


def assert_cli_call(args: list[str]) -> None:
    """``anyshot ARGS`` names a real command and only its real options."""
    command, *rest = args
    assert command in main.commands, f"anyshot has no command {command!r}"
    params = main.commands[command].params
    options = {opt for param in params for opt in param.opts + param.secondary_opts}
    used = {arg.split("=")[0] for arg in rest if arg.startswith("-")}
    assert used <= options, f"anyshot {command}: unknown options {used - options}"


def assert_executable(argv: list[str]) -> None:
    """The program of a container command: ``anyshot`` arguments, or a script of our venv."""
    if argv[0] == "anyshot":
        assert_cli_call(argv[1:])
    else:
        assert (VENV_BIN / argv[0]).is_file(), f"{argv[0]} is not installed with anyshot"
    if argv[:2] == ["prefect", "--no-prompt"]:
        argv = ["prefect", *argv[2:]]
    if argv[0] == "dask":
        from distributed.cli import dask_scheduler, dask_worker

        command = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}[argv[1]]
        options = {opt for param in command.params for opt in param.opts}
        used = {arg for arg in argv[2:] if arg.startswith("-")}
        assert used <= options, f"dask {argv[1]}: unknown options {used - options}"
    if argv[:3] == ["prefect", "worker", "start"]:
        assert option(argv, "--pool") in work_pools()


def option(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in a command line."""
    return argv[argv.index(name) + 1] if name in argv else None


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def prefect_config() -> dict[str, Any]:
    return load(DEPLOY / "prefect.yaml")


def work_pools() -> set[str]:
    return {d["work_pool"]["name"] for d in prefect_config()["deployments"]}


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for kind, arg in dockerfile() if kind == "ARG" and "=" in arg)


# -- prefect.yaml ------------------------------------------------------------------------------


def test_every_deploy_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {
        "prefect.yaml",
        "compose.yaml",
        "k8s/kustomization.yaml",
        "k8s/anyshot.yaml",
        "k8s/dask-cluster.yaml",
        "k8s/qdrant-values.yaml",
        "k8s/prefect-worker-values.yaml",
    }
    for path in files:
        assert load_all(path), path


def test_prefect_yaml_deployments_point_at_flows_with_their_parameters(monkeypatch) -> None:
    config = prefect_config()
    assert config["deployments"]
    for deployment in config["deployments"]:
        path, _, name = deployment["entrypoint"].partition(":")
        assert (ROOT / path).is_file(), path
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(deployment["parameters"]) <= accepted, deployment["name"]
        assert "source" in deployment["parameters"]
        assert deployment["parameters"].get("runner", "prefect") in FLOW_RUNNERS
        env = deployment["work_pool"]["job_variables"]["env"]
        assert_real_settings(env, monkeypatch)
        assert_real_fields(Settings, deployment["parameters"]["settings"])
        Settings.model_validate(deployment["parameters"]["settings"])
        for schedule in deployment["schedules"]:
            assert len(schedule["cron"].split()) == 5


def test_prefect_yaml_runs_flows_from_where_the_image_keeps_the_source() -> None:
    [step] = prefect_config()["pull"]
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    workdirs = [arg for kind, arg in dockerfile() if kind == "WORKDIR"]
    assert workdirs[-1] == directory


# -- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_installs_torch_first_runs_as_non_root_and_enters_the_cli() -> None:
    steps = dockerfile()
    runs = [arg for kind, arg in steps if kind == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if "torch==" in r)
    package_at = next(i for i, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r))
    assert torch_at < package_at
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in runs[torch_at]
    args = dockerfile_args()
    assert args["TORCH_VARIANT"] == "cpu"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {r.name: r.specifier for r in map(Requirement, project["dependencies"])}
    assert args["TORCH_VERSION"] in pins["torch"]
    assert args["TORCHVISION_VERSION"] in pins["torchvision"]

    users = [arg for kind, arg in steps if kind == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert args["ANYSHOT_UID"] != "0"

    entrypoint = yaml.safe_load(next(arg for kind, arg in steps if kind == "ENTRYPOINT"))
    command = yaml.safe_load(next(arg for kind, arg in steps if kind == "CMD"))
    assert entrypoint == ["anyshot"]
    assert project["scripts"]["anyshot"] == "search.cli:main"
    assert_cli_call(command)


def test_dockerfile_copies_what_exists_and_the_dockerignore_lets_it_through() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for kind, arg in dockerfile():
        if kind == "COPY":
            *sources, _ = arg.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded from the context"


# -- compose.yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(DEPLOY / "compose.yaml")


def is_anyshot(service: dict[str, Any]) -> bool:
    """True for a service that runs the anyshot image (built from deploy/Dockerfile)."""
    return "build" in service


def argv_of(service: dict[str, Any]) -> list[str]:
    """The command line a compose service runs in its image."""
    entrypoint = service.get("entrypoint")
    command = [str(c) for c in service.get("command", [])]
    if entrypoint is not None:
        return [str(e) for e in entrypoint] + command
    if not is_anyshot(service):
        return command
    default = yaml.safe_load(next(arg for kind, arg in dockerfile() if kind == "CMD"))
    return ["anyshot", *(command or default)]


def listening_ports(service: dict[str, Any]) -> set[int]:
    """Ports a compose service listens on inside the network."""
    ports = {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    argv = argv_of(service)
    for name in ("--port", "--dashboard-address"):
        if (value := option(argv, name)) is not None:
            ports.add(int(value.rsplit(":", 1)[-1]))
    env = service.get("environment", {})
    if env.get("QDRANT__CLUSTER__ENABLED") == "true":
        ports |= {6333, 6334, int(env["QDRANT__CLUSTER__P2P__PORT"])}
    return ports


def test_compose_services_reach_each_other_by_name_and_port(compose) -> None:
    services = compose["services"]
    urls = []
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if re.match(r"^(https?|tcp)://", str(value)):
                urls.append((name, key, str(value)))
        for arg in argv_of(service):
            if re.match(r"^(https?|tcp)://", arg):
                urls.append((name, "command", arg))
    assert len(urls) > 10
    for name, where, url in urls:
        host, port = host_port(url)
        assert host in services, f"{name} {where}: no service {host}"
        assert port in listening_ports(services[host]), f"{name} {where}: {host} not on {port}"


def test_compose_dependencies_exist_and_wait_for_health_checks(compose) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] == "service_healthy"
            assert "healthcheck" in services[dependency], dependency
            # A service outside a profile cannot wait for one inside it.
            assert set(services[dependency].get("profiles", [])) <= set(service.get("profiles", []))
    # Every long-running server is health-checked; the API on the port it serves.
    for name in ("qdrant", "prefect-server", "dask-scheduler", "api"):
        assert "healthcheck" in services[name], name
    api = services["api"]
    check = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{option(argv_of(api), '--port')}/healthz" in check


def test_compose_volumes_are_declared_and_sources_are_mounted_where_flows_read(compose) -> None:
    services, declared = compose["services"], set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = expand(volume).split(":")[0]
            if not source.startswith((".", "/")):  # a named volume, not a bind mount
                assert source in declared, f"{name}: volume {source} is not declared"
    container_paths = {
        name: {expand(v).split(":")[1] for v in service.get("volumes", [])}
        for name, service in services.items()
    }
    for deployment in prefect_config()["deployments"]:
        source = deployment["parameters"]["source"]
        readers = ["prefect-worker"]
        if deployment["entrypoint"].endswith(":index_images_dask"):
            readers += ["dask-worker", "dask-worker-gpu"]
        for reader in readers:
            assert source in container_paths[reader], f"{source} is not mounted in {reader}"


def test_compose_commands_and_settings_are_real(compose, monkeypatch) -> None:
    services = compose["services"]
    for name, service in services.items():
        if is_anyshot(service):
            assert_executable(argv_of(service))
        settings = assert_real_settings(service.get("environment", {}), monkeypatch)
        if name == "api":
            assert option(argv_of(service), "--store") == settings.store.location
    deploy_cmd = argv_of(services["prefect-deploy"])
    assert (ROOT / option(deploy_cmd, "--prefect-file")).is_file()
    # The deployments write where the compose services read.
    env = services["prefect-worker"]["environment"]
    for deployment in prefect_config()["deployments"]:
        location = deployment["parameters"]["settings"]["store"]["location"]
        assert location == env["ANYSHOT_STORE__LOCATION"]
        job_env = deployment["work_pool"]["job_variables"]["env"]
        if "ANYSHOT_INDEX__DASK_ADDRESS" in job_env:
            assert job_env["ANYSHOT_INDEX__DASK_ADDRESS"] == env["ANYSHOT_INDEX__DASK_ADDRESS"]


def test_compose_builds_the_anyshot_image_and_the_cluster_joins_the_first_node(compose) -> None:
    services = compose["services"]
    for name, service in services.items():
        if "build" in service:
            assert (DEPLOY / service["build"]["context"]).resolve() == ROOT, name
            assert (ROOT / service["build"]["dockerfile"]).is_file(), name
            variant = service["build"]["args"]["TORCH_VARIANT"]
            assert variant == "cpu" or variant.startswith("cu"), name
    cluster = [n for n, s in services.items() if "cluster" in s.get("profiles", [])]
    assert len(cluster) == 2  # plus `qdrant`: three nodes
    for name in cluster:
        argv = argv_of(services[name])
        host, port = host_port(option(argv, "--bootstrap"))
        assert host == "qdrant" and port in listening_ports(services["qdrant"])
        assert host_port(option(argv, "--uri")) == (name, port)
    gpu = services["dask-worker-gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["build"]["args"]["TORCH_VARIANT"] != "cpu"


# -- k8s ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    kustomization = load(K8S / "kustomization.yaml")
    docs = []
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
        docs += load_all(K8S / resource)
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"]["name"]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["name"], spec["template"]["spec"]
        elif doc["kind"] == "DaskCluster":
            yield f"{doc['metadata']['name']}-scheduler", spec["scheduler"]["spec"]
            yield f"{doc['metadata']['name']}-default", spec["worker"]["spec"]
        elif doc["kind"] == "DaskWorkerGroup":
            yield doc["metadata"]["name"], spec["worker"]["spec"]


def worker_values() -> dict[str, Any]:
    return load(K8S / "prefect-worker-values.yaml")


def qdrant_values() -> dict[str, Any]:
    return load(K8S / "qdrant-values.yaml")


def test_helm_values_use_only_keys_the_charts_define() -> None:
    def check(values: dict[str, Any], top: set[str], nested: dict[str, set[str]]) -> None:
        assert set(values) <= top, set(values) - top
        for path, keys in nested.items():
            node: Any = values
            for part in path.split("."):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            assert set(node) <= keys, f"{path}: {set(node) - keys}"

    check(qdrant_values(), QDRANT_CHART_KEYS, QDRANT_CHART_NESTED)
    check(worker_values(), PREFECT_WORKER_CHART_KEYS, PREFECT_WORKER_CHART_NESTED)
    # The worker chart's schema types resources as strings.
    for group in worker_values()["worker"]["resources"].values():
        assert all(isinstance(v, str) for v in group.values())


def test_k8s_config_map_holds_real_settings_for_a_replicated_cluster(
    manifests, monkeypatch
) -> None:
    config = by_kind(manifests, "ConfigMap")["anyshot-config"]["data"]
    assert all(isinstance(v, str) for v in config.values())  # ConfigMap values are strings
    settings = assert_real_settings(config, monkeypatch)
    qdrant = qdrant_values()
    assert qdrant["replicaCount"] == 3
    assert qdrant["config"]["cluster"]["enabled"] is True
    scale = settings.store.scale
    assert scale.replication_factor == 2 and scale.replication_factor <= qdrant["replicaCount"]
    assert scale.shard_number is not None and scale.shard_number >= qdrant["replicaCount"]
    host, port = host_port(settings.store.location)
    assert (host, port) == (qdrant["fullnameOverride"], 6333)
    api_key = qdrant["apiKey"]["valueFrom"]["secretKeyRef"]
    # Every pod that is given the API key takes it from the Secret the chart reads.
    refs = []
    for _, spec in pod_specs(manifests):
        for container in spec["containers"]:
            refs += [e for e in container.get("env", []) if e["name"] == "ANYSHOT_STORE__API_KEY"]
    refs += [e for e in worker_values()["worker"]["extraEnvVars"]]
    assert refs
    for ref in refs:
        assert ref["valueFrom"]["secretKeyRef"] == api_key


def test_k8s_pods_refer_to_defined_config_volumes_and_real_commands(manifests) -> None:
    config_maps = set(by_kind(manifests, "ConfigMap"))
    claims = set(by_kind(manifests, "PersistentVolumeClaim"))
    worker = worker_values()["worker"]
    assert worker["extraEnvVarsCM"] in config_maps
    pods = [*pod_specs(manifests), ("prefect-worker", {"containers": [], **worker})]
    for name, spec in pods:
        volumes = spec.get("volumes", spec.get("extraVolumes", []))
        for volume in volumes:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
        volume_names = {v["name"] for v in volumes}
        mounts = [m for c in spec["containers"] for m in c.get("volumeMounts", [])]
        mounts += spec.get("extraVolumeMounts", [])
        assert {m["name"] for m in mounts} <= volume_names, name
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, name
            argv = [*container.get("command", ["anyshot"]), *container.get("args", [])]
            assert_executable([a for a in argv if not a.startswith("$(")])
    # The flows' sources are mounted where the flows and the Dask workers read them.
    for deployment in prefect_config()["deployments"]:
        source = deployment["parameters"]["source"]
        assert source in {m["mountPath"] for m in worker["extraVolumeMounts"]}
        if deployment["entrypoint"].endswith(":index_images_dask"):
            for name, spec in pod_specs(manifests):
                if name.startswith("dask") and "scheduler" not in name:
                    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
                    assert source in mounts, (name, source)


def test_k8s_images_are_the_anyshot_image_and_gpu_workers_get_the_cuda_build(manifests) -> None:
    worker = worker_values()["worker"]
    repository = worker["image"]["repository"]
    assert worker["podSecurityContext"]["runAsUser"] == int(dockerfile_args()["ANYSHOT_UID"])
    for name, spec in pod_specs(manifests):
        [container] = spec["containers"]
        image, _, tag = container["image"].rpartition(":")
        assert image == repository, name
        gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        assert tag.endswith("-cuda") == bool(gpus), name
        assert spec["securityContext"]["runAsUser"] == int(dockerfile_args()["ANYSHOT_UID"])
    assert worker["image"]["prefectTag"].endswith("-cpu")


def test_k8s_api_service_health_checks_and_dask_addresses_line_up(manifests) -> None:
    deployment = by_kind(manifests, "Deployment")["anyshot-api"]
    service = by_kind(manifests, "Service")["anyshot-api"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    assert port_names["http"] == int(option(container["args"], "--port"))
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}

    config = by_kind(manifests, "ConfigMap")["anyshot-config"]["data"]
    [cluster] = by_kind(manifests, "DaskCluster").values()
    name = cluster["metadata"]["name"]
    host, port = host_port(config["ANYSHOT_INDEX__DASK_ADDRESS"])
    assert host == f"{name}-scheduler"  # the operator's name for the scheduler Service
    scheduler_service = cluster["spec"]["scheduler"]["service"]
    assert scheduler_service["selector"]["dask.org/cluster-name"] == name
    assert port in {p["port"] for p in scheduler_service["ports"]}
    for group in by_kind(manifests, "DaskWorkerGroup").values():
        assert group["spec"]["cluster"] == name
    for deployment_config in prefect_config()["deployments"]:
        job_env = deployment_config["work_pool"]["job_variables"]["env"]
        if "ANYSHOT_INDEX__DASK_ADDRESS" in job_env:
            assert job_env["ANYSHOT_INDEX__DASK_ADDRESS"] == config["ANYSHOT_INDEX__DASK_ADDRESS"]

    worker = worker_values()["worker"]
    assert worker["config"]["workPool"] in work_pools()
    assert worker["config"]["type"] == "process"
    api_host, api_port = host_port(worker["serverApiConfig"]["apiUrl"])
    assert config["PREFECT_API_URL"] == worker["serverApiConfig"]["apiUrl"]
    assert (api_host, api_port) == ("prefect-server", 4200)


def test_deploy_readme_documents_every_scale_setting_and_no_other() -> None:
    from indexer.config import ScaleSettings

    text = (DEPLOY / "README.md").read_text()
    table = text.split("## Collection settings for scale")[1].split("\n## ")[0]
    documented = set()
    for row in re.findall(r"^\| ((?:`[A-Z_]+`(?:, )?)+) \|", table, flags=re.MULTILINE):
        documented |= set(re.findall(r"`([A-Z_]+)`", row))
    assert documented == {name.upper() for name in ScaleSettings.model_fields}
    assert {f"ANYSHOT_STORE__SCALE__{name}" for name in documented} <= setting_names()

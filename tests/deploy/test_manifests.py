"""deploy/: Kubernetes manifests validated offline against the Kubernetes OpenAPI schemas that
kubernetes-validate ships (strict: unknown fields fail), KServe, KEDA and prometheus-operator resources
against the schemas in kserve_schema.py and crd_schemas.py, and the wiring between them checked (ports,
probes, selectors, volumes, and the ovembed flags parsed by ovembed's own CLI). The Helm chart has its
own tests (test_helm_chart.py)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

from tests.deploy.container_args import export_config, serve_config  # noqa: E402
from tests.deploy.validation import CUSTOM_SCHEMAS, K8S_VERSIONS, validate_custom  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KSERVE = ROOT / "deploy" / "kserve"
IMAGE_UID = 10001  # docker/Dockerfile: useradd --uid 10001


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(folder.glob("*.yaml")) for d in _docs(p) if d.get("kind") != "Kustomization"]


ALL = _manifests(K8S) + _manifests(KSERVE)
CORE = [(n, d) for n, d in ALL if d["kind"] not in CUSTOM_SCHEMAS]
CUSTOM = [(n, d) for n, d in ALL if d["kind"] in CUSTOM_SCHEMAS]


def _one(folder: Path, filename: str, kind: str) -> dict[str, Any]:
    docs = [d for d in _docs(folder / filename) if d["kind"] == kind]
    assert len(docs) == 1, f"{filename}: expected one {kind}"
    return docs[0]


# --- schema validation ------------------------------------------------------------------------


def test_manifests_found() -> None:
    kinds = sorted(d["kind"] for _, d in ALL)
    assert kinds == sorted(["PersistentVolumeClaim", "Deployment", "Service", "HorizontalPodAutoscaler",
                            "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "ServingRuntime",
                            "InferenceService", "ScaledObject", "ServiceMonitor"])
    for name, doc in ALL:
        assert {"apiVersion", "kind", "metadata", "spec"} <= doc.keys(), name
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "ovembed", name


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("filename", "doc"), CORE, ids=[f"{n}:{d['kind']}" for n, d in CORE])
def test_core_manifest_is_valid(filename: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize(("filename", "doc"), CUSTOM, ids=[f"{n}:{d['kind']}" for n, d in CUSTOM])
def test_custom_resource_is_valid(filename: str, doc: dict[str, Any]) -> None:
    validate_custom(doc)


def test_validators_reject_mistakes() -> None:
    """The validators are not vacuous: a typo, a wrong type and a bad enum value all fail."""
    deployment = _one(K8S, "deployment.yaml", "Deployment")
    typo = copy.deepcopy(deployment)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSIONS[-1], strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSIONS[-1], strict=True)

    runtime = _one(KSERVE, "servingruntime.yaml", "ServingRuntime")
    mutations: list[Callable[[dict[str, Any]], None]] = [
        lambda r: r["spec"].__setitem__("protocolVersions", ["v3"]),
        lambda r: r["spec"].__setitem__("supportedModelFormat", r["spec"].pop("supportedModelFormats")),
        lambda r: r["spec"]["containers"][0].__setitem__("imagePullPolicy", 3),
        lambda r: r["spec"]["containers"][0]["ports"][0].__setitem__("containerPort", "8000"),
    ]
    for mutate in mutations:
        bad = copy.deepcopy(runtime)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            validate_custom(bad)
    isvc = _one(KSERVE, "inferenceservice.yaml", "InferenceService")
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["model"]["storageURI"] = bad["spec"]["predictor"]["model"].pop("storageUri")
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(bad)


# --- wiring -------------------------------------------------------------------------------------


def test_deployment_serves_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _one(K8S, "deployment.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    cfg = serve_config(container["args"], monkeypatch)
    assert str(cfg.config_path) == "/models/config.json" and cfg.model_path is None
    assert (cfg.rest_bind_address, cfg.grpc_bind_address) == ("0.0.0.0", "0.0.0.0")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": cfg.rest_port, "grpc": cfg.port}

    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/v2/health/live"
    assert probes["readinessProbe"]["path"] == "/v2/health/ready"
    assert probes["startupProbe"]["path"] == "/v2/health/live"
    assert all(ports[p["port"]] == cfg.rest_port for p in probes.values())

    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert grace > cfg.graceful_timeout + pre_stop, "SIGKILL would cut in-flight requests"
    assert container["resources"]["requests"]["cpu"], "the CPU HPA needs a CPU request"


def test_models_volume_is_read_only_and_pods_are_non_root() -> None:
    pvc = _one(K8S, "pvc.yaml", "PersistentVolumeClaim")
    deployment = _one(K8S, "deployment.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    models = mounts["/models"]
    assert models["readOnly"] is True
    claim = volumes[models["name"]]["persistentVolumeClaim"]
    assert claim == {"claimName": pvc["metadata"]["name"], "readOnly": True}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    if sc.get("readOnlyRootFilesystem"):
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "a read-only root needs a writable /tmp"


def test_service_pdb_and_hpas_select_the_deployment() -> None:
    deployment = _one(K8S, "deployment.yaml", "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}

    service = _one(K8S, "service.yaml", "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} == port_names
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8000, "grpc": 9000}

    pdb = _one(K8S, "pdb.yaml", "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    cpu = _one(K8S, "hpa.yaml", "HorizontalPodAutoscaler")
    queue = _one(K8S, "hpa-queue-depth.yaml", "HorizontalPodAutoscaler")
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    for hpa in (cpu, queue):
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == target
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert cpu["metadata"]["name"] == queue["metadata"]["name"], "alternatives: applying one replaces the other"
    assert cpu["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    (metric,) = queue["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "ovembed_queue_depth"


def test_queue_depth_metric_exists_in_ovembed() -> None:
    """The metric the queue-depth HPA scales on is one the server really exports at /metrics."""
    from starlette.testclient import TestClient

    from tests.serving.fakes import FakeRegistry, FakeServable, make_app

    queue = _one(K8S, "hpa-queue-depth.yaml", "HorizontalPodAutoscaler")
    metric = queue["spec"]["metrics"][0]["pods"]["metric"]["name"]
    (trigger,) = _one(K8S, "keda-scaledobject.yaml", "ScaledObject")["spec"]["triggers"]
    assert re.findall(r"ovembed_\w+", trigger["metadata"]["query"]) == [metric]
    with TestClient(make_app(FakeRegistry(FakeServable("m")))) as client:
        body = client.get("/metrics").text
    assert re.search(rf"^{metric}\{{model=\"m\"\}} ", body, re.MULTILINE), body


def test_keda_scaled_object_scales_the_deployment_on_queue_depth() -> None:
    deployment = _one(K8S, "deployment.yaml", "Deployment")
    service = _one(K8S, "service.yaml", "Service")
    scaled = _one(K8S, "keda-scaledobject.yaml", "ScaledObject")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": deployment["metadata"]["name"]}
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    query = trigger["metadata"]["query"]
    assert re.fullmatch(r'sum\(ovembed_queue_depth\{namespace="[a-z0-9-]+",service="(?P<svc>[a-z0-9-]+)"\}\)',
                        query), query
    assert f'service="{service["metadata"]["name"]}"' in query  # the label prometheus-operator sets
    assert float(trigger["metadata"]["threshold"]) > 0
    # Same name as the HPAs: KEDA's own HPA is keda-hpa-<name>, and the docs say to drop hpa.yaml.
    assert scaled["metadata"]["name"] == _one(K8S, "hpa.yaml", "HorizontalPodAutoscaler")["metadata"]["name"]


def test_service_monitor_scrapes_metrics_on_the_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _one(K8S, "deployment.yaml", "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    cfg = serve_config(container["args"], monkeypatch)
    service = _one(K8S, "service.yaml", "Service")
    monitor = _one(K8S, "servicemonitor.yaml", "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and cfg.metrics_enable
    service_port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
    container_port = next(p for p in container["ports"] if p["name"] == service_port["targetPort"])
    assert container_port["containerPort"] == cfg.rest_port


def test_crd_validators_reject_mistakes() -> None:
    """The KEDA and ServiceMonitor schemas are not vacuous: typos, wrong types and bad enums fail."""
    scaled = _one(K8S, "keda-scaledobject.yaml", "ScaledObject")
    monitor = _one(K8S, "servicemonitor.yaml", "ServiceMonitor")
    mutations: list[tuple[dict[str, Any], Callable[[dict[str, Any]], None]]] = [
        (scaled, lambda d: d["spec"].__setitem__("minReplicas", d["spec"].pop("minReplicaCount"))),
        (scaled, lambda d: d["spec"]["triggers"][0].__setitem__("metricType", "Average")),
        (scaled, lambda d: d["spec"]["triggers"][0]["metadata"].pop("threshold")),
        (scaled, lambda d: d["spec"]["triggers"][0]["metadata"].__setitem__("threshold", 128)),
        (scaled, lambda d: d["spec"]["triggers"][0]["metadata"].__setitem__("serverAdress", "http://p:9090")),
        (scaled, lambda d: d["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
         .__setitem__("stabilisationWindowSeconds", 300)),
        (scaled, lambda d: d["spec"].__setitem__("triggers", [])),
        (monitor, lambda d: d["spec"]["endpoints"][0].__setitem__("port", 8000)),
        (monitor, lambda d: d["spec"]["endpoints"][0].__setitem__("interval", "15 seconds")),
        (monitor, lambda d: d["spec"]["endpoints"][0].__setitem__("metricsPath", "/metrics")),
        (monitor, lambda d: d["spec"]["selector"].__setitem__("matchLabel", {"a": "b"})),
        (monitor, lambda d: d["spec"].pop("selector")),
    ]
    for doc, mutate in mutations:
        validate_custom(doc)
        bad = copy.deepcopy(doc)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            validate_custom(bad)


def test_kustomization_lists_the_default_set() -> None:
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources)
    on_demand = {"export-job.yaml", "hpa-queue-depth.yaml", "keda-scaledobject.yaml", "servicemonitor.yaml"}
    assert set(resources) == {p.name for p in K8S.glob("*.yaml")} - on_demand - {"kustomization.yaml"}
    images = {i["name"] for i in kustomization["images"]}
    deployment = _one(K8S, "deployment.yaml", "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].split(":")[0] in images


def test_export_job_writes_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    job = _one(K8S, "export-job.yaml", "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    cfg = export_config(container["args"], monkeypatch)
    assert str(cfg.model_repository_path) == "/models"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    assert not mount.get("readOnly", False)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == _one(K8S, "pvc.yaml", "PersistentVolumeClaim")[
        "metadata"]["name"]
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID


# --- KServe ---------------------------------------------------------------------------------------


def test_serving_runtime_speaks_v2_on_both_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = _one(KSERVE, "servingruntime.yaml", "ServingRuntime")
    spec = runtime["spec"]
    assert spec["protocolVersions"] == ["v2", "grpc-v2"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    args = [a.replace("{{.Name}}", "minilm") for a in container["args"]]
    assert "--model_name={{.Name}}" in container["args"], "serve the model under the InferenceService name"
    cfg = serve_config(args, monkeypatch)
    assert str(cfg.model_path) == "/mnt/models" and cfg.config_path is None  # the storage initializer's path
    assert cfg.model_name == "minilm"
    assert (cfg.rest_bind_address, cfg.grpc_bind_address) == ("0.0.0.0", "0.0.0.0")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http1": cfg.rest_port, "h2c": cfg.port} == {"http1": 8000, "h2c": 9000}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8000}
    assert container["securityContext"]["runAsUser"] == IMAGE_UID
    assert spec["annotations"]["prometheus.kserve.io/port"] == str(cfg.rest_port)


def test_inference_service_uses_the_runtime() -> None:
    runtime = _one(KSERVE, "servingruntime.yaml", "ServingRuntime")
    isvc = _one(KSERVE, "inferenceservice.yaml", "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"] in [{"name": f["name"], "version": f["version"]}
                                    for f in runtime["spec"]["supportedModelFormats"]]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    pvc = _one(K8S, "pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    assert model["storageUri"] == f"pvc://{pvc}/{isvc['metadata']['name']}"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"


# --- GPU overlay (deploy/kubernetes/gpu) -------------------------------------------------------


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize applies it to these manifests: maps merge, containers merge by name,
    other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if key == "containers":
                by_name = {c["name"]: c for c in base.get(key, [])}
                out[key] = [_merge(by_name.get(c["name"], {}), c) for c in value]
            else:
                out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return copy.deepcopy(patch)


def _gpu_deployment() -> dict[str, Any]:
    (kustomization,) = _docs(K8S / "gpu" / "kustomization.yaml")
    assert kustomization["resources"] == ["../"]
    patches = [p["path"] for p in kustomization["patches"]]
    assert patches == ["deployment-gpu.yaml"]
    return _merge(_one(K8S, "deployment.yaml", "Deployment"), _one(K8S / "gpu", patches[0], "Deployment"))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_gpu_overlay_is_valid(version: str) -> None:
    kubernetes_validate.validate(_gpu_deployment(), version, strict=True)


def test_gpu_overlay_requests_an_intel_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _gpu_deployment()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for part in ("requests", "limits"):
        assert container["resources"][part]["gpu.intel.com/i915"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"  # the rest is the base's
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["supplementalGroups"]
    cfg = serve_config(container["args"], monkeypatch)
    assert cfg.target_device == "GPU" and str(cfg.config_path) == "/models/config.json"
    base_args = _one(K8S, "deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert container["args"][:len(base_args)] == base_args  # only --target_device GPU added
    (kustomization,) = _docs(K8S / "gpu" / "kustomization.yaml")
    assert kustomization["images"] == [{"name": "ovembed", "newName": "ovembed-gpu", "newTag": "0.1.0"}]
    text = (K8S / "gpu" / "deployment-gpu.yaml").read_text()
    assert "gpu.intel.com/xe" in text  # the xe-driver resource name is documented

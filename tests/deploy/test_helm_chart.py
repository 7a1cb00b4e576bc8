"""deploy/helm/ovembed: the chart linted and rendered by Helm itself, for several value sets (the
defaults and each example in deploy/helm/examples), and every rendered object validated offline
(kubernetes-validate for core kinds, crd_schemas.py for ScaledObject and ServiceMonitor); then the
wiring checked: container args parsed by ovembed's own CLI match the ports, the probes hit the health
routes, the autoscaler targets the Deployment, KEDA queries metrics ovembed really exports, the
ServiceMonitor scrapes /metrics on the http port, secrets are referenced and never inlined.

The renderer is Helm's Go engine: the ``helm`` binary when it is on PATH (``helm template``, ``helm
lint --strict``), else helm-python-sdk (Helm's Go SDK in a shared library, ``pip install
helm-python-sdk``). Without either the tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
pytest.importorskip("jsonschema")
pytest.importorskip("referencing")

from tests.deploy.container_args import export_config, serve_config  # noqa: E402
from tests.deploy.validation import K8S_VERSIONS, validate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ovembed"
EXAMPLES = ROOT / "deploy" / "helm" / "examples"
K8S = ROOT / "deploy" / "kubernetes"
RELEASE, NAMESPACE = "emb", "ml"
FULLNAME = "emb-ovembed"


class RenderError(Exception):
    """Helm refused the values or a template failed (the message is Helm's)."""


class _Binary:
    def __init__(self, path: str) -> None:
        self.path = path
        self.version = subprocess.run([path, "version", "--short"], capture_output=True, text=True,
                                      check=True).stdout.strip()

    def render(self, values: dict[str, Any], tmp: Path) -> str:
        values_file = tmp / "values.json"
        values_file.write_text(json.dumps(values))
        proc = subprocess.run([self.path, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                               "--values", str(values_file)], capture_output=True, text=True)
        if proc.returncode:
            raise RenderError(proc.stderr)
        return proc.stdout

    def lint(self, values: dict[str, Any], tmp: Path) -> list[str]:
        values_file = tmp / "values.json"
        values_file.write_text(json.dumps(values))
        proc = subprocess.run([self.path, "lint", "--strict", str(CHART), "--namespace", NAMESPACE,
                               "--values", str(values_file)], capture_output=True, text=True)
        return [] if proc.returncode == 0 else [proc.stdout + proc.stderr]


class _Sdk:
    def __init__(self) -> None:
        import helm_python

        self.helm = helm_python
        self.version = f"Helm SDK {helm_python.helm_sdk_version()} (helm-python-sdk {helm_python.helm_c_version()})"

    def render(self, values: dict[str, Any], tmp: Path) -> str:
        try:
            out = self.helm.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except self.helm.HelmError as exc:
            raise RenderError(str(exc)) from exc
        return "\n---\n".join(text for path, text in sorted(out.items()) if not path.endswith("NOTES.txt"))

    def lint(self, values: dict[str, Any], tmp: Path) -> list[str]:
        report = self.helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
        # severity 1 is INFO ("icon is recommended"); 2 WARNING and 3 ERROR fail `helm lint --strict`.
        return list(report["errors"]) + [f"{m['path']}: {m['error']}" for m in report["messages"]
                                         if m["severity"] >= 2]


def _renderer() -> _Binary | _Sdk:
    if helm := shutil.which("helm"):
        return _Binary(helm)
    try:
        return _Sdk()
    except ImportError:
        hint = "no Helm renderer: install the helm binary or `pip install helm-python-sdk`"
        if os.environ.get("CI"):
            pytest.fail(hint, pytrace=False)
        pytest.skip(hint, allow_module_level=True)


HELM = _renderer()


def _example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())  # type: ignore[no-any-return]


EXPORT_JOB = {"exportJob": {"enabled": True, "tokenSecret": {"name": "hf-token"}, "models": [
    {"sourceModel": "sentence-transformers/all-MiniLM-L6-v2", "name": "minilm"},
    {"sourceModel": "BAAI/bge-reranker-base", "name": "bge_reranker", "weightFormat": "fp16",
     "extraArgs": ["--task", "rerank"]},
]}}
# The value sets every generic test runs over: the defaults, each shipped example, and the export Job.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    **{p.stem: _example(p.stem) for p in sorted(EXAMPLES.glob("*.yaml"))},
    "export-job": EXPORT_JOB,
}


def _render(values: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(HELM.render(values, tmp)) if d]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("helm")
    return {name: _render(values, tmp) for name, values in VALUE_SETS.items()}


def _kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _the(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = _kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _the(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _all_objects(rendered: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, docs in rendered.items():
        for doc in docs:
            yield name, doc


# --- Helm itself -------------------------------------------------------------------------------------


def test_the_renderer_is_helm() -> None:
    assert re.search(r"v[34]\.\d+\.\d+", HELM.version), HELM.version


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_lints_clean(name: str, tmp_path: Path) -> None:
    assert HELM.lint(VALUE_SETS[name], tmp_path) == []


def test_value_sets_render_the_expected_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {name: sorted(d["kind"] for d in docs) for name, docs in rendered.items()}
    base = ["Deployment", "Pod", "PodDisruptionBudget", "Service"]  # Pod: the `helm test` hook
    assert kinds["default"] == sorted([*base, "PersistentVolumeClaim", "HorizontalPodAutoscaler"])
    assert kinds["keda"] == sorted([*base, "PersistentVolumeClaim", "ScaledObject", "ServiceMonitor"])
    assert kinds["hub"] == sorted([*base, "HorizontalPodAutoscaler"])  # no claim: an emptyDir per pod
    assert kinds["ingress"] == sorted([*base, "HorizontalPodAutoscaler", "Ingress"])  # existing claim
    assert kinds["gpu"] == sorted([*base, "PersistentVolumeClaim"])  # autoscaling none
    assert kinds["export-job"] == sorted([*base, "PersistentVolumeClaim", "HorizontalPodAutoscaler", "Job"])
    for name, doc in _all_objects(rendered):
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, (name, doc["kind"])
        assert doc["metadata"]["name"].startswith(FULLNAME), (name, doc["kind"])


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_objects_are_valid(rendered: dict[str, list[dict[str, Any]]], version: str) -> None:
    count = 0
    for name, doc in _all_objects(rendered):
        try:
            validate(doc, version)
        except Exception as exc:
            raise AssertionError(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}") from exc
        count += 1
    assert count >= 30


# --- the serving pods ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in VALUE_SETS if n != "export-job"])
def test_args_ports_and_probes_agree(name: str, rendered: dict[str, list[dict[str, Any]]],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered[name]
    pod = _the(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    cfg = serve_config(container["args"], monkeypatch)
    assert cfg.rest_bind_address == "0.0.0.0"
    assert cfg.grpc_bind_address == "0.0.0.0" or not cfg.port
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expected = {"http": cfg.rest_port, "grpc": cfg.port} if cfg.port else {"http": cfg.rest_port}
    assert ports == expected
    service = _the(docs, "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)

    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/v2/health/ready"
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/v2/health/live"
    assert all(ports[p["port"]] == cfg.rest_port for p in probes.values())

    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > cfg.graceful_timeout + pre_stop
    assert cfg.log_format == "json" and cfg.metrics_enable
    labels = _the(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _the(docs, "Deployment")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert _the(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_defaults_match_the_plain_manifests(rendered: dict[str, list[dict[str, Any]]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's defaults are deploy/kubernetes/deployment.yaml: same probes, resources, security
    contexts, volumes, grace period and serve settings (the two must not drift apart)."""
    plain = yaml.safe_load((K8S / "deployment.yaml").read_text())
    chart = _the(rendered["default"], "Deployment")
    plain_pod, chart_pod = plain["spec"]["template"]["spec"], chart["spec"]["template"]["spec"]
    for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert chart_pod[key] == plain_pod[key], key
    (plain_c,), chart_c = plain_pod["containers"], _container(rendered["default"])
    for key in ("startupProbe", "livenessProbe", "readinessProbe", "resources", "securityContext", "lifecycle",
                "ports", "volumeMounts"):
        assert chart_c[key] == plain_c[key], key
    assert chart["spec"]["strategy"] == plain["spec"]["strategy"]
    assert chart_c["image"] == plain_c["image"]
    assert ({v["name"]: set(v) for v in chart_pod["volumes"]} == {v["name"]: set(v) for v in plain_pod["volumes"]})
    assert vars(serve_config(chart_c["args"], monkeypatch)) == vars(serve_config(plain_c["args"], monkeypatch))
    assert chart["spec"]["template"]["metadata"]["annotations"] == plain["spec"]["template"]["metadata"]["annotations"]
    assert "replicas" not in chart["spec"], "the HPA owns the replica count"
    hpa = _the(rendered["default"], "HorizontalPodAutoscaler")
    plain_hpa = yaml.safe_load((K8S / "hpa.yaml").read_text())
    assert hpa["spec"]["metrics"] == plain_hpa["spec"]["metrics"]
    assert hpa["spec"]["behavior"] == plain_hpa["spec"]["behavior"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}


def test_repository_mode_mounts_the_claim_read_only(rendered: dict[str, list[dict[str, Any]]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name, claim in (("default", f"{FULLNAME}-models"), ("ingress", "embedding-models")):
        docs = rendered[name]
        pod = _the(docs, "Deployment")["spec"]["template"]["spec"]
        container = _container(docs)
        assert str(serve_config(container["args"], monkeypatch).config_path) == "/models/config.json"
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert mount["readOnly"] is True
        assert volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    pvc = _the(rendered["default"], "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == f"{FULLNAME}-models"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_serve_flags_map_renders_as_the_cli_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole numbers stay integers (Helm holds them as float64), floats keep their fraction, true gives
    the bare flag and false leaves it out; dashes in keys work; extraArgs come last."""
    values = {"models": {"source": "hub", "hub": {"sourceModel": "org/model"}},
              "serve": {"flags": {"max_body_bytes": 16777216, "max_wait_ms": 2.5, "cache_bytes": 268435456,
                                  "truncate": True, "trust_remote_code": False, "max-queue": 100,
                                  "allowed_origins": "https://a.example,https://b.example"},
                        "extraArgs": ["--log_level", "DEBUG"]}}
    args = _container(_render(values, tmp_path))["args"]
    assert "--trust_remote_code" not in args and "16777216" in args
    assert args[-2:] == ["--log_level", "DEBUG"]
    cfg = serve_config(args, monkeypatch)
    assert (cfg.max_body_bytes, cfg.max_wait_ms, cfg.cache_bytes) == (16777216, 2.5, 268435456)
    assert cfg.truncate is True and cfg.trust_remote_code is False
    assert cfg.max_queue == 100 and cfg.log_level == "DEBUG"
    assert cfg.allowed_origins == "https://a.example,https://b.example"


def test_grpc_off_drops_the_port(rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["ingress"]  # ports.grpc: 0
    assert serve_config(_container(docs)["args"], monkeypatch).port == 0
    assert [p["name"] for p in _the(docs, "Service")["spec"]["ports"]] == ["http"]


def test_gpu_values_request_an_intel_gpu(rendered: dict[str, list[dict[str, Any]]],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["gpu"]
    container = _container(docs)
    pod = _the(docs, "Deployment")["spec"]["template"]["spec"]
    for part in ("requests", "limits"):
        assert container["resources"][part]["gpu.intel.com/i915"] == "1"
    assert serve_config(container["args"], monkeypatch).target_device == "GPU"
    assert container["image"] == "ovembed-gpu:0.1.0"
    # The example adds supplementalGroups; the default non-root context stays (Helm merges maps).
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["supplementalGroups"] == [44, 110]
    assert pod["nodeSelector"] == {"intel.feature.node.kubernetes.io/gpu": "true"}
    assert _the(docs, "Deployment")["spec"]["replicas"] == 2


def test_helm_test_pod_checks_readiness_and_metrics_through_the_service(
        rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in ("default", "hub"):
        docs = rendered[name]
        pod = _the(docs, "Pod")
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        (container,) = pod["spec"]["containers"]
        assert container["image"] == _container(docs)["image"], "the test needs no other image"
        assert container["command"][:2] == ["python", "-c"]
        script = container["command"][2]
        compile(script, "test-connection", "exec")
        service = _the(docs, "Service")
        http = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
        assert f'base = "http://{service["metadata"]["name"]}:{http}"' in script
        assert '"/v2/health/ready"' in script and "ovembed_queue_depth" in script
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


# --- Hub pull mode and secrets -----------------------------------------------------------------------


def test_hub_pull_exports_into_an_empty_dir_with_the_token_from_a_secret(
        rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["hub"]
    pod = _the(docs, "Deployment")["spec"]["template"]["spec"]
    container = _container(docs)
    cfg = serve_config(container["args"], monkeypatch)
    assert cfg.source_model == "BAAI/bge-small-en-v1.5" and cfg.model_name == "bge-small"
    assert str(cfg.model_repository_path) == "/models" and cfg.config_path is None
    assert cfg.weight_format.value == "int8" and cfg.max_queue == 2048
    assert container["image"] == "ovembed:0.1.0-export", "pull mode exports: it needs the torch image"
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN",
                               "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}}
    assert env["HF_HOME"]["value"].startswith("/cache/")
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert not mounts["/models"].get("readOnly") and "emptyDir" in volumes[mounts["/models"]["name"]]
    assert "emptyDir" in volumes[mounts["/cache"]["name"]]
    assert cfg.hf_token is None, "the token must not be a flag (it would show in `ps` and the pod spec)"


def test_secrets_are_referenced_never_inlined(tmp_path: Path) -> None:
    token = "hf_NOT_A_REAL_TOKEN_0123456789"
    values = {**copy.deepcopy(EXPORT_JOB), "apiKey": {"secretName": "ovembed-api-key"}}
    text = HELM.render(values, tmp_path)
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert not _kind(docs, "Secret"), "the chart never creates a Secret from values"
    container = _container(docs)
    env = {e["name"]: e for e in container["env"]}
    assert env["API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ovembed-api-key", "key": "api-key"}
    for job_container in _the(docs, "Job")["spec"]["template"]["spec"]["initContainers"]:
        job_env = {e["name"]: e for e in job_container["env"]}
        assert job_env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN"}
    # There is no value that could carry a token into the output: a token given anywhere in values is
    # refused by the values schema.
    for bad in ({"models": {"hub": {"token": token}}}, {"apiKey": {"value": token}}, {"hfToken": token}):
        with pytest.raises(RenderError, match="additional propert"):
            HELM.render(bad, tmp_path)
    with pytest.raises(RenderError, match=re.escape("serve.flags.hf_token is set by the chart")):
        HELM.render({"serve": {"flags": {"hf_token": token}}}, tmp_path)


# --- export Jobs --------------------------------------------------------------------------------------


def test_export_job_fills_the_served_repository_one_model_at_a_time(
        rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["export-job"]
    claim = _the(docs, "PersistentVolumeClaim")["metadata"]["name"]
    served = serve_config(_container(docs)["args"], monkeypatch)
    job = _the(docs, "Job")
    assert re.fullmatch(rf"{FULLNAME}-export-[0-9a-f]{{8}}", job["metadata"]["name"])
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {}), \
        "a post-install hook would wait for pods that wait for the export (helm install --wait)"
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["restartPolicy"] == "Never"
    volumes = {v["name"]: v for v in pod["volumes"]}
    # Init containers run one after the other: config.json has a single writer at a time.
    exported = []
    for container in pod["initContainers"]:
        assert container["image"] == "ovembed:0.1.0-export"
        cfg = export_config(container["args"], monkeypatch)
        assert Path(cfg.model_repository_path) / "config.json" == served.config_path
        exported.append((container["name"], cfg.source_model, cfg.model_name, cfg.weight_format.value,
                         cfg.task.value))
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
        assert not mount.get("readOnly")
        assert volumes[mount["name"]]["persistentVolumeClaim"] == {"claimName": claim}
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN"}
    assert exported == [
        ("export-minilm", "sentence-transformers/all-MiniLM-L6-v2", "minilm", "int8", "embeddings"),
        ("export-bge-reranker", "BAAI/bge-reranker-base", "bge_reranker", "fp16", "rerank")]
    (summary,) = pod["containers"]
    assert summary["command"][-1] == str(served.config_path)


def test_export_job_name_changes_with_its_pod(tmp_path: Path) -> None:
    """A Job's pod template is immutable: a changed model list must give a new Job, the same list the same."""
    def name(values: dict[str, Any]) -> str:
        return str(_the(_render(values, tmp_path), "Job")["metadata"]["name"])

    changed = copy.deepcopy(EXPORT_JOB)
    changed["exportJob"]["models"][0]["weightFormat"] = "int4"
    assert name(EXPORT_JOB) == name(copy.deepcopy(EXPORT_JOB)) != name(changed)
    assert name(EXPORT_JOB) != name({**EXPORT_JOB, "exportImage": {"tag": "0.1.1-export"}})


def test_serving_pods_wait_for_the_repository(rendered: dict[str, list[dict[str, Any]]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh volume has no config.json until the export Job writes it; `ovembed serve` exits without
    it, so the pod waits in an init container instead of crash-looping (and backing off)."""
    docs = rendered["default"]
    pod = _the(docs, "Deployment")["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    script, path = wait["command"][2], wait["command"][3]
    compile(script, "wait-for-repository", "exec")
    assert "os.path.exists(sys.argv[1])" in script
    assert path == str(serve_config(_container(docs)["args"], monkeypatch).config_path)
    mount = next(m for m in wait["volumeMounts"] if m["mountPath"] == "/models")
    assert mount["readOnly"] is True and mount["name"] == "models"
    assert wait["image"] == _container(docs)["image"]
    assert "initContainers" not in _the(rendered["hub"], "Deployment")["spec"]["template"]["spec"]


# --- autoscaling and metrics --------------------------------------------------------------------------


def _exported_metric_names() -> set[str]:
    """Metric names in a real /metrics exposition of the app (fake engine), after one API request."""
    from starlette.testclient import TestClient

    from tests.serving.fakes import FakeRegistry, FakeServable, make_app

    with TestClient(make_app(FakeRegistry(FakeServable("m")))) as client:
        assert client.post("/v3/embeddings", json={"model": "m", "input": "hello"}).status_code == 200
        body = client.get("/metrics").text
    return set(re.findall(r"^(ovembed_\w+)[{ ]", body, re.MULTILINE))


def test_keda_scales_the_deployment_on_queue_depth(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["keda"]
    scaled = _the(docs, "ScaledObject")
    deployment = _the(docs, "Deployment")
    service = _the(docs, "Service")
    assert not _kind(docs, "HorizontalPodAutoscaler"), "KEDA owns the HPA; a second one would fight it"
    assert "replicas" not in deployment["spec"]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": deployment["metadata"]["name"]}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 12)
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 4}
    triggers = {t["name"]: t for t in spec["triggers"]}
    assert set(triggers) == {"queue-depth", "request-rate"}
    queue = triggers["queue-depth"]
    assert queue["type"] == "prometheus" and queue["metricType"] == "AverageValue"
    selector = f'namespace="{NAMESPACE}",service="{service["metadata"]["name"]}"'
    assert queue["metadata"]["query"] == f"sum(ovembed_queue_depth{{{selector}}})"
    assert queue["metadata"]["threshold"] == "128"
    assert queue["metadata"]["serverAddress"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    rate = triggers["request-rate"]["metadata"]
    assert rate["query"].startswith(f"sum(rate(ovembed_requests_total{{{selector},") and rate["threshold"] == "40"
    used = {m for t in triggers.values() for m in re.findall(r"ovembed_\w+", t["metadata"]["query"])}
    assert used == {"ovembed_queue_depth", "ovembed_requests_total"}
    assert used <= _exported_metric_names(), "KEDA would query a metric ovembed does not export"


def test_service_monitor_scrapes_metrics_on_the_http_port(rendered: dict[str, list[dict[str, Any]]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["keda"]
    monitor = _the(docs, "ServiceMonitor")
    service = _the(docs, "Service")
    container = _container(docs)
    cfg = serve_config(container["args"], monkeypatch)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    service_port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
    container_port = next(p for p in container["ports"] if p["name"] == service_port["targetPort"])
    assert container_port["containerPort"] == cfg.rest_port and cfg.metrics_enable


def test_metrics_off_turns_off_what_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _render({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, tmp_path)
    assert not _kind(docs, "ServiceMonitor")
    deployment = _the(docs, "Deployment")
    assert "prometheus.io/scrape" not in deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert serve_config(_container(docs)["args"], monkeypatch).metrics_enable is False
    with pytest.raises(RenderError, match=re.escape("set metrics.enabled")):
        HELM.render({"metrics": {"enabled": False}, "autoscaling": {"mode": "keda"}}, tmp_path)


def test_autoscaling_none_sets_replicas(tmp_path: Path) -> None:
    docs = _render({"autoscaling": {"mode": "none"}, "replicaCount": 3}, tmp_path)
    assert _the(docs, "Deployment")["spec"]["replicas"] == 3
    assert not _kind(docs, "HorizontalPodAutoscaler") and not _kind(docs, "ScaledObject")
    single = _render({"autoscaling": {"mode": "none"}, "replicaCount": 1, "podDisruptionBudget": {"enabled": False}},
                     tmp_path)
    assert _the(single, "Deployment")["spec"]["replicas"] == 1 and not _kind(single, "PodDisruptionBudget")


def test_ingress_routes_to_the_http_port(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["ingress"]
    ingress = _the(docs, "Ingress")
    service = _the(docs, "Service")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "embeddings.example.com"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert "http" in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["embeddings.example.com"], "secretName": "embeddings-tls"}]


# --- the chart refuses mistakes --------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "message"), [
    ({"autoscaling": {"mode": "kedа"}}, "autoscaling/mode"),  # a Cyrillic a: looks right, is not
    ({"autoscalling": {"mode": "keda"}}, "additional propert"),
    ({"ports": {"http": "8000"}}, "ports/http"),
    ({"models": {"source": "s3"}}, "models/source"),
    ({"metrics": {"serviceMonitor": {"interval": "15 seconds"}}}, "interval"),
    ({"exportJob": {"enabled": True, "models": [{"name": "x"}]}}, "sourceModel"),
])
def test_values_schema_refuses_mistakes(values: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=re.escape(message)):
        HELM.render(values, tmp_path)
    assert HELM.lint(values, tmp_path), "helm lint must report it too"


@pytest.mark.parametrize(("values", "message"), [
    ({"serve": {"flags": {"rest_port": 9999}}}, "serve.flags.rest_port is set by the chart"),
    ({"serve": {"flags": {"grpc-bind-address": "127.0.0.1"}}}, "is set by the chart"),
    ({"serve": {"flags": {"metrics_enable": False}}}, "is set by the chart"),
    ({"serve": {"flags": {"graceful_timeout": 60}}}, "terminationGracePeriodSeconds must exceed"),
    ({"models": {"source": "hub"}}, "models.hub.sourceModel is required"),
    ({"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}, "autoscaling.minReplicas (5) exceeds"),
    ({"autoscaling": {"mode": "none"}, "replicaCount": 1}, "podDisruptionBudget.minAvailable (1) must be below"),
    ({"autoscaling": {"minReplicas": 1}}, "podDisruptionBudget.minAvailable (1) must be below"),
    ({"models": {"source": "hub", "hub": {"sourceModel": "a/b"}}, "exportJob": EXPORT_JOB["exportJob"]},
     "needs models.source repository"),
])
def test_templates_refuse_contradictions(values: dict[str, Any], message: str, tmp_path: Path) -> None:
    """Checks across values, made by the templates (`fail`, `required`): `helm install` and `helm
    template` stop on them; `helm lint` does not (it renders in lint mode, where both only log)."""
    with pytest.raises(RenderError, match=re.escape(message)):
        HELM.render(values, tmp_path)


def test_chart_versions_follow_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    from ovembed import __version__

    assert chart["appVersion"] == __version__
    assert chart["kubeVersion"] == ">=1.30.0-0"  # preStop sleep, as the plain manifests

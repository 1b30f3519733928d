"""The Kubernetes manifests under deploy/k8s: valid against the API schema, and wired to what the processes
actually do (commands, ports, health paths, settings), so that a pod that applies cleanly also starts.

Schemas come bundled with kubernetes-validate (no network). The kustomizations are rendered with
`kubectl kustomize` where kubectl is installed; the file-level checks need nothing but Python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet

from tradewind.config import ConfigError, Settings, load_settings
from tradewind.secrets import load_secret_box

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
BITFINEX = K8S / "components" / "exchange-bitfinex"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
NAMESPACE = "tradewind"
Docs = tuple[dict[str, Any], ...]
# The oldest Kubernetes minor still widely run, and the newest whose schema the package bundles.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
KUSTOMIZATIONS = sorted(p.parent for p in K8S.rglob("kustomization.yaml"))
MANIFEST_FILES = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")

needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed"
)


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@cache
def render(directory: Path) -> tuple[dict[str, Any], ...]:
    """What `kubectl apply -k directory` would send to the cluster."""
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


@cache
def render_with_bitfinex(tmp: Path) -> tuple[dict[str, Any], ...]:
    """The base plus the optional Bitfinex component, through a throwaway overlay (kustomize wants
    relative paths)."""
    overlay = tmp / "with-bitfinex"
    overlay.mkdir(exist_ok=True)
    rel = os.path.relpath(K8S, overlay)
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{rel}/base]\ncomponents: [{rel}/components/exchange-bitfinex]\n"
    )
    return render(overlay)


def of_kind(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def main_container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    return container


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], ...]:
    """The base with every optional component: each Deployment there is."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (for `kubectl kustomize`) is not installed")
    return render_with_bitfinex(tmp_path_factory.mktemp("kustomize"))


# --- every file, on its own ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: str(p.relative_to(K8S)))
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_file_is_valid_kubernetes(path: Path, version: str) -> None:
    docs = load_all(path)
    assert docs, f"{path} holds no manifest"
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_each_kustomization_lists_every_manifest_beside_it(directory: Path) -> None:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    local = {r for r in kustomization.get("resources", []) if not r.startswith("..")}
    beside = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert local == beside
    assert all((directory / r).exists() for r in kustomization.get("resources", []))


def test_the_base_and_the_overlays_are_all_there() -> None:
    names = {str(p.relative_to(K8S)) for p in KUSTOMIZATIONS}
    assert {"base", "overlays/dev", "overlays/production", "components/exchange-bitfinex"} <= names


# --- what is applied ----------------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize(
    "directory", [p for p in KUSTOMIZATIONS if p != BITFINEX], ids=lambda p: str(p.relative_to(K8S))
)
def test_each_kustomization_renders_to_valid_kubernetes_in_one_namespace_with_one_image(
    directory: Path,
) -> None:
    docs = render(directory)
    for doc in docs:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    images = {c["image"] for w in of_kind(docs, "Deployment").values() for c in all_containers(w)}
    assert len(images) == 1, images
    (image,) = images
    assert image.rsplit(":", 1)[1] == VERSION, f"image tag {image} is not the package version {VERSION}"


def test_the_optional_bitfinex_component_renders_to_valid_kubernetes(everything: Docs) -> None:
    for doc in everything:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
    config = of_kind(everything, "ConfigMap")["tradewind-config"]["data"]
    assert config["TRADEWIND_EXCHANGES"].split(",") == ["sim", "bitfinex"]


def test_each_component_has_a_deployment_that_runs_its_command(everything: Docs) -> None:
    args = {name: main_container(d)["args"] for name, d in of_kind(everything, "Deployment").items()}
    assert args == {
        "tradewind-web": ["run", "web"],
        "tradewind-core": ["run", "core"],
        "tradewind-eval": ["run", "eval"],
        "tradewind-exchange-sim": ["run", "exchange", "--exchange", "sim"],
        "tradewind-exchange-bitfinex": ["run", "exchange", "--exchange", "bitfinex"],
        "tradewind-alerts": ["run", "alerts"],
    }


def test_probes_ask_the_health_endpoints_on_the_port_the_process_listens_on(everything: Docs) -> None:
    config = of_kind(everything, "ConfigMap")["tradewind-config"]["data"]
    web_port, metrics_port = int(config["TRADEWIND_PORT"]), int(config["TRADEWIND_METRICS_PORT"])
    for name, deployment in of_kind(everything, "Deployment").items():
        c = main_container(deployment)
        ready, alive = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
        if name == "tradewind-web":
            # Ready only with the database and NATS; alive without them (a restart would not fix them).
            assert (ready["path"], alive["path"]) == ("/api/health", "/metrics")
            expected = web_port
        else:
            assert (ready["path"], alive["path"]) == ("/readyz", "/healthz")
            expected = metrics_port
        assert port_number(c, ready["port"]) == port_number(c, alive["port"]) == expected, name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        # `kubectl logs/exec deploy/...` reach the component, not the migration init container.
        assert annotations["kubectl.kubernetes.io/default-container"] == c["name"]
        assert (
            annotations["prometheus.io/port"] == str(expected)
            and annotations["prometheus.io/path"] == "/metrics"
        )


def test_every_service_reaches_a_named_port_of_the_pods_it_selects(everything: Docs) -> None:
    deployments = of_kind(everything, "Deployment").values()
    for name, service in of_kind(everything, "Service").items():
        selector = service["spec"]["selector"]
        pods = [
            d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, f"Service {name} selects no pod"
        for port in service["spec"]["ports"]:
            for pod in pods:
                assert port["targetPort"] in {p["name"] for p in main_container(pod)["ports"]}, name


def test_pods_run_as_non_root_on_a_read_only_filesystem_without_capabilities(everything: Docs) -> None:
    for name, deployment in of_kind(everything, "Deployment").items():
        spec = pod_spec(deployment)
        assert (
            spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
        ), name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in all_containers(deployment):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, (
                name,
                c["name"],
            )
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], (
                name,
                c["name"],
            )
            assert {m["name"] for m in c["volumeMounts"]} <= scratch, "writable mounts are scratch space only"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, c["name"], kind)


def test_config_comes_from_the_configmap_and_secrets_from_the_secret(everything: Docs) -> None:
    assert "tradewind-config" in of_kind(everything, "ConfigMap")
    assert not of_kind(everything, "Secret"), (
        "an apply must never overwrite the real Secret with placeholders"
    )
    for name, deployment in of_kind(everything, "Deployment").items():
        for c in all_containers(deployment):
            sources = [(k, v["name"]) for e in c["envFrom"] for k, v in e.items()]
            assert sources == [("configMapRef", "tradewind-config"), ("secretRef", "tradewind-secrets")], (
                name,
                c["name"],
            )
            assert "env" not in c, f"{name}/{c['name']}: settings belong in the ConfigMap or the Secret"


def test_the_schema_is_upgraded_before_the_components_that_need_it_start(everything: Docs) -> None:
    for name, deployment in of_kind(everything, "Deployment").items():
        inits = [c["args"] for c in pod_spec(deployment).get("initContainers", [])]
        # eval reads candles lazily and must scale up quickly; everything else touches tables at start.
        assert inits == ([] if name == "tradewind-eval" else [["db", "upgrade"]]), name


def test_eval_scales_on_cpu_with_an_hpa_that_owns_its_replica_count(everything: Docs) -> None:
    (hpa,) = of_kind(everything, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tradewind-eval",
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    eval_ = of_kind(everything, "Deployment")["tradewind-eval"]
    assert "replicas" not in eval_["spec"], "a fixed count would be reset on every apply, fighting the HPA"
    assert main_container(eval_)["resources"]["requests"]["cpu"], "the HPA measures against the CPU request"
    pdbs = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in of_kind(everything, "PodDisruptionBudget").values()
    }
    assert {"eval", "core", "web"} <= pdbs


def test_core_keeps_one_leader_and_at_most_one_standby(everything: Docs) -> None:
    core = of_kind(everything, "Deployment")["tradewind-core"]
    assert core["spec"]["replicas"] in (1, 2)
    assert core["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    for name, exchange in of_kind(everything, "Deployment").items():
        if name.startswith("tradewind-exchange-"):
            assert exchange["spec"]["replicas"] == 1 and exchange["spec"]["strategy"]["type"] == "Recreate", (
                name
            )


# --- the settings the pods will get -------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("TRADEWIND_"):
            monkeypatch.delenv(key)
    return monkeypatch


def configmap_data() -> dict[str, str]:
    return of_kind(load_all(BASE / "configmap.yaml"), "ConfigMap")["tradewind-config"]["data"]


def test_the_configmap_and_a_real_secret_make_valid_distributed_settings(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for key, value in configmap_data().items():
        clean_env.setenv(key, value)
    clean_env.setenv("TRADEWIND_DATABASE_URL", "postgresql+asyncpg://tradewind:pw@db:5432/tradewind")
    clean_env.setenv("TRADEWIND_SECRET_KEY", Fernet.generate_key().decode())
    settings = load_settings()
    assert settings.mode == "distributed" and settings.host == "0.0.0.0"
    assert settings.nats_url and settings.nats_url.startswith("nats://")
    assert settings.db_url.startswith("postgresql+asyncpg://")
    assert load_secret_box(settings).decrypt(load_secret_box(settings).encrypt("k")) == "k"


def test_the_example_secret_holds_only_placeholders_that_the_platform_refuses(
    clean_env: pytest.MonkeyPatch,
) -> None:
    (secret,) = load_all(SECRET_EXAMPLE)
    data = secret["stringData"]
    assert set(data) == {"TRADEWIND_DATABASE_URL", "TRADEWIND_SECRET_KEY"}
    assert all("CHANGE-ME" in value for value in data.values())
    for key, value in {**configmap_data(), **data}.items():
        clean_env.setenv(key, value)
    with pytest.raises(ConfigError, match="TRADEWIND_SECRET_KEY"):
        load_secret_box(load_settings())


@needs_kubectl
def test_service_links_are_off_since_their_variables_would_be_refused_as_unknown_settings(
    clean_env: pytest.MonkeyPatch,
) -> None:
    docs = render(BASE)
    for key, value in of_kind(docs, "ConfigMap")["tradewind-config"]["data"].items():
        clean_env.setenv(key, value)
    # What the kubelet would inject for each Service of the namespace with service links on.
    for name in of_kind(docs, "Service"):
        clean_env.setenv(name.upper().replace("-", "_") + "_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings()
    for name, deployment in of_kind(docs, "Deployment").items():
        assert pod_spec(deployment)["enableServiceLinks"] is False, name


def test_the_configmap_names_only_settings_that_exist() -> None:
    known = {f"TRADEWIND_{field.upper()}" for field in Settings.model_fields}
    assert set(configmap_data()) <= known


def test_the_operators_guide_creates_the_secret_the_pods_read_and_walks_every_step() -> None:
    guide = (ROOT / "deploy" / "README.md").read_text()
    (secret,) = load_all(SECRET_EXAMPLE)
    create = guide[guide.index("create secret generic tradewind-secrets") :].split("\n\n", 1)[0]
    assert set(re.findall(r"--from-literal=(TRADEWIND_\w+)=", create)) == set(secret["stringData"])
    for step in (
        "helm upgrade --install nats nats/nats",
        "config.jetstream.enabled=true",
        "cloudnative-pg",
        "kubectl apply -k deploy/k8s/base",
        "tradewind user create",
        "--admin",
        "tradewind_tick_to_order_call_ms",
    ):
        assert step in guide, step

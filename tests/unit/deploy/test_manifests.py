"""The Kubernetes manifests validate against the API schema and wire what the processes expect."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

BASE = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "base"
DOCKERFILE = Path(__file__).resolve().parents[3] / "deploy" / "Dockerfile"
K8S = "1.33.0"


def documents() -> list[tuple[str, dict]]:
    return [(p.name, d) for p in sorted(BASE.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in yaml.safe_load_all(p.read_text()) if d]  # fmt: skip


@pytest.mark.parametrize(("name", "doc"), documents(), ids=lambda x: x if isinstance(x, str) else x["kind"])
def test_every_manifest_is_valid_kubernetes(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}


def deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == "Deployment"}


def test_each_component_has_a_deployment_with_its_command() -> None:
    args = {name: d["spec"]["template"]["spec"]["containers"][0]["args"] for name, d in deployments().items()}
    assert args == {
        "tradewind-web": ["run", "web"], "tradewind-core": ["run", "core"], "tradewind-eval": ["run", "eval"],
        "tradewind-exchange-sim": ["run", "exchange", "--exchange", "sim"],
    }  # fmt: skip


def test_probes_point_at_the_health_endpoints_and_config_comes_from_configmap_and_secret() -> None:
    for name, d in deployments().items():
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        port = c["ports"][0]["containerPort"]
        expected = ("/api/health", "/api/health") if name == "tradewind-web" else ("/healthz", "/readyz")
        assert (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]) == expected
        assert port == (8000 if name == "tradewind-web" else 9000)
        assert {e.get("configMapRef", e.get("secretRef"))["name"] for e in c["envFrom"]} == {"tradewind-config", "tradewind-secrets"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"] and c["image"] == "tradewind:0.1.0"


def test_eval_scales_with_an_hpa_and_the_secret_holds_only_placeholders() -> None:
    docs = {d["kind"]: d for _, d in documents()}
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "tradewind-eval"
    secret = docs["Secret"]["stringData"]
    assert all("CHANGE-ME" in v for v in secret.values())
    assert set(secret) == {"TRADEWIND_DATABASE_URL", "TRADEWIND_SECRET_KEY"}
    config = docs["ConfigMap"]["data"]
    assert config["TRADEWIND_MODE"] == "distributed" and "SECRET" not in " ".join(config)


def test_dockerfile_builds_the_frontend_then_runs_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 3 and stages[0].startswith("FROM node:") and "AS frontend" in stages[0]
    assert "npm run build" in text and "pip install --no-cache-dir ." in text
    assert "USER 10001" in text and 'ENTRYPOINT ["tradewind"]' in text
    assert "SECRET_KEY" not in text and "[dev]" not in text

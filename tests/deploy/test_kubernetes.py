"""The Kubernetes manifests: rendered by a real kustomize, checked against Kubernetes' schemas.

kubernetes-validate ships the schemas of every Kubernetes release in its wheel, so this
runs offline. kubectl (which embeds kustomize) is part of this machine kind's image; on
a machine without it the rendering test skips with its reason, and the base's manifests
are still validated file by file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ground.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"  # a release kubernetes-validate ships schemas for


def _kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed: the overlay is not rendered")
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _validate(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return _kustomize(K8S / "overlays" / "production")


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_base_manifests_validate_file_by_file() -> None:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    docs = [yaml.safe_load((K8S / "base" / name).read_text()) for name in kustomization["resources"]]
    assert {d["kind"] for d in docs} >= {
        "Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job"
    }
    _validate(docs)


def test_the_validator_rejects_a_wrong_manifest() -> None:
    doc = yaml.safe_load((K8S / "base" / "serve-pdb.yaml").read_text())
    doc["spec"]["maxUnavailabel"] = 1  # a typo strict validation must catch
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_production_overlay_renders_and_validates(production: list[dict[str, Any]]) -> None:
    _validate(production)
    assert {d["metadata"].get("namespace") for d in production if d["kind"] != "Namespace"} == {"livesales"}
    deployments = _by_kind(production, "Deployment")
    assert deployments["livesales-consume"]["spec"]["replicas"] == 6
    config = _by_kind(production, "ConfigMap")["livesales-config"]["data"]
    assert config["LIVESALES_CLICKHOUSE_CLUSTER"]
    images = {c["image"] for d in deployments.values() for c in d["spec"]["template"]["spec"]["containers"]}
    assert len(images) == 1 and not images.pop().endswith((":latest", "livesales"))


def test_every_pod_is_locked_down_probed_and_sized(production: list[dict[str, Any]]) -> None:
    workloads = [*_by_kind(production, "Deployment").values(), *_by_kind(production, "Job").values()]
    assert len(workloads) == 3
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert any(m["mountPath"] == "/tmp" and m["name"] in tmp for m in c["volumeMounts"])
            assert set(c["resources"]) == {"requests", "limits"}
            if w["kind"] == "Deployment":
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
                assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_selectors_point_at_the_pods(production: list[dict[str, Any]]) -> None:
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in _by_kind(production, "Deployment").items()}

    def selects(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if selector.items() <= labels.items()}

    for svc in _by_kind(production, "Service").values():
        assert len(selects(svc["spec"]["selector"])) == 1, svc["metadata"]["name"]
    for pdb in _by_kind(production, "PodDisruptionBudget").values():
        assert len(selects(pdb["spec"]["selector"]["matchLabels"])) == 1
    hpa = _by_kind(production, "HorizontalPodAutoscaler")["livesales-serve"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "livesales-serve"
    assert hpa["spec"]["minReplicas"] >= 2


def test_configured_settings_exist() -> None:
    known = {f"LIVESALES_{name.upper()}" for name in Settings.model_fields}
    for path in (K8S / "base" / "configmap.yaml", K8S / "overlays" / "production" / "configmap.yaml"):
        keys = set(yaml.safe_load(path.read_text())["data"])
        assert keys <= known, keys - known
    credentials = yaml.safe_load((K8S / "base" / "secret-credentials.yaml").read_text())["stringData"]
    assert set(credentials) <= known


def test_yamllint_passes_on_deploy() -> None:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(ROOT / "deploy" / ".yamllint.yaml"))
    files = sorted(p for p in (ROOT / "deploy").rglob("*") if p.suffix in (".yaml", ".yml"))
    assert len(files) >= 15
    problems = [f"{p.relative_to(ROOT)}:{e.line}: {e.message}" for p in files for e in linter.run(p.read_text(), config)]
    assert not problems


def _secret_refs(docs: list[dict[str, Any]]) -> set[str]:
    refs: set[str] = set()
    for d in docs:
        if d["kind"] not in ("Deployment", "Job"):
            continue
        pod = d["spec"]["template"]["spec"]
        refs |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for c in pod["containers"]:
            refs |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
    return refs


def test_production_never_ships_placeholder_secrets(production: list[dict[str, Any]]) -> None:
    # the README has the operator create exactly these three; applying must not overwrite them
    assert not _by_kind(production, "Secret")
    assert _secret_refs(production) == {"livesales-tokens", "livesales-credentials", "livesales-ca"}
    base = _kustomize(K8S / "base")
    assert _secret_refs(base) <= set(_by_kind(base, "Secret"))

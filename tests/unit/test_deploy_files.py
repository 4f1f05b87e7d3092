"""The deployment files agree with the code and with each other.

``make lint`` validates their syntax against the published schemas (compose specification,
Kubernetes, GitHub workflows); these tests check what a schema cannot: every metric a dashboard
or alert rule queries is one the server exports, every secret the compose file requires is
documented in ``.env.example``, every file it mounts exists, and images are pinned.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from regressops.config import Settings
from regressops.serving.app import create_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\b(regressops_[a-z0-9_]+)")
DRIFT_SCORE = "regressops_feature_drift_score"


def _queries() -> dict[str, set[str]]:
    """Metric names queried, per file: Grafana dashboards and Prometheus alert rules."""
    found: dict[str, set[str]] = {}
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        doc = json.loads(path.read_text())
        exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
        found[path.name] = {m for e in exprs for m in METRIC.findall(e)}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    found["alerts.yml"] = {m for e in exprs for m in METRIC.findall(e)}
    return found


def _names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def _exported(bundle: Path, home: Path) -> set[str]:
    settings = Settings(home=home, api_keys="deploy-test", serve={"drift_interval_seconds": 0.1})
    app = create_app(settings, model=str(bundle))
    with TestClient(app, headers={"X-API-Key": "deploy-test"}) as client:
        assert client.post("/stream", json={"data": [0.0] * 10}).status_code == 200
        rows = [[0.001 * (i % 7 - 3)] * 10 for i in range(60)]  # enough for the live drift
        assert client.post("/batch", json={"data": rows}).status_code == 200
        deadline = time.monotonic() + 30
        text = client.get("/metrics").text
        while DRIFT_SCORE not in text and time.monotonic() < deadline:
            time.sleep(0.05)
            text = client.get("/metrics").text
        assert client.post("/admin/reload").status_code == 200  # labels the reload counter
        return _names(text) | _names(client.get("/metrics").text)


def test_dashboards_and_alerts_query_only_metrics_the_server_exports(
    diabetes_bundle: Path, tmp_path: Path
) -> None:
    exported = _exported(diabetes_bundle, tmp_path)
    assert DRIFT_SCORE in exported
    queried = _queries()
    assert queried["serving.json"] and queried["drift.json"]
    for where, names in queried.items():
        unknown = names - exported
        assert not unknown, f"{where} queries metrics the server does not export: {unknown}"


def test_dashboards_use_the_provisioned_data_source() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    uids = {d["uid"] for d in provisioned["datasources"]}
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        doc = json.loads(path.read_text())
        used = {p["datasource"]["uid"] for p in doc["panels"]}
        assert used <= uids, path.name
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def test_every_required_secret_is_documented_and_none_is_committed() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert {"POSTGRES_PASSWORD", "REGRESSOPS_API_KEYS", "MINIO_ROOT_PASSWORD"} <= required
    example = (DEPLOY / ".env.example").read_text()
    documented = dict(
        line.split("=", 1) for line in example.splitlines() if "=" in line and line[0] != "#"
    )
    assert required <= set(documented), required - set(documented)
    for name in required:
        assert "CHANGE-ME" in documented[name], f"{name} has a real-looking value"
    ignored = (DEPLOY.parent / ".gitignore").read_text().splitlines()
    assert "deploy/.env" in ignored


def test_compose_images_are_pinned_and_mounts_exist() -> None:
    doc = _compose()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for name, service in doc["services"].items():
        image = service.get("image", "")
        if "build" in service:
            target = service["build"].get("target")
            assert target is None or f" AS {target}\n" in dockerfile, name
            continue
        tag = image.rpartition(":")[2]
        assert ":" in image and tag not in ("latest", "") and re.search(r"\d", tag), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_api_runs_replicated_read_only_behind_the_proxy() -> None:
    services = _compose()["services"]
    api = services["api"]
    assert api["deploy"]["replicas"] >= 2 and api["read_only"] is True
    assert "ports" not in api  # reached only through the proxy
    env = api["environment"]
    assert env["REGRESSOPS_SERVE__MODEL"].endswith("@champion")
    assert env["REGRESSOPS_SERVE__PREDICTION_LOG"].startswith("postgresql+psycopg://")
    assert float(env["REGRESSOPS_SERVE__RELOAD_POLL_SECONDS"].strip("${}").split(":-")[1]) > 0
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "server api:8000 resolve;" in nginx and "location = /metrics { return 404; }" in nginx
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = prometheus["scrape_configs"][0]
    assert job["dns_sd_configs"][0]["names"] == ["api"]  # every replica, not the proxy


@pytest.mark.parametrize("service", ["bootstrap", "retrain"])
def test_jobs_share_the_lake_volume_and_use_the_full_image(service: str) -> None:
    svc = _compose()["services"][service]
    assert svc["build"]["target"] == "full"
    assert "regressops-home:/var/lib/regressops" in svc["volumes"]


def _k8s(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "k8s" / "base" / name).read_text()))


def test_k8s_api_probes_security_and_secrets(diabetes_bundle: Path, tmp_path: Path) -> None:
    pod = _k8s("deployment.yaml")["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    assert api["resources"]["requests"] and api["resources"]["limits"]
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in api["env"] if "valueFrom" in e
    }
    assert secret_env["REGRESSOPS_API_KEYS"] == "regressops-secrets"
    # the probes answer without a key when keys are set, as the kubelet sends none
    app = create_app(Settings(home=tmp_path, api_keys="k"), model=str(diabetes_bundle))
    with TestClient(app) as client:
        for probe in ("readinessProbe", "livenessProbe"):
            assert client.get(api[probe]["httpGet"]["path"]).status_code == 200
        assert client.post("/stream", json={"data": [0.0] * 10}).status_code == 401
    config = (DEPLOY / "k8s" / "base" / "config.env").read_text()
    assert "REGRESSOPS_SERVE__RELOAD_POLL_SECONDS=" in config and "KEY" not in config


def test_k8s_retraining_never_runs_twice_at_once_and_training_is_a_template() -> None:
    retrain = _k8s("cronjob-retrain.yaml")["spec"]
    assert retrain["concurrencyPolicy"] == "Forbid"
    train = _k8s("cronjob-train.yaml")["spec"]
    assert train["suspend"] is True  # started by hand: kubectl create job --from=cronjob/...


# KServe's PredictorSpec is a Kubernetes PodSpec plus these component fields (v1beta1)
KSERVE_COMPONENT_FIELDS = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "labels", "annotations",
    "deploymentStrategy", "logger", "batcher", "autoScaling", "workerSpec", "storageUris", "model",
}  # fmt: skip


def test_kserve_predictor_is_a_valid_pod_spec() -> None:
    """No schema for the custom resource ships with kubernetes-validate: check its pod part."""
    import kubernetes_validate

    doc = yaml.safe_load((DEPLOY / "k8s" / "kserve" / "inferenceservice.yaml").read_text())
    assert doc["kind"] == "InferenceService" and doc["apiVersion"] == "serving.kserve.io/v1beta1"
    predictor = doc["spec"]["predictor"]
    pod_spec = {k: v for k, v in predictor.items() if k not in KSERVE_COMPONENT_FIELDS}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    (container,) = pod_spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "/mnt/models" in container["args"] and "8080" in container["args"]
    bad = {**pod, "spec": {**pod_spec, "containers": [{**container, "bogus": 1}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


# Read by the webhook and admin-key work (issue 12); a setting once that lands on main.
PENDING_SETTINGS = {"REGRESSOPS_ADMIN_KEYS"}


def _is_setting(variable: str) -> bool:
    """True when ``REGRESSOPS_A__B`` names a field of Settings (others are ignored silently)."""
    from pydantic import BaseModel

    model: type[BaseModel] = Settings
    parts = variable.removeprefix("REGRESSOPS_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
                return False
            model = field.annotation
    return True


def test_every_regressops_variable_the_deployments_set_is_a_setting() -> None:
    texts = [(DEPLOY / "compose.yaml").read_text(), (DEPLOY / "Dockerfile").read_text()]
    texts += [p.read_text() for p in (DEPLOY / "k8s").rglob("*") if p.suffix in (".yaml", ".env")]
    names = {n for text in texts for n in re.findall(r"\b(REGRESSOPS_[A-Z0-9_]+)", text)}
    assert {"REGRESSOPS_SERVE__RELOAD_POLL_SECONDS", "REGRESSOPS_SERVE__PREDICTION_LOG"} <= names
    unknown = sorted(n for n in names - PENDING_SETTINGS if not _is_setting(n))
    assert not unknown, f"not settings (a typo is ignored silently): {unknown}"
    assert not _is_setting("REGRESSOPS_SERVE__RELOAD_POLL_SECOND")

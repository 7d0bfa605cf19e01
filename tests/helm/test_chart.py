"""The chart lints, renders for every ci values file, and what it renders is valid and locked down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from services.feedback.settings import FeedbackSettings
from services.gateway.settings import GatewaySettings
from services.governance_api.settings import GovernanceSettings
from services.monitors.ledger.settings import LedgerSettings
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import ServiceSettings, env_var_name
from stack.provision import ProvisionSettings
from tests.helm.chart import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    containers,
    helm,
    of_kind,
    pod_specs,
    radguard_module,
    rendered,
)

IDS = [path.name for path in CI_VALUES]

#: Each process's settings class: every RADGUARD_* variable the chart sets must be one of its fields.
SETTINGS: dict[str, type[ServiceSettings]] = {
    "services.gateway": GatewaySettings,
    "services.feedback": FeedbackSettings,
    "services.monitors.ledger": LedgerSettings,
    "services.monitors.runner": MonitorRunnerSettings,
    "services.governance_api": GovernanceSettings,
    "services.dashboard": ServiceSettings,
    "stack.provision": ProvisionSettings,
}
#: Variables the chart sets that no settings class reads yet (see the README's "Deploy on Kubernetes"):
#: Kafka TLS/SASL for every process, the gateway's REST port and the dashboard's HTTP port.
NOT_YET_READ = {
    "RADGUARD_KAFKA_SECURITY_PROTOCOL",
    "RADGUARD_KAFKA_SSL_CAFILE",
    "RADGUARD_KAFKA_SSL_CERTFILE",
    "RADGUARD_KAFKA_SSL_KEYFILE",
    "RADGUARD_KAFKA_SASL_MECHANISM",
    "RADGUARD_KAFKA_SASL_USERNAME",
    "RADGUARD_KAFKA_SASL_PASSWORD",
    "RADGUARD_HTTP_PORT",
}
#: Variables whose value is a secret: they must come from a Secret, never be written into the manifest.
SECRET_NAME = re.compile(r"(_KEY|_PASSWORD|_DSN|_TOKEN|_USERNAME|SECRET)$")


def test_the_ci_values_files_are_the_three_the_chart_promises() -> None:
    assert IDS == ["cpu-only-values.yaml", "default-values.yaml", "external-tls-values.yaml"]


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_helm_lint_passes_with_each_ci_values_file(values: Path) -> None:
    result = helm("lint", "{chart}", "--strict", "--kube-version", KUBE_VERSION, "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_rendered_manifests_are_valid_kubernetes_objects(values: Path) -> None:
    docs = rendered(values)
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # Prometheus Operator CRDs: no bundled schema; their content is checked in test_observability
        # strict: an unknown field (a typo in a template) is an error too.
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        checked += 1
    assert checked >= 25


def test_the_validator_catches_a_misspelt_field() -> None:
    """Guard against a validator that accepts anything."""
    deployment = dict(of_kind(rendered(CI_VALUES[0]), "Deployment")[0])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_component_runs_the_command_it_should(values: Path) -> None:
    commands = {
        name: [radguard_module(c) for c in containers(spec, init=False)] for name, spec in pod_specs(rendered(values))
    }
    assert commands == {
        "Deployment/rg-radguard-gateway": ["services.gateway"],
        "Deployment/rg-radguard-feedback": ["services.feedback"],
        "Deployment/rg-radguard-ledger": ["services.monitors.ledger"],
        "Deployment/rg-radguard-monitor": ["services.monitors.runner"],
        "Deployment/rg-radguard-governance": ["services.governance_api"],
        "Deployment/rg-radguard-dashboard": ["services.dashboard"],
        "Deployment/rg-radguard-triton": [None],
        "Job/rg-radguard-migrations": ["stack.provision"],
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_container_has_resources_probes_and_a_locked_down_security_context(values: Path) -> None:
    for workload, spec in pod_specs(rendered(values)):
        assert spec["automountServiceAccountToken"] is False, workload
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        for container in containers(spec):
            where = f"{workload} container {container['name']}"
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["privileged"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
        # Long-running processes are probed; a Job's container and init containers run to completion.
        if not workload.startswith("Job/"):
            for container in containers(spec, init=False):
                where = f"{workload} container {container['name']}"
                assert "readinessProbe" in container, where
                assert "livenessProbe" in container, where


def test_radguard_services_use_native_grpc_probes_on_their_grpc_port() -> None:
    docs = rendered(CHART / "ci" / "default-values.yaml")
    probed = {}
    for workload, spec in pod_specs(docs):
        for container in containers(spec, init=False):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if "grpc" in ports and radguard_module(container):
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert container[probe]["grpc"] == {"port": ports["grpc"]}, f"{workload} {probe}"
                probed[workload] = ports["grpc"]
    assert probed == {
        "Deployment/rg-radguard-gateway": 19061,
        "Deployment/rg-radguard-feedback": 19062,
        "Deployment/rg-radguard-ledger": 19071,
        "Deployment/rg-radguard-monitor": 19072,
        "Deployment/rg-radguard-governance": 19063,
    }


def test_with_grpc_tls_the_probes_fall_back_to_tcp() -> None:
    """kubelet's gRPC probe speaks plaintext only: with TLS on it would fail, so the port is checked instead."""
    docs = rendered(CHART / "ci" / "external-tls-values.yaml")
    gateway = next(spec for name, spec in pod_specs(docs) if name == "Deployment/rg-radguard-gateway")
    container = containers(gateway, init=False)[0]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "grpc"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RADGUARD_TLS_CERT_FILE"] == "/etc/radguard/tls/tls.crt"
    assert env["RADGUARD_TLS_REQUIRE_CLIENT_CERT"] == "true"


def _triton(values: Path) -> dict[str, Any]:
    return next(spec for name, spec in pod_specs(rendered(values)) if name == "Deployment/rg-radguard-triton")


@pytest.mark.parametrize("values", ["default-values.yaml", "external-tls-values.yaml"])
def test_triton_requests_a_gpu_on_gpu_nodes(values: str) -> None:
    spec = _triton(CHART / "ci" / values)
    resources = containers(spec, init=False)[0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == 1
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    triton = containers(spec, init=False)[0]
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert "--allow-gpu-metrics=true" in triton["args"]


def test_cpu_only_triton_requests_no_gpu_and_mounts_the_model_claim() -> None:
    spec = _triton(CHART / "ci" / "cpu-only-values.yaml")
    triton = containers(spec, init=False)[0]
    assert "nvidia.com/gpu" not in triton["resources"]["requests"]
    assert "nvidia.com/gpu" not in triton["resources"]["limits"]
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert "initContainers" not in spec
    volume = next(v for v in spec["volumes"] if v["name"] == "model-repo")
    assert volume["persistentVolumeClaim"] == {"claimName": "radguard-model-repo", "readOnly": True}


def test_by_default_the_model_repository_is_copied_from_the_image_by_an_init_container() -> None:
    spec = _triton(CHART / "ci" / "default-values.yaml")
    (init,) = spec["initContainers"]
    assert init["image"] == "registry.hospital.example/radguard/radguard:0.1.0"
    assert init["command"] == ["sh", "-c", "cp -R /app/model_repo/. /models-out/"]
    assert next(v for v in spec["volumes"] if v["name"] == "model-repo")["emptyDir"] == {"sizeLimit": "2Gi"}


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_network_policies_open_only_the_four_client_facing_services_to_other_namespaces(values: Path) -> None:
    policies = {
        doc["metadata"]["name"].removeprefix("rg-radguard-"): doc for doc in of_kind(rendered(values), "NetworkPolicy")
    }
    assert set(policies) == {"gateway", "feedback", "ledger", "monitor", "governance", "dashboard", "triton"}
    open_to_others: dict[str, set[Any]] = {}
    for component, policy in policies.items():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for rule in policy["spec"]["ingress"]:
            peers = rule["from"]
            only_own_pods = all("podSelector" in peer and "namespaceSelector" not in peer for peer in peers)
            ports = {p["port"] for p in rule.get("ports", [])}
            if only_own_pods or ports == {"metrics"}:
                continue
            open_to_others.setdefault(component, set()).update(ports)
    assert open_to_others == {
        "gateway": {19061, 8081},
        "feedback": {19062},
        "governance": {19063},
        "dashboard": {8080},
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_pod_has_its_own_service_account_without_an_api_token(values: Path) -> None:
    docs = rendered(values)
    accounts = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "ServiceAccount")}
    for workload, spec in pod_specs(docs):
        account = accounts[spec["serviceAccountName"]]
        assert account["automountServiceAccountToken"] is False, workload
    assert len(accounts) == 8


def test_gateway_has_an_hpa_and_pdbs_keep_a_replica_up() -> None:
    docs = rendered(CHART / "ci" / "default-values.yaml")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rg-radguard-gateway"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    gateway = next(doc for doc in of_kind(docs, "Deployment") if doc["metadata"]["name"] == "rg-radguard-gateway")
    assert "replicas" not in gateway["spec"]  # the HPA owns it
    pdbs = {doc["metadata"]["name"]: doc["spec"]["minAvailable"] for doc in of_kind(docs, "PodDisruptionBudget")}
    assert pdbs == {"rg-radguard-gateway": 1, "rg-radguard-feedback": 1, "rg-radguard-ledger": 1}


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook() -> None:
    docs = rendered(CHART / "ci" / "default-values.yaml")
    (job,) = of_kind(docs, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RADGUARD_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {
        "name": "radguard-postgres",
        "key": "migrations-dsn",
    }
    assert env["RADGUARD_KAFKA_REPLICATION_FACTOR"]["value"] == "3"
    assert env["RADGUARD_PROVISION_GRANTS"]["value"] == "false"
    # Its ServiceAccount is a hook too, so it exists before the Job.
    account = next(d for d in of_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "rg-radguard-migrations")
    assert account["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


def _env_of(container: dict[str, Any]) -> list[dict[str, Any]]:
    return list(container.get("env", []))


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_variable_the_chart_sets_is_a_setting_the_process_reads(values: Path) -> None:
    for workload, spec in pod_specs(rendered(values)):
        for container in containers(spec, init=False):
            module = radguard_module(container)
            if module is None:
                continue
            settings = SETTINGS[module]
            known = {env_var_name(settings, field) for field in settings.model_fields}
            unknown = {e["name"] for e in _env_of(container)} - known - NOT_YET_READ
            assert not unknown, f"{workload} sets variables {module} does not read: {sorted(unknown)}"


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_no_secret_value_is_written_into_env_or_a_config_map(values: Path) -> None:
    docs = rendered(values)
    for workload, spec in pod_specs(docs):
        for container in containers(spec):
            for entry in _env_of(container):
                if SECRET_NAME.search(entry["name"]):
                    assert "value" not in entry, f"{workload}: {entry['name']} is written in plain text"
                    assert "secretKeyRef" in entry["valueFrom"], f"{workload}: {entry['name']} not from a Secret"
    assert not of_kind(docs, "Secret"), "the chart reads Secrets the hospital creates; it renders none"
    for config_map in of_kind(docs, "ConfigMap"):
        text = str(config_map.get("data", {}))
        for needle in ("postgresql://", "password", "BEGIN PRIVATE KEY", "pseudonym-key"):
            assert needle not in text, f"{config_map['metadata']['name']} holds {needle!r}"


def test_secret_looking_extra_env_is_refused_by_the_schema() -> None:
    from tests.helm.chart import template

    result = template(
        [CHART / "ci" / "default-values.yaml"], ["common.extraEnv.RADGUARD_PSEUDONYM_KEY=abcdefabcdefabcdef"]
    )
    assert result.returncode != 0
    assert "invalid propertyName 'RADGUARD_PSEUDONYM_KEY'" in result.stderr


def test_external_kafka_sasl_credentials_come_from_their_secret() -> None:
    docs = rendered(CHART / "ci" / "external-tls-values.yaml")
    ledger = next(spec for name, spec in pod_specs(docs) if name == "Deployment/rg-radguard-ledger")
    env = {e["name"]: e for e in containers(ledger, init=False)[0]["env"]}
    assert env["RADGUARD_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["RADGUARD_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "radguard-kafka-sasl",
        "key": "password",
    }
    assert env["RADGUARD_KAFKA_SSL_CAFILE"]["value"] == "/etc/radguard/kafka-tls/ca.crt"
    assert env["RADGUARD_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability.svc:4317"
    assert env["RADGUARD_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]["name"] == "radguard-postgres-managed"


def _notes(tmp_path: Path, values: str) -> str:
    """NOTES.txt rendered as ``helm install`` prints it (``helm template`` leaves it out: render it via tpl)."""
    import shutil

    import yaml

    from tests.helm.chart import template

    chart = tmp_path / "radguard"
    shutil.copytree(CHART, chart)
    (chart / "files" / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |-\n"
        '{{ tpl (.Files.Get "files/notes.txt") . | indent 4 }}\n'
    )
    result = template([CHART / "ci" / values], chart=chart)
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["metadata"]["name"] == "notes"]
    return str(docs[0]["data"]["notes"])


def test_notes_name_the_endpoints_and_what_is_off(tmp_path: Path) -> None:
    notes = _notes(tmp_path, "cpu-only-values.yaml")
    assert "gateway (gRPC)    rg-radguard-gateway:19061" in notes
    assert "dashboard (HTTP)  rg-radguard-dashboard:8080" in notes
    assert "Kafka topics on kafka.data.svc:9092" in notes
    assert "Triton runs without a GPU" in notes
    assert "Alerts are off" in notes
    assert "Alerts are off" not in _notes(tmp_path / "tls", "external-tls-values.yaml")

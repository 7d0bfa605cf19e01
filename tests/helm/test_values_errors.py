"""Wrong values and a broken chart fail with a message that names the key or the template at fault."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helm.chart import CHART, KUBE_VERSION, helm, template

DEFAULT = CHART / "ci" / "default-values.yaml"


def _fails_naming(sets: list[str], *needles: str, values: tuple[Path, ...] = (DEFAULT,)) -> str:
    result = template(values, sets)
    assert result.returncode != 0, f"rendered although it should not: {sets}"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("setting", "where", "problem"),
    [
        ("gateway.replicas=two", "/gateway/replicas", "got string, want integer"),
        ("gateway.grpcPort=70000", "/gateway/grpcPort", "maximum"),
        ("triton.gpu.enabled=yes-please", "/triton/gpu/enabled", "want boolean"),
        ("kafka.replicationFactor=0", "/kafka/replicationFactor", "minimum"),
        ("modelRepository.source=s3", "/modelRepository/source", "value must be one of"),
        ("otel.traceSampleRatio=2", "/otel/traceSampleRatio", "maximum"),
        ("common.logLevel=verbose", "/common/logLevel", "value must be one of"),
        ("kafka.bootstrapServers=kafka", "/kafka/bootstrapServers", "does not match pattern"),
    ],
)
def test_a_value_of_the_wrong_type_or_range_is_refused_naming_its_key(setting: str, where: str, problem: str) -> None:
    _fails_naming([setting], f"at '{where}'", problem)


@pytest.mark.parametrize(
    ("setting", "where", "key"),
    [
        ("gateway.replica=2", "/gateway", "replica"),
        ("gatway.replicas=2", "", "gatway"),
        ("kafka.tls.enable=true", "/kafka/tls", "enable"),
        ("triton.gpus=2", "/triton", "gpus"),
        ("secrets.pseudonymKey.value=abc", "/secrets/pseudonymKey", "value"),
        ("networkPolicy.enable=false", "/networkPolicy", "enable"),
    ],
)
def test_an_unknown_key_is_refused_naming_it(setting: str, where: str, key: str) -> None:
    _fails_naming([setting], f"at '{where}'", f"additional properties '{key}' not allowed")


def test_a_wrong_values_file_is_refused_naming_every_bad_key(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-values.yaml"
    wrong.write_text("kafka:\n  bootstrapServers: kafka:9092\ngateway:\n  replicas: '3'\n  autoscale: true\n")
    _fails_naming([], "at '/gateway/replicas'", "additional properties 'autoscale' not allowed", values=(wrong,))


def test_lint_reports_a_wrong_values_file_too(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-values.yaml"
    wrong.write_text("kafka:\n  bootstrapServers: kafka:9092\nledger:\n  metricsPort: metrics\n")
    result = helm("lint", "{chart}", "--kube-version", KUBE_VERSION, "-f", str(wrong))
    assert result.returncode != 0
    assert "at '/ledger/metricsPort': got string, want integer" in result.stdout + result.stderr


def test_a_missing_kafka_address_is_named() -> None:
    result = template([], [])
    assert result.returncode != 0
    assert "kafka.bootstrapServers must be set" in result.stderr


def test_a_required_secret_name_is_named_when_its_feature_is_on() -> None:
    _fails_naming(["kafka.sasl.enabled=true"], "kafka.sasl.secretName must be set when kafka.sasl.enabled")
    _fails_naming(["modelRepository.source=pvc"], "modelRepository.pvc.claimName must be set")


@pytest.fixture
def broken_chart(tmp_path: Path) -> Path:
    chart = tmp_path / "radguard"
    shutil.copytree(CHART, chart)
    ledger = chart / "templates" / "ledger.yaml"
    # An unclosed action, as a slip while editing would leave it.
    ledger.write_text(ledger.read_text().replace("{{ .Values.ledger.replicas }}", "{{ .Values.ledger.replicas "))
    return chart


def test_a_broken_template_fails_lint_and_template_naming_the_file(broken_chart: Path) -> None:
    lint = helm("lint", "{chart}", "--kube-version", KUBE_VERSION, "-f", str(DEFAULT), chart=broken_chart)
    assert lint.returncode != 0
    assert "templates/ledger.yaml" in lint.stdout + lint.stderr
    rendered = template([DEFAULT], chart=broken_chart)
    assert rendered.returncode != 0
    assert "templates/ledger.yaml" in rendered.stderr


def test_a_template_that_renders_an_invalid_object_is_caught_by_validation(tmp_path: Path) -> None:
    import kubernetes_validate
    import yaml

    chart = tmp_path / "radguard"
    shutil.copytree(CHART, chart)
    pdb = chart / "templates" / "pdb.yaml"
    pdb.write_text(pdb.read_text().replace("minAvailable:", "minAvaliable:"))
    result = template([DEFAULT], chart=chart)
    assert result.returncode == 0  # helm itself does not know the Kubernetes schemas
    docs = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "PodDisruptionBudget"]
    with pytest.raises(kubernetes_validate.ValidationError, match="minAvaliable"):
        kubernetes_validate.validate(docs[0], KUBE_VERSION, strict=True)

"""Finding → protobuf event and → JSON statistics; specs from files; targets from settings; the CLI table."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.cli.monitor_commands import findings_table
from services.monitors.calibration.spec import CalibrationSpec
from services.monitors.core.findings import Finding, MonitorKind, Severity, Statistic
from services.monitors.core.window import LabelMaturity
from services.monitors.drift.spec import DriftSpec
from services.monitors.runner.adapters.findings_kafka import finding_to_proto
from services.monitors.runner.adapters.findings_pg import statistics_json
from services.monitors.runner.app import targets_of
from services.monitors.runner.handlers import MonitorTarget
from services.monitors.runner.ports import IssuedFinding, StoredFinding
from services.monitors.runner.settings import MonitorRunnerSettings
from services.monitors.runner.specs import load_specs

START, END, ISSUED = (datetime(2025, 1, 6, h, tzinfo=UTC) for h in (8, 16, 17))
KS = Statistic(
    name="ks_statistic",
    value=0.31,
    test="kolmogorov-smirnov",
    p_value=1e-9,
    p_value_adjusted=2e-8,
    adjustment="holm",
    subgroup="site=site-B",
    feature="intensity.mean",
    limit=0.05,
    severity=Severity.BREACH,
    n=340,
)
ECE = Statistic(name="ece", value=0.04, test="bootstrap-basic", ci_low=0.02, ci_high=0.06, ci_level=0.95)


def _issued(statistics: tuple[Statistic, ...] = (KS, ECE)) -> IssuedFinding:
    finding = Finding(
        kind=MonitorKind.DRIFT,
        model_name="chest_nodule",
        model_version="3",
        arm="canary",
        start=START,
        end=END,
        maturity=LabelMaturity(labelled=120, total=1000),
        severity=Severity.BREACH,
        summary="drift: intensity.mean at site-B",
        statistics=statistics,
        spec_ref="chest-drift@2",
        report_uri="/reports/x.html",
    )
    return IssuedFinding("01890a5d-ac96-774b-bcce-b302099a8057", ISSUED, finding)


def test_a_finding_becomes_the_events_v1_message_field_by_field() -> None:
    event = events_pb2.Finding.FromString(finding_to_proto(_issued(), "monitor-runner/h1").SerializeToString())
    assert (event.meta.schema_version, event.meta.event_id, event.meta.producer) == (
        1,
        "01890a5d-ac96-774b-bcce-b302099a8057",
        "monitor-runner/h1",
    )
    assert event.meta.event_time.ToDatetime(tzinfo=UTC) == ISSUED
    assert event.finding_id == event.meta.event_id
    assert (event.kind, event.arm, event.severity) == (
        events_pb2.MONITOR_KIND_DRIFT,
        common_pb2.ARM_CANARY,
        events_pb2.SEVERITY_BREACH,
    )
    assert (event.model.model_name, event.model.model_version) == ("chest_nodule", "3")
    assert (event.window.count, event.window.labelled_count) == (1000, 120)
    assert (event.window.start.ToDatetime(tzinfo=UTC), event.window.end.ToDatetime(tzinfo=UTC)) == (START, END)
    assert (event.summary, event.spec_ref, event.report_uri) == (
        "drift: intensity.mean at site-B",
        "chest-drift@2",
        "/reports/x.html",
    )
    ks, ece = event.statistics
    assert (ks.name, ks.value, ks.test, ks.adjustment, ks.subgroup, ks.feature, ks.breached) == (
        "ks_statistic",
        0.31,
        "kolmogorov-smirnov",
        "holm",
        "site=site-B",
        "intensity.mean",
        True,
    )
    assert (ks.p_value, ks.p_value_adjusted, ks.limit) == (1e-9, 2e-8, 0.05)
    assert not ks.HasField("ci_low")
    assert (ece.ci_low, ece.ci_high, ece.ci_level, ece.breached) == (0.02, 0.06, 0.95, False)
    assert not ece.HasField("p_value") and not ece.HasField("limit")


def test_nan_statistics_are_absent_in_the_event_and_null_in_json() -> None:
    odd = Statistic(name="auroc", value=0.8, ci_low=math.nan, ci_high=0.9, p_value=math.nan)
    event = finding_to_proto(_issued((odd,)), "p")
    assert not event.statistics[0].HasField("ci_low") and not event.statistics[0].HasField("p_value")
    assert event.statistics[0].ci_high == 0.9
    (row,) = json.loads(statistics_json((odd,)))
    assert (row["name"], row["ci_low"], row["ci_high"], row["p_value"], row["severity"]) == (
        "auroc",
        None,
        0.9,
        None,
        "info",
    )


def test_statistics_json_keeps_every_field() -> None:
    rows = json.loads(statistics_json((KS,)))
    assert rows == [
        {
            "name": "ks_statistic",
            "value": 0.31,
            "test": "kolmogorov-smirnov",
            "ci_low": None,
            "ci_high": None,
            "ci_level": None,
            "p_value": 1e-9,
            "p_value_adjusted": 2e-8,
            "adjustment": "holm",
            "subgroup": "site=site-B",
            "feature": "intensity.mean",
            "limit": 0.05,
            "severity": "breach",
            "n": 340,
            "note": "",
            "secondary": False,
            "sequential": False,
        }
    ]


def test_specs_come_from_yaml_files_and_default_otherwise(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text(DriftSpec(name="board-drift", revision=4, min_window=50).to_yaml())
    specs = load_specs([MonitorKind.DRIFT, MonitorKind.CALIBRATION], "chest_nodule", tmp_path)
    assert list(specs) == [MonitorKind.DRIFT, MonitorKind.CALIBRATION]
    assert isinstance(specs[MonitorKind.DRIFT], DriftSpec)
    assert (specs[MonitorKind.DRIFT].ref, specs[MonitorKind.DRIFT].min_window) == ("board-drift@4", 50)
    assert specs[MonitorKind.CALIBRATION] == CalibrationSpec(name="chest_nodule-calibration")


def test_targets_are_every_version_and_arm_from_the_environment() -> None:
    settings = MonitorRunnerSettings(monitor_model="m", monitor_versions=("3", "4"), monitor_arms=("stable", "canary"))
    assert targets_of(settings) == [
        MonitorTarget("m", "3", "stable"),
        MonitorTarget("m", "3", "canary"),
        MonitorTarget("m", "4", "stable"),
        MonitorTarget("m", "4", "canary"),
    ]


def test_the_findings_table_shows_one_row_per_finding() -> None:
    row = StoredFinding(
        "id-1", MonitorKind.BIAS, "chest_nodule", "3", "canary", Severity.WARNING, "gap 0.12", 800, 200, "", ISSUED
    )
    console = Console(width=200, record=True)
    console.print(findings_table([row]))
    text = console.export_text()
    assert "2025-01-06 17:00:00" in text
    assert "bias" in text and "warning" in text and "200/800" in text and "gap 0.12" in text

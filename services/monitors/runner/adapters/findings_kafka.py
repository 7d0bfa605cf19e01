"""Findings on the ``radguard.findings.v1`` topic: domain Finding → ``events_pb2.Finding``, keyed by model name."""

from __future__ import annotations

import math
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.monitors.core.findings import MonitorKind, Severity, Statistic
from services.monitors.runner.ports import IssuedFinding
from services.runtime.kafka import AsyncKafkaProducer

SCHEMA_VERSION = 1
_ARMS = {
    "stable": common_pb2.ARM_STABLE,
    "canary": common_pb2.ARM_CANARY,
    "shadow": common_pb2.ARM_SHADOW,
}
_KINDS = {
    MonitorKind.DRIFT: events_pb2.MONITOR_KIND_DRIFT,
    MonitorKind.CALIBRATION: events_pb2.MONITOR_KIND_CALIBRATION,
    MonitorKind.BIAS: events_pb2.MONITOR_KIND_BIAS,
    MonitorKind.PERFORMANCE: events_pb2.MONITOR_KIND_PERFORMANCE,
}
_SEVERITIES = {
    Severity.INFO: events_pb2.SEVERITY_INFO,
    Severity.WARNING: events_pb2.SEVERITY_WARNING,
    Severity.BREACH: events_pb2.SEVERITY_BREACH,
}


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def statistic_to_proto(statistic: Statistic) -> events_pb2.Statistic:
    """The protobuf form of one statistic (``breached`` stands for a breach severity)."""
    message = events_pb2.Statistic(
        name=statistic.name,
        value=statistic.value,
        test=statistic.test,
        adjustment=statistic.adjustment,
        subgroup=statistic.subgroup,
        feature=statistic.feature,
        breached=statistic.breached,
    )
    for field in ("ci_low", "ci_high", "ci_level", "p_value", "p_value_adjusted", "limit"):
        value = getattr(statistic, field)
        # Absent rather than NaN: an optional field says "none" better than a number that is not one.
        if value is not None and not math.isnan(value):
            setattr(message, field, value)
    return message


def finding_to_proto(issued: IssuedFinding, producer: str) -> events_pb2.Finding:
    """The ``radguard.events.v1.Finding`` event of an issued finding.

    Args:
        issued: The finding with its id and issue time.
        producer: ``<service>/<instance>`` for the envelope.
    """
    finding = issued.finding
    window = events_pb2.Window(count=finding.maturity.total, labelled_count=finding.maturity.labelled)
    if finding.start is not None:
        window.start.CopyFrom(_timestamp(finding.start))
    if finding.end is not None:
        window.end.CopyFrom(_timestamp(finding.end))
    return events_pb2.Finding(
        meta=common_pb2.EventMeta(
            schema_version=SCHEMA_VERSION,
            event_id=issued.finding_id,
            event_time=_timestamp(issued.issued_at),
            producer=producer,
        ),
        finding_id=issued.finding_id,
        kind=_KINDS[finding.kind],
        model=common_pb2.ModelRef(model_name=finding.model_name, model_version=finding.model_version),
        arm=_ARMS.get(finding.arm, common_pb2.ARM_UNSPECIFIED),
        window=window,
        severity=_SEVERITIES[finding.severity],
        summary=finding.summary,
        statistics=[statistic_to_proto(statistic) for statistic in finding.statistics],
        report_uri=finding.report_uri,
        spec_ref=finding.spec_ref,
    )


class KafkaFindingPublisher:
    """FindingPublisher over a started AsyncKafkaProducer."""

    def __init__(self, producer: AsyncKafkaProducer, topic: str, producer_name: str) -> None:
        """Create the adapter.

        Args:
            producer: A started producer (the caller owns its lifecycle).
            topic: The findings topic.
            producer_name: ``<service>/<instance>`` stamped on every event.
        """
        self._producer = producer
        self._topic = topic
        self._producer_name = producer_name

    async def publish(self, issued: IssuedFinding) -> None:
        event = finding_to_proto(issued, self._producer_name)
        await self._producer.send(self._topic, event.SerializeToString(), key=issued.finding.model_name.encode("utf-8"))

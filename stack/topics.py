"""The Kafka topics radguard's data plane uses, with their partitioning and retention."""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel.topics import AUDIT_TOPIC, FINDINGS_TOPIC, PREDICTIONS_TOPIC, READS_TOPIC, ROUTES_TOPIC


@dataclass(frozen=True)
class TopicSpec:
    """A topic the stack creates if it is missing."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


#: Predictions are keyed by study so one study's events stay ordered; 6 partitions let the
#: monitors' consumer groups scale to a few members. Routes are a compacted table keyed by
#: model name: the latest route per model is what every gateway applies.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(PREDICTIONS_TOPIC, 6),
    TopicSpec(READS_TOPIC, 6),
    TopicSpec(FINDINGS_TOPIC, 3),
    TopicSpec(ROUTES_TOPIC, 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}),
    TopicSpec(AUDIT_TOPIC, 1, {"retention.ms": "-1"}),
)

"""The Kafka names every process must agree on: the topics and the ledger writer's consumer group.

Plain text, imported by the services' settings, the stack's topic list and the CLI alike (the CLI imports this
module rather than a settings module, so a command does not load pydantic to learn a name).
"""

from __future__ import annotations

#: Every prediction the gateway answers (and each shadow prediction), keyed by study.
PREDICTIONS_TOPIC = "radguard.predictions.v1"
#: Radiologists' reads of predictions (overrides and confirmations), keyed by prediction.
READS_TOPIC = "radguard.reviews.v1"
#: The monitors' findings, keyed by model.
FINDINGS_TOPIC = "radguard.findings.v1"
#: Route tables (compacted), keyed by model; governance is their only writer.
ROUTES_TOPIC = "radguard.routes.v1"
#: The audit trail's entries, kept for ever.
AUDIT_TOPIC = "radguard.audit.v1"
#: The consumer group of the ledger writer (predictions and reads into PostgreSQL).
LEDGER_GROUP = "radguard-ledger"

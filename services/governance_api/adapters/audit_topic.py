"""The audit topic as a witness: checkpoint events out, and the whole topic read back for verification.

Entries reach the topic through the outbox relay; signed checkpoints are published here directly (never
through the database they vouch for), keyed ``checkpoint``. :func:`read_audit_topic` reads every
partition from its first to its current last offset and returns what it holds, decoded.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC

from google.protobuf.message import DecodeError
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from governance.domain.checkpoint import Checkpoint
from governance.domain.model import AuditRecord, Role
from radguard.common.v1 import common_pb2
from radguard.events.v1 import events_pb2
from services.governance_api.adapters.convert import datetime_from, role_to_proto, timestamp
from services.runtime.errors import Unavailable
from services.runtime.kafka import OutgoingRecord, new_consumer
from services.runtime.kafka_security import KafkaSecuritySettings

CHECKPOINT_KEY = b"checkpoint"
_ROLE_FROM_PROTO = {role_to_proto(role): role for role in Role}


def checkpoint_to_proto(checkpoint: Checkpoint) -> events_pb2.AuditCheckpoint:
    """The AuditCheckpoint message of a checkpoint."""
    message = events_pb2.AuditCheckpoint(
        seq=checkpoint.seq,
        head_hash=checkpoint.head_hash,
        entry_count=checkpoint.entry_count,
        key_id=checkpoint.key_id,
        algorithm=checkpoint.algorithm,
        signature=checkpoint.signature,
    )
    stamp = timestamp(checkpoint.time)
    assert stamp is not None
    message.time.CopyFrom(stamp)
    return message


def checkpoint_from_proto(message: events_pb2.AuditCheckpoint) -> Checkpoint:
    """The checkpoint an AuditCheckpoint message carries."""
    return Checkpoint(
        seq=message.seq,
        head_hash=message.head_hash,
        entry_count=message.entry_count,
        time=datetime_from(message.time),
        key_id=message.key_id,
        algorithm=message.algorithm,
        signature=message.signature,
    )


def audit_from_proto(entry: events_pb2.AuditEntry) -> AuditRecord:
    """The audit record an AuditEntry carries.

    Raises:
        KeyError: The entry's role is not one governance knows.
    """
    return AuditRecord(
        seq=entry.seq,
        prev_hash=entry.prev_hash,
        hash=entry.hash,
        actor=entry.actor,
        actor_role=_ROLE_FROM_PROTO[entry.actor_role],
        action=entry.action,
        subject=entry.subject,
        before_json=entry.before_json,
        after_json=entry.after_json,
        time=datetime_from(entry.time).astimezone(UTC),
        request_id=entry.request_id,
    )


def checkpoint_record(checkpoint: Checkpoint, topic: str, producer: str) -> OutgoingRecord:
    """The Kafka record publishing ``checkpoint`` on the audit topic."""
    meta = common_pb2.EventMeta(schema_version=1, event_id=str(uuid.uuid4()), producer=producer)
    event = events_pb2.AuditEvent(meta=meta, checkpoint=checkpoint_to_proto(checkpoint))
    event.meta.event_time.CopyFrom(event.checkpoint.time)
    return OutgoingRecord(topic, event.SerializeToString(), CHECKPOINT_KEY)


@dataclass
class AuditTopicContents:
    """What the audit topic holds: entries, checkpoints, and how many records could not be decoded."""

    entries: list[AuditRecord] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    undecodable: int = 0

    def add(self, value: bytes) -> None:
        """Decode one record's value into an entry or a checkpoint."""
        try:
            event = events_pb2.AuditEvent.FromString(value)
        except DecodeError:
            self.undecodable += 1
            return
        body = event.WhichOneof("body")
        if body == "entry" and event.entry.actor_role in _ROLE_FROM_PROTO:
            self.entries.append(audit_from_proto(event.entry))
        elif body == "checkpoint":
            self.checkpoints.append(checkpoint_from_proto(event.checkpoint))
        else:
            self.undecodable += 1


def read_audit_topic(
    bootstrap: str, topic: str, *, timeout_s: float = 30.0, security: KafkaSecuritySettings | None = None
) -> AuditTopicContents:
    """Read ``topic`` from the beginning up to the end offsets it has now (blocking; for the CLI).

    Args:
        bootstrap: Kafka bootstrap servers.
        topic: The audit topic.
        timeout_s: Longest time the whole read may take.
        security: Kafka TLS/SASL settings; plaintext when None.

    Raises:
        Unavailable: Kafka cannot be reached, the topic does not exist, or the read did not finish in time.
    """
    deadline = time.monotonic() + timeout_s
    contents = AuditTopicContents()
    try:
        consumer = new_consumer(
            security,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="radguard-audit-verify",
            request_timeout_ms=int(timeout_s * 1000) + 1000,
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as error:
        raise Unavailable("kafka", f"cannot reach Kafka at {bootstrap}: {error}") from None
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise Unavailable("kafka", f"topic {topic!r} has no partitions (does it exist?)")
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise Unavailable("kafka", f"reading {topic!r} took longer than {timeout_s:g}s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.value is not None and record.offset < ends[TopicPartition(topic, record.partition)]:
                        contents.add(record.value)
    except KafkaError as error:
        raise Unavailable("kafka", f"reading {topic!r}: {type(error).__name__}: {error}") from None
    finally:
        consumer.close()
    return contents

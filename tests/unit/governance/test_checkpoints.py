"""Signed audit checkpoints and the comparison of the stored chain with its witnesses (pure, no servers).

A chain is built with the real hash function; each test tampers with the stored copy the way a database
superuser could — an edit, a consistent rewrite of every later hash, a truncation — and checks that the
checkpoints and the published copies name the first bad seq.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.adapters.memory import ManualClock, MemoryStore
from governance.domain.audit import GENESIS, AuditHead, content_of, entry_hash
from governance.domain.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    checkpoint_problem,
    extension_verdict,
    load_checkpoint_signer,
    load_public_key,
    write_checkpoint_key,
)
from governance.domain.model import Actor, AuditRecord, Role
from governance.domain.witness import compare_with_witnesses
from services.governance_api.adapters.audit_topic import (
    AuditTopicContents,
    audit_from_proto,
    checkpoint_from_proto,
    checkpoint_record,
    checkpoint_to_proto,
)
from services.governance_api.adapters.checkpoint_file import CheckpointFile
from services.governance_api.adapters.convert import audit_to_proto
from services.governance_api.checkpoints import CheckpointPublisher, CheckpointTuning
from services.runtime.kafka import OutgoingRecord, RecordMetadata

T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
SIGNER = CheckpointSigner(Ed25519PrivateKey.generate())
KEYS = {SIGNER.key_id: SIGNER.public_key}


def chain(n: int, tag: str = "a") -> list[AuditRecord]:
    """n linked entries; ``tag`` makes a different log."""
    records: list[AuditRecord] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        draft = AuditRecord(
            seq, prev, "", f"actor-{tag}", Role.OPERATOR, "version.register", f"model/m/{seq}", "", "{}",
            T0 + timedelta(seconds=seq), f"req-{tag}-{seq}",
        )  # fmt: skip
        record = dataclasses.replace(draft, hash=entry_hash(prev, content_of(draft)))
        records.append(record)
        prev = record.hash
    return records


def rewrite(records: list[AuditRecord], seq: int, subject: str) -> list[AuditRecord]:
    """Edit entry ``seq`` and recompute every later hash: a chain consistent with itself."""
    out = records[: seq - 1]
    prev = out[-1].hash if out else GENESIS
    for record in records[seq - 1 :]:
        changed = dataclasses.replace(record, prev_hash=prev, subject=subject if record.seq == seq else record.subject)
        changed = dataclasses.replace(changed, hash=entry_hash(prev, content_of(changed)))
        out.append(changed)
        prev = changed.hash
    return out


def checkpoints_of(records: list[AuditRecord], every: int) -> list[tuple[str, Checkpoint]]:
    return [
        ("audit topic", SIGNER.sign(r.seq, r.hash, r.seq, r.time))
        for r in records
        if r.seq % every == 0 or r.seq == len(records)
    ]


def test_signature_covers_every_field_and_names_the_key() -> None:
    checkpoint = SIGNER.sign(7, "ab" * 32, 7, T0)
    assert checkpoint.key_id.startswith("ed25519:") and len(checkpoint.key_id) == 8 + 16
    assert checkpoint_problem(checkpoint, KEYS) is None
    for change in ({"seq": 8, "entry_count": 8}, {"head_hash": "cd" * 32}, {"time": T0 + timedelta(microseconds=1)}):
        assert checkpoint_problem(dataclasses.replace(checkpoint, **change), KEYS) == (
            "signature does not verify (forged or altered)"
        )
    other = CheckpointSigner(Ed25519PrivateKey.generate())
    forged = dataclasses.replace(other.sign(7, "ab" * 32, 7, T0), key_id=SIGNER.key_id)
    assert checkpoint_problem(forged, KEYS) == "signature does not verify (forged or altered)"
    assert "not a verifying key" in str(checkpoint_problem(other.sign(7, "ab" * 32, 7, T0), KEYS))


def test_file_json_and_protobuf_forms_round_trip(tmp_path: Path) -> None:
    checkpoint = SIGNER.sign(3, "ef" * 32, 3, T0)
    file = CheckpointFile(tmp_path / "cp.jsonl")
    file.append(checkpoint)
    file.append(SIGNER.sign(4, "01" * 32, 4, T0))
    with (tmp_path / "cp.jsonl").open("a") as handle:
        handle.write("{not json\n")
    contents = file.read()
    assert contents.checkpoints[0] == checkpoint and contents.bad_lines == [3]
    assert checkpoint_from_proto(checkpoint_to_proto(checkpoint)) == checkpoint
    topic = AuditTopicContents()
    topic.add(checkpoint_record(checkpoint, "t", "p").value)
    topic.add(b"\xff\xff")
    assert topic.checkpoints == [checkpoint] and topic.undecodable == 1
    record = chain(2)[1]
    assert audit_from_proto(audit_to_proto(record)) == record


def test_key_files(tmp_path: Path) -> None:
    signer = write_checkpoint_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert load_checkpoint_signer(tmp_path / "k.pem").key_id == signer.key_id
    assert (
        checkpoint_problem(signer.sign(1, "00" * 32, 1, T0), {signer.key_id: load_public_key(tmp_path / "k.pub.pem")})
        is None
    )
    with pytest.raises(FileExistsError):
        write_checkpoint_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")


def test_untampered_chain_agrees_with_every_witness() -> None:
    records = chain(12)
    other_log = chain(5, "b")  # another instance's entries on a shared development topic
    report = compare_with_witnesses(records, checkpoints_of(records, 4), records + records[:3] + other_log, KEYS)
    assert report.ok, report.disagreements
    assert (report.checkpoints_verified, report.published_compared, report.first_bad_seq) == (3, 12, None)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 20), data=st.data())
def test_consistent_rewrite_is_named_by_the_published_copies_and_caught_by_checkpoints(
    n: int, data: st.DataObject
) -> None:
    records = chain(n)
    bad = data.draw(st.integers(1, n))
    every = data.draw(st.integers(1, n))
    forged = rewrite(records, bad, "model/m/forged")
    report = compare_with_witnesses(forged, checkpoints_of(records, every), records, KEYS)
    by_source = {d.source: d for d in report.disagreements}
    assert by_source["audit topic"].seq == bad
    assert "subject" in by_source["audit topic"].reason
    # The checkpoints bracket it: the first checkpoint at or after the bad entry does not match.
    agreed = max((s for s in range(every, n + 1, every) if s < bad), default=0)
    assert by_source["checkpoints"].seq == agreed + 1
    assert report.first_bad_seq == bad
    # Without the topic, the checkpoints alone still refuse the rewritten chain.
    assert not compare_with_witnesses(forged, checkpoints_of(records, every), [], KEYS).ok


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 20), data=st.data())
def test_truncation_with_the_head_moved_back_names_the_first_missing_seq(n: int, data: st.DataObject) -> None:
    records = chain(n)
    keep = data.draw(st.integers(0, n - 1))
    report = compare_with_witnesses(records[:keep], checkpoints_of(records, n), records, KEYS)
    reasons = {d.source: d for d in report.disagreements}
    assert reasons["checkpoints"].seq == keep + 1 and "were removed" in reasons["checkpoints"].reason
    assert reasons["audit topic"].seq == keep + 1 and "truncated" in reasons["audit topic"].reason


def test_edited_entry_without_rehashing() -> None:
    records = chain(9)
    edited = list(records)
    edited[4] = dataclasses.replace(records[4], actor="mallory")
    report = compare_with_witnesses(edited, checkpoints_of(records, 3), records, KEYS)
    assert report.first_bad_seq == 5
    assert {d.source for d in report.disagreements} == {"checkpoints", "audit topic"}
    assert next(d for d in report.disagreements if d.source == "audit topic").reason.startswith(
        "entry 5 differs from its published copy in actor"
    )


def test_forged_checkpoint_is_rejected_and_foreign_ones_ignored() -> None:
    records = chain(6)
    good = checkpoints_of(records, 3)
    forged = dataclasses.replace(good[-1][1], head_hash="ee" * 32)  # signature no longer covers it
    foreign = CheckpointSigner(Ed25519PrivateKey.generate()).sign(6, "ee" * 32, 6, T0)
    report = compare_with_witnesses(records, [*good, ("audit topic", forged), ("audit topic", foreign)], records, KEYS)
    assert [(d.source, d.seq) for d in report.disagreements] == [("checkpoints", None)]
    assert report.disagreements[0].reason == (
        "checkpoint on the audit topic for seq 6 rejected: signature does not verify (forged or altered)"
    )
    assert any("signed by other keys" in note for note in report.notes)
    # A checkpoint by an unknown key in the service's own file is not ignored.
    from_file = compare_with_witnesses(records, [("checkpoint file", foreign)], records, KEYS)
    assert not from_file.ok


def test_extension_check_refuses_a_history_changed_under_the_last_checkpoint() -> None:
    records = chain(10)
    last = SIGNER.sign(6, records[5].hash, 6, T0)
    head = AuditHead(10, records[-1].hash)
    assert extension_verdict(last, records[5:], head).ok
    assert extension_verdict(None, records, head).ok
    forged = rewrite(records, 3, "x")
    verdict = extension_verdict(last, forged[5:], AuditHead(10, forged[-1].hash))
    assert (verdict.ok, verdict.first_bad_seq) == (False, 6)
    assert (
        extension_verdict(last, records[:4], AuditHead(4, records[3].hash)).reason == "head moved back from seq 6 to 4"
    )


def test_publisher_signs_files_publishes_and_refuses_after_tampering(tmp_path: Path) -> None:
    async def run() -> None:
        store = MemoryStore()
        sent: list[OutgoingRecord] = []

        async def send_many(batch: object) -> list[RecordMetadata | Exception]:
            sent.extend(batch)  # type: ignore[arg-type]
            return [RecordMetadata("audit", 0, len(sent))] * len(batch)  # type: ignore[arg-type]

        file = CheckpointFile(tmp_path / "cp.jsonl")
        clock = ManualClock(T0)
        tuning = CheckpointTuning(interval_s=60, every=3)
        publisher = CheckpointPublisher(
            store, SIGNER, file, send_many, topic="audit", producer="p", clock=clock, tuning=tuning
        )
        actor = Actor("olga", Role.OPERATOR)
        for i in range(2):
            async with store.transaction() as tx:
                await tx.append_audit(actor, "x.y", f"s/{i}", None, {"i": i}, f"r{i}", T0)
        assert await publisher.round(due=False) is None  # 2 < every
        first = await publisher.round()
        assert first is not None and (first.seq, first.entry_count) == (2, 2)
        assert file.read().checkpoints == [first]
        assert [r.key for r in sent] == [b"checkpoint"]
        assert await publisher.round() is None  # head did not move
        # Rebuilt from its file, a restarted publisher continues from the same checkpoint.
        again = CheckpointPublisher(
            store, SIGNER, file, send_many, topic="audit", producer="p", clock=clock, tuning=tuning
        )
        assert again.last == first
        store.audit_rows[0] = dataclasses.replace(store.audit_rows[0], actor="mallory")
        store.audit_rows[1] = dataclasses.replace(store.audit_rows[1], hash="0" * 64)
        async with store.transaction() as tx:
            await tx.append_audit(actor, "x.y", "s/2", None, {}, "r2", T0)
        assert await again.round() is None
        assert again.refused == "entry 2 no longer has the last checkpoint's hash"
        assert len(file.read().checkpoints) == 1

    asyncio.run(run())

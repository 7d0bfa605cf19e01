"""Compare the audit chain stored in the database with its witnesses outside it.

Two witnesses: the signed checkpoints of the head (:mod:`governance.domain.checkpoint`) and the entries the
outbox relay published on the audit topic. The stored chain is recomputed from the entries' content alone
(their stored hashes are not trusted), so a chain rewritten consistently — an entry edited and every later
hash and the head recomputed — still fails to reach the checkpoints' heads and differs from the published
copies; a truncated one is shorter than the latest checkpoint and than what was published.

The audit topic may carry entries of other logs (test instances sharing a development broker): published
entries count as this log's only when they hash-link to an anchor of it — a verified checkpoint's head, the
stored head, or the only first entry on the topic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from governance.domain.audit import GENESIS, content_of, entry_hash
from governance.domain.checkpoint import Checkpoint, checkpoint_problem
from governance.domain.model import AuditRecord

#: Where a checkpoint was read: the audit topic, or the service's local checkpoint file.
CheckpointSource = Literal["audit topic", "checkpoint file"]


@dataclass(frozen=True)
class Disagreement:
    """One thing that does not match.

    Attributes:
        source: The witness that disagrees: "checkpoints" (signed heads, from the topic or the file) or "audit
            topic" (published entries); the caller adds "database" for the stored chain's own check.
        seq: The first entry it shows to be bad; None when it does not name one (e.g. a forged checkpoint).
        reason: What disagrees, in words.
        exact: False when ``seq`` is only the first that may be bad (a checkpoint shows that some entry up to
            it changed, not which one).
    """

    source: str
    seq: int | None
    reason: str
    exact: bool = True


@dataclass(frozen=True)
class WitnessReport:
    """Outcome of :func:`compare_with_witnesses`."""

    entries: int
    checkpoints_verified: int
    latest_checkpoint: Checkpoint | None
    published_compared: int
    disagreements: tuple[Disagreement, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no witness disagrees."""
        return not self.disagreements

    @property
    def first_bad_seq(self) -> int | None:
        """The first bad seq: the lowest one a witness names exactly, else the lowest one that may be bad."""
        return first_bad_seq(self.disagreements)


def first_bad_seq(disagreements: Iterable[Disagreement]) -> int | None:
    """The lowest seq named exactly by one of ``disagreements``, else the lowest named at all."""
    named = [d for d in disagreements if d.seq is not None]
    exact = [d.seq for d in named if d.exact and d.seq is not None]
    if exact:
        return min(exact)
    return min((d.seq for d in named if d.seq is not None), default=None)


def _self_consistent(record: AuditRecord) -> bool:
    return entry_hash(record.prev_hash, content_of(record)) == record.hash


def _differing_fields(stored: AuditRecord, published: AuditRecord) -> list[str]:
    return [f.name for f in fields(AuditRecord) if getattr(stored, f.name) != getattr(published, f.name)]


def _seq_range(seqs: Sequence[int]) -> str:
    return f"seq {seqs[0]}" if len(seqs) == 1 else f"seqs {seqs[0]}..{seqs[-1]}"


class _Checkpoints:
    """Verifies checkpoints and compares the valid ones with the recomputed chain."""

    def __init__(self, public_keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.keys = public_keys
        self.valid: dict[tuple[int, str], Checkpoint] = {}
        self.disagreements: list[Disagreement] = []
        self.ignored = 0

    def admit(self, checkpoints: Iterable[tuple[CheckpointSource, Checkpoint]]) -> None:
        for source, checkpoint in checkpoints:
            problem = checkpoint_problem(checkpoint, self.keys)
            if problem is None:
                self.valid.setdefault((checkpoint.seq, checkpoint.head_hash), checkpoint)
            elif checkpoint.key_id not in self.keys and source == "audit topic":
                self.ignored += 1  # another log's checkpoint (another key): not evidence either way
            else:
                where = "on the audit topic" if source == "audit topic" else "in the checkpoint file"
                self.disagreements.append(
                    Disagreement(
                        "checkpoints", None, f"checkpoint {where} for seq {checkpoint.seq} rejected: {problem}"
                    )
                )

    def compare(self, recomputed: Mapping[int, str], last_seq: int) -> None:
        by_seq: dict[int, set[str]] = defaultdict(set)
        for seq, head in self.valid:
            by_seq[seq].add(head)
        for seq, heads in sorted(by_seq.items()):
            if len(heads) > 1:
                self.disagreements.append(
                    Disagreement("checkpoints", seq, f"{len(heads)} validly signed checkpoints name different heads")
                )
        agreed = 0
        for (seq, head), checkpoint in sorted(self.valid.items()):
            if seq > last_seq:
                self.disagreements.append(
                    Disagreement(
                        "checkpoints",
                        last_seq + 1,
                        f"the database ends at seq {last_seq}, but a checkpoint signed "
                        f"{checkpoint.time.isoformat()} covers seq {seq}: entries {last_seq + 1}..{seq} were removed",
                    )
                )
                return
            if recomputed.get(seq) != head:
                self.disagreements.append(
                    Disagreement(
                        "checkpoints",
                        agreed + 1,
                        f"the chain recomputed from the database does not reach the head signed at seq {seq}: "
                        + (
                            f"entry {seq} was changed"
                            if agreed + 1 == seq
                            else f"an entry in {agreed + 1}..{seq} changed"
                        ),
                        exact=agreed + 1 == seq,
                    )
                )
                return
            agreed = seq


def _published_of_this_log(
    published: Sequence[AuditRecord], anchors: set[str], notes: list[str]
) -> dict[int, list[AuditRecord]]:
    """The published entries that hash-link to an anchor, by seq (several per seq: a fork)."""
    by_hash: dict[str, AuditRecord] = {}
    by_prev: dict[str, list[AuditRecord]] = defaultdict(list)
    for record in published:
        if record.hash in by_hash or not _self_consistent(record):
            continue
        by_hash[record.hash] = record
        by_prev[record.prev_hash].append(record)
    firsts = {r.hash for r in by_hash.values() if r.seq == 1 and r.prev_hash == GENESIS}
    if len(firsts) == 1:
        anchors = anchors | firsts
    found: dict[str, AuditRecord] = {}
    todo = [by_hash[a] for a in anchors if a in by_hash]
    while todo:
        record = todo.pop()
        if record.hash in found:
            continue
        found[record.hash] = record
        before = by_hash.get(record.prev_hash)
        if before is not None and before.seq == record.seq - 1:
            todo.append(before)
        todo += [after for after in by_prev.get(record.hash, []) if after.seq == record.seq + 1]
    if published and not found:
        notes.append("no published entry links to this log's checkpoints or head: nothing to compare on the topic")
    out: dict[int, list[AuditRecord]] = defaultdict(list)
    for record in found.values():
        out[record.seq].append(record)
    return out


def _compare_published(
    stored: Mapping[int, AuditRecord], ours: Mapping[int, list[AuditRecord]], last_seq: int, notes: list[str]
) -> tuple[int, list[Disagreement]]:
    out: list[Disagreement] = []
    differing: list[int] = []
    missing: list[int] = []
    compared = 0
    for seq in sorted(ours):
        copies = ours[seq]
        if len(copies) > 1:
            fork = f"the topic holds {len(copies)} different entries for seq {seq}"
            out.append(Disagreement("audit topic", seq, fork))
        record = stored.get(seq)
        if record is None:
            missing.append(seq)
            continue
        compared += 1
        if all(copy != record for copy in copies):
            differing.append(seq)
    if differing:
        first = differing[0]
        what = ", ".join(_differing_fields(stored[first], ours[first][0]))
        more = f" (and {len(differing) - 1} later entries)" if len(differing) > 1 else ""
        out.append(Disagreement("audit topic", first, f"entry {first} differs from its published copy in {what}{more}"))
    if missing:
        tail = " (the log was truncated)" if missing[-1] > last_seq else ""
        out.append(
            Disagreement(
                "audit topic", missing[0], f"{_seq_range(missing)} published but missing from the database{tail}"
            )
        )
    unpublished = sorted(set(stored) - set(ours))
    if unpublished:
        notes.append(f"{len(unpublished)} entries have no published copy to compare ({_seq_range(unpublished)})")
    return compared, out


def compare_with_witnesses(
    records: Sequence[AuditRecord],
    checkpoints: Iterable[tuple[CheckpointSource, Checkpoint]],
    published: Sequence[AuditRecord],
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    stored_head_hash: str | None = None,
) -> WitnessReport:
    """Check the stored chain against the signed checkpoints and the published entries.

    Args:
        records: Every stored entry, in seq order.
        checkpoints: Checkpoints read, each with where it was read.
        published: Entries read from the audit topic (repeats are harmless).
        public_keys: Verifying keys by key id; checkpoints by other keys on the topic are ignored.
        stored_head_hash: The head the database records, an extra anchor for the published entries.

    Returns:
        The report; its disagreements name the source and the first bad seq each one shows.
    """
    stored = {r.seq: r for r in records}
    last_seq = records[-1].seq if records else 0
    recomputed: dict[int, str] = {}
    running = GENESIS
    for record in records:
        running = entry_hash(running, content_of(record))
        recomputed[record.seq] = running
    notes: list[str] = []

    verified = _Checkpoints(public_keys)
    verified.admit(checkpoints)
    verified.compare(recomputed, last_seq)
    if verified.ignored:
        notes.append(f"{verified.ignored} checkpoints on the topic are signed by other keys (another log): ignored")
    latest = max(verified.valid.values(), key=lambda c: c.seq, default=None)
    if latest is None:
        notes.append("no signed checkpoint of this log was found: truncation and rewrites rely on the topic alone")
    elif last_seq > latest.seq:
        unsigned = last_seq - latest.seq
        notes.append(f"{unsigned} entries after the latest checkpoint (seq {latest.seq}) are not signed yet")

    anchors = {head for _, head in verified.valid}
    if stored_head_hash:
        anchors.add(stored_head_hash)
    if records:
        anchors.add(records[-1].hash)
    ours = _published_of_this_log(published, anchors, notes)
    compared, topic_disagreements = _compare_published(stored, ours, last_seq, notes)

    return WitnessReport(
        entries=len(records),
        checkpoints_verified=len(verified.valid),
        latest_checkpoint=latest,
        published_compared=compared,
        disagreements=tuple(verified.disagreements + topic_disagreements),
        notes=tuple(notes),
    )

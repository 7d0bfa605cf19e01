"""``radguard deadletter``: records no producer could deliver — list them, show one, send them again.

Three places hold dead letters:

* ``feedback``: rows of ``feedback_outbox`` the relay quarantined (``quarantined_at`` set);
* ``governance``: rows of ``gov_outbox`` the relay quarantined;
* ``gateway``: the gateway spool's quarantine folder, ``<spool>/deadletter/*.jsonl``, one JSON object per
  line: ``{"id", "topic", "key" (base64 or null), "value" (base64), "headers" ([[name, base64], ...]),
  "reason", "quarantined_at" (ISO-8601 UTC), "size"}``.

A dead letter's id names its source: ``feedback:17``, ``governance:4``, ``gateway:<id>``. ``replay`` sends
the chosen ones to their topic again; a replayed outbox row gets ``replayed_at`` (and ``published_at``
once Kafka acknowledged it), a replayed gateway record is appended to ``<spool>/deadletter/replayed.jsonl``.
What fails again is reported with the reason and stays where it is.

Heavy clients (asyncpg, Kafka, the governance converters) are imported only by the command that needs them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stack.processes import StackError

if TYPE_CHECKING:
    import asyncpg

    from services.runtime.kafka import OutgoingRecord
    from services.runtime.kafka_security import KafkaSecuritySettings

app = typer.Typer(help="Dead letters: records Kafka refused for good, from every producer.", no_args_is_help=True)
_out = Console()

SOURCES = ("feedback", "governance", "gateway")
#: The gateway's quarantine file of replayed records (not itself a dead-letter file).
REPLAYED_FILE = "replayed.jsonl"
#: Longest reason shown or stored for a failed replay.
MAX_REASON_CHARS = 200

_FEEDBACK_SQL = """
select id, topic, key, payload, headers, quarantine_reason, quarantined_at, replayed_at
from feedback_outbox where quarantined_at is not null order by id
"""
_GOVERNANCE_SQL = """
select id, kind, key, payload::text as payload, quarantine_reason, quarantined_at, replayed_at
from gov_outbox where quarantined_at is not null order by id
"""
_MARK_REPLAYED = {
    "feedback": "update feedback_outbox set replayed_at = now(), published_at = now() where id = $1",
    "governance": "update gov_outbox set replayed_at = now(), published_at = now() where id = $1",
}


@dataclass
class DeadLetter:
    """One dead letter, whatever its source.

    Attributes:
        id: ``<source>:<id within the source>``.
        source: feedback, governance or gateway.
        topic: Where it was going (for governance rows, the topic of its kind).
        size: Bytes of the value (or of the stored payload when it cannot be built).
        reason: Why it was set aside.
        quarantined_at: When.
        replayed_at: When it was sent again successfully, or None.
        record: The Kafka record to replay, or None when it cannot be built (``problem`` says why).
        problem: Why no record can be built.
        raw: The source's own fields, for ``show``.
    """

    id: str
    source: str
    topic: str
    size: int
    reason: str
    quarantined_at: str
    replayed_at: str | None = None
    record: OutgoingRecord | None = None
    problem: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _bounded(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


# --- sources ------------------------------------------------------------------------------------


async def _outbox_letters(pool: asyncpg.Pool, topics: tuple[str, str]) -> list[DeadLetter]:
    from services.runtime.kafka import OutgoingRecord

    letters: list[DeadLetter] = []
    for row in await pool.fetch(_FEEDBACK_SQL):
        headers = tuple((name, value.encode("ascii")) for name, value in json.loads(row["headers"]))
        letters.append(
            DeadLetter(
                id=f"feedback:{row['id']}",
                source="feedback",
                topic=row["topic"],
                size=len(row["payload"]),
                reason=row["quarantine_reason"] or "",
                quarantined_at=_time(row["quarantined_at"]) or "",
                replayed_at=_time(row["replayed_at"]),
                record=OutgoingRecord(row["topic"], row["payload"], row["key"], headers),
                raw={"outbox_id": row["id"], "headers": [name for name, _ in headers]},
            )
        )
    letters.extend(await _governance_letters(pool, topics))
    return letters


async def _governance_letters(pool: asyncpg.Pool, topics: tuple[str, str]) -> list[DeadLetter]:
    from services.governance_api.adapters.relay import MalformedOutboxRow, RelayTopics, outgoing_record

    relay_topics = RelayTopics(routes=topics[0], audit=topics[1])
    letters: list[DeadLetter] = []
    for row in await pool.fetch(_GOVERNANCE_SQL):
        record: OutgoingRecord | None = None
        problem: str | None = None
        try:
            record = outgoing_record(
                row["kind"], row["key"], json.loads(row["payload"]), relay_topics, "radguard-cli/deadletter"
            )
        except (MalformedOutboxRow, json.JSONDecodeError) as error:
            problem = _bounded(f"{type(error).__name__}: {error}")
        topic = relay_topics.routes if row["kind"] == "route" else relay_topics.audit
        letters.append(
            DeadLetter(
                id=f"governance:{row['id']}",
                source="governance",
                topic=topic,
                size=len(record.value) if record is not None else len(row["payload"]),
                reason=row["quarantine_reason"] or "",
                quarantined_at=_time(row["quarantined_at"]) or "",
                replayed_at=_time(row["replayed_at"]),
                record=record,
                problem=problem,
                raw={"outbox_id": row["id"], "kind": row["kind"]},
            )
        )
    return letters


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a crashed writer: nothing to replay there
            if isinstance(item, dict):
                yield item


def _b64(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not base64 text")
    return base64.b64decode(value, validate=True)


def gateway_letters(spool_dir: Path) -> list[DeadLetter]:
    """The gateway's dead letters under ``<spool_dir>/deadletter`` (none when the folder is missing)."""
    from services.runtime.kafka import OutgoingRecord

    folder = spool_dir / "deadletter"
    if not folder.is_dir():
        return []
    replayed: dict[str, str] = {}
    replay_log = folder / REPLAYED_FILE
    if replay_log.is_file():
        for item in _jsonl(replay_log):
            replayed[str(item.get("id"))] = str(item.get("replayed_at", ""))
    letters: list[DeadLetter] = []
    for path in sorted(folder.glob("*.jsonl")):
        if path.name == REPLAYED_FILE:
            continue
        for item in _jsonl(path):
            letter_id = str(item.get("id", ""))
            record: OutgoingRecord | None = None
            problem: str | None = None
            try:
                value = _b64(item.get("value")) or b""
                headers = tuple((str(name), _b64(raw) or b"") for name, raw in item.get("headers") or [])
                record = OutgoingRecord(str(item.get("topic", "")), value, _b64(item.get("key")), headers)
            except (ValueError, TypeError, binascii.Error) as error:
                problem = _bounded(f"unreadable record: {type(error).__name__}: {error}")
            letters.append(
                DeadLetter(
                    id=f"gateway:{letter_id}",
                    source="gateway",
                    topic=str(item.get("topic", "")),
                    size=int(item.get("size") or (len(record.value) if record else 0)),
                    reason=str(item.get("reason", "")),
                    quarantined_at=str(item.get("quarantined_at", "")),
                    replayed_at=replayed.get(letter_id),
                    record=record,
                    problem=problem,
                    raw={"file": path.name, "headers": [str(h[0]) for h in item.get("headers") or [] if h]},
                )
            )
    return letters


async def _open_pool(dsn: str) -> asyncpg.Pool:
    from services.runtime.errors import Unavailable
    from services.runtime.postgres import create_pool

    try:
        return await create_pool(dsn, min_size=1, max_size=2, instrument=False, connect_timeout=5.0)
    except Unavailable as error:
        raise StackError(f"{error.message} (is `radguard stack up` running?)") from None


async def collect(
    dsn: str, spool_dir: Path, topics: tuple[str, str], sources: Sequence[str] = SOURCES
) -> list[DeadLetter]:
    """Every dead letter of the chosen sources, outbox ones first (in id order), then the gateway's."""
    letters: list[DeadLetter] = []
    if "feedback" in sources or "governance" in sources:
        import asyncpg

        pool = await _open_pool(dsn)
        try:
            letters.extend(await _outbox_letters(pool, topics))
        except asyncpg.exceptions.UndefinedColumnError:
            raise StackError("the outboxes have no dead-letter columns: run `radguard stack up` to migrate") from None
        finally:
            await pool.close()
    if "gateway" in sources:
        letters.extend(gateway_letters(spool_dir))
    return [letter for letter in letters if letter.source in sources]


# --- replay -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOutcome:
    """What happened to one dead letter sent again."""

    id: str
    ok: bool
    detail: str


async def replay(letters: Sequence[DeadLetter], dsn: str, bootstrap: str, spool_dir: Path) -> list[ReplayOutcome]:
    """Send ``letters`` again, one by one in order, and record the ones Kafka took."""
    from services.runtime.errors import Unavailable
    from services.runtime.kafka import AsyncKafkaProducer

    outcomes: list[ReplayOutcome] = []
    producer = AsyncKafkaProducer(bootstrap, security=_kafka_security())
    try:
        await producer.start()
    except Unavailable as error:
        raise StackError(f"{error.message} (is `radguard stack up` running?)") from None
    pool = await _open_pool(dsn) if any(letter.source != "gateway" for letter in letters) else None
    try:
        for letter in letters:
            if letter.record is None:
                outcomes.append(ReplayOutcome(letter.id, False, letter.problem or "no record to send"))
                continue
            record = letter.record
            try:
                metadata = await producer.send(record.topic, record.value, record.key, record.headers)
            except Exception as error:  # every refusal is reported, the next letter still goes
                outcomes.append(ReplayOutcome(letter.id, False, _bounded(f"{type(error).__name__}: {error}")))
                continue
            await _record_replayed(letter, pool, spool_dir)
            outcomes.append(ReplayOutcome(letter.id, True, f"{metadata.topic}[{metadata.partition}]@{metadata.offset}"))
    finally:
        await producer.close()
        if pool is not None:
            await pool.close()
    return outcomes


async def _record_replayed(letter: DeadLetter, pool: asyncpg.Pool | None, spool_dir: Path) -> None:
    now = datetime.now(UTC).isoformat()
    if letter.source == "gateway":
        entry = {"id": letter.id.removeprefix("gateway:"), "topic": letter.topic, "replayed_at": now}
        with (spool_dir / "deadletter" / REPLAYED_FILE).open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        return
    assert pool is not None
    await pool.execute(_MARK_REPLAYED[letter.source], int(letter.id.split(":", 1)[1]))


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    dsn: str
    bootstrap: str
    spool_dir: Path
    topics: tuple[str, str]


def _where(dsn: str | None, bootstrap: str | None, spool_dir: Path | None) -> _Where:
    from kernel.topics import AUDIT_TOPIC, ROUTES_TOPIC
    from stack.manager import Stack
    from stack.settings import load_stack_settings

    stack_settings = load_stack_settings()
    if spool_dir is None:
        # The stack's gateway spools under its own home (stack/components/services.py: RADGUARD_SPOOL_DIR).
        spool_dir = Stack(stack_settings).component("gateway").home / "spool"
    return _Where(
        dsn or stack_settings.postgres_dsn,
        bootstrap or stack_settings.kafka_bootstrap,
        spool_dir,
        (ROUTES_TOPIC, AUDIT_TOPIC),
    )


DsnOption = Annotated[str | None, typer.Option("--dsn", help="PostgreSQL with both outboxes (default: the stack's)")]
BootstrapOption = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap (default: the stack's)")]
SpoolOption = Annotated[
    Path | None, typer.Option("--spool-dir", help="the gateway's spool folder (default: the stack gateway's)")
]


def _sources(source: str | None) -> tuple[str, ...]:
    if source is None:
        return SOURCES
    if source not in SOURCES:
        raise StackError(f"unknown source '{source}': choose one of {', '.join(SOURCES)}")
    return (source,)


@app.command("list")
def list_letters(
    source: Annotated[str | None, typer.Option("--source", help="feedback, governance or gateway")] = None,
    pending_only: Annotated[bool, typer.Option("--pending", help="hide replayed ones")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
    dsn: DsnOption = None,
    spool_dir: SpoolOption = None,
) -> None:
    """Every dead letter: id, topic, size, reason, when quarantined and whether replayed."""
    where = _where(dsn, None, spool_dir)
    letters = asyncio.run(collect(where.dsn, where.spool_dir, where.topics, _sources(source)))
    if pending_only:
        letters = [letter for letter in letters if letter.replayed_at is None]
    if as_json:
        typer.echo(json.dumps([_summary(letter) for letter in letters], indent=2))
        return
    table = Table(title=f"dead letters ({len(letters)})")
    for column in ("id", "topic", "bytes", "quarantined at", "replayed at", "reason"):
        table.add_column(column, justify="right" if column == "bytes" else "left")
    for letter in letters:
        table.add_row(
            letter.id, letter.topic, str(letter.size), letter.quarantined_at, letter.replayed_at or "-", letter.reason
        )
    _out.print(table)


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "source": letter.source,
        "topic": letter.topic,
        "size": letter.size,
        "reason": letter.reason,
        "quarantined_at": letter.quarantined_at,
        "replayed_at": letter.replayed_at,
    }


def _find(letters: Sequence[DeadLetter], ids: Sequence[str]) -> list[DeadLetter]:
    by_id = {letter.id: letter for letter in letters}
    unknown = [letter_id for letter_id in ids if letter_id not in by_id]
    if unknown:
        raise StackError(f"unknown dead letter id: {', '.join(unknown)} (see `radguard deadletter list`)")
    return [by_id[letter_id] for letter_id in ids]


def _source_of(letter_id: str) -> str:
    source = letter_id.split(":", 1)[0]
    if source not in SOURCES or ":" not in letter_id:
        raise StackError(f"unknown dead letter id: {letter_id} (ids look like feedback:17, governance:4, gateway:<id>)")
    return source


@app.command("show")
def show(
    letter_id: Annotated[str, typer.Argument(help="e.g. feedback:17, governance:4, gateway:<id>")],
    dsn: DsnOption = None,
    spool_dir: SpoolOption = None,
) -> None:
    """One dead letter in full (metadata and header names; the payload is only sized, never printed)."""
    where = _where(dsn, None, spool_dir)
    letters = asyncio.run(collect(where.dsn, where.spool_dir, where.topics, (_source_of(letter_id),)))
    (letter,) = _find(letters, [letter_id])
    document = {**_summary(letter), **letter.raw}
    if letter.record is not None:
        document["key_bytes"] = None if letter.record.key is None else len(letter.record.key)
    if letter.problem is not None:
        document["problem"] = letter.problem
    typer.echo(json.dumps(document, indent=2))


@app.command("replay")
def replay_command(
    letter_ids: Annotated[list[str] | None, typer.Argument(help="ids to send again")] = None,
    all_pending: Annotated[bool, typer.Option("--all", help="every dead letter not replayed yet")] = False,
    source: Annotated[str | None, typer.Option("--source", help="with --all: only this source")] = None,
    dsn: DsnOption = None,
    bootstrap: BootstrapOption = None,
    spool_dir: SpoolOption = None,
) -> None:
    """Send dead letters to their topic again; reports each, and exits 1 when any failed again."""
    ids = list(letter_ids or [])
    if not ids and not all_pending:
        raise StackError("name dead letter ids, or pass --all")
    where = _where(dsn, bootstrap, spool_dir)
    sources = _sources(source) if all_pending else tuple(sorted({_source_of(letter_id) for letter_id in ids}))
    letters = asyncio.run(collect(where.dsn, where.spool_dir, where.topics, sources))
    chosen = [letter for letter in letters if letter.replayed_at is None] if all_pending else _find(letters, ids)
    outcomes = asyncio.run(replay(chosen, where.dsn, where.bootstrap, where.spool_dir))
    for outcome in outcomes:
        mark = "[green]replayed[/]" if outcome.ok else "[red]failed again[/]"
        _out.print(f"{outcome.id}: {mark} {outcome.detail}", highlight=False, soft_wrap=True)
    failed = sum(not outcome.ok for outcome in outcomes)
    _out.print(f"{len(outcomes) - failed} replayed, {failed} failed again")
    if failed:
        raise typer.Exit(1)


def _kafka_security() -> KafkaSecuritySettings:
    from services.cli.channels import kafka_security

    return kafka_security()

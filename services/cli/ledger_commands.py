"""``radguard ledger``: what the event ledger holds and how far its writer trails Kafka."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from kernel.topics import LEDGER_GROUP, PREDICTIONS_TOPIC, READS_TOPIC
from stack.processes import StackError

if TYPE_CHECKING:
    from services.monitors.ledger.queries import OrphanRead
    from services.monitors.ledger.stats import LedgerStats, PartitionLag
    from services.runtime.kafka import TopicPartition
    from services.runtime.kafka_security import KafkaSecuritySettings

# asyncpg, the Kafka client and the ledger's adapters are imported inside `stats`: `--help` needs none of them.

#: The ledger's group and topics (``services.monitors.ledger.settings``; equal to them by test), the options'
#: defaults: that module imports the settings classes, which a help page does not need.

app = typer.Typer(help="The event ledger: row counts, consumer lag, orphan reads.", no_args_is_help=True)
_out = Console()


class _KnownBounds:
    """Partition bounds read once up front, so an unreachable Kafka still leaves the counts to show."""

    def __init__(self, bounds: dict[TopicPartition, tuple[int, int]]) -> None:
        self._bounds = bounds

    async def offsets(self, topics: Sequence[str]) -> dict[TopicPartition, tuple[int, int]]:
        return {partition: bound for partition, bound in self._bounds.items() if partition.topic in topics}


async def _gather(
    dsn: str, bootstrap: str, group: str, topics: list[str], orphan_limit: int
) -> tuple[LedgerStats, list[OrphanRead], str | None]:
    from services.monitors.ledger.adapters.kafka_offsets import KafkaOffsetReader
    from services.monitors.ledger.adapters.postgres_queries import PostgresLedgerQueries
    from services.monitors.ledger.stats import ledger_stats
    from services.runtime.errors import Unavailable
    from services.runtime.postgres import create_pool

    lag_problem = None
    try:
        bounds = await KafkaOffsetReader(bootstrap, timeout_ms=5_000, security=_kafka_security()).offsets(topics)
    except Unavailable as exc:
        bounds, lag_problem = {}, exc.message
    pool = await create_pool(dsn, min_size=1, max_size=2, instrument=False)
    try:
        queries = PostgresLedgerQueries(pool)
        stats = await ledger_stats(queries, _KnownBounds(bounds), group, topics)
        orphans = await queries.orphan_reads(orphan_limit) if orphan_limit > 0 else []
        return stats, orphans, lag_problem
    finally:
        await pool.close()


def _lag_table(lags: tuple[PartitionLag, ...]) -> Table:
    table = Table(title="consumer lag")
    for column in ("topic", "partition", "end offset", "stored offset", "lag"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for lag in lags:
        stored = "-" if lag.next_offset is None else str(lag.next_offset)
        table.add_row(lag.topic, str(lag.partition), str(lag.end_offset), stored, str(lag.lag))
    return table


@app.command("stats")
def stats(
    dsn: Annotated[str | None, typer.Option("--dsn", help="ledger database (default: the local stack's)")] = None,
    bootstrap: Annotated[
        str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers (default: the local stack's)")
    ] = None,
    group: Annotated[str, typer.Option("--group", help="the ledger writer's consumer group")] = LEDGER_GROUP,
    predictions_topic: Annotated[str, typer.Option("--predictions-topic")] = PREDICTIONS_TOPIC,
    reads_topic: Annotated[str, typer.Option("--reads-topic")] = READS_TOPIC,
    orphans: Annotated[int, typer.Option("--orphans", min=0, help="orphan reads to list")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document instead of tables")] = False,
) -> None:
    """Row counts, lag per topic partition (end offset − stored offset) and orphan reads."""
    import asyncio

    import asyncpg

    from services.runtime.errors import Unavailable
    from stack.settings import load_stack_settings

    if dsn is None or bootstrap is None:
        stack = load_stack_settings()
        dsn, bootstrap = dsn or stack.postgres_dsn, bootstrap or stack.kafka_bootstrap
    try:
        result, orphan_reads, lag_problem = asyncio.run(
            _gather(dsn, bootstrap, group, [predictions_topic, reads_topic], orphans)
        )
    except Unavailable as exc:
        raise StackError(f"{exc.message} (is `radguard stack up` running?)") from None
    except asyncpg.exceptions.UndefinedTableError:
        raise StackError("the ledger's tables are missing: apply the migrations with `radguard stack up`") from None
    if as_json:
        document = {
            "group": result.group,
            "counts": asdict(result.counts),
            "total_lag": result.total_lag if lag_problem is None else None,
            "lag_unavailable": lag_problem,
            "lags": [asdict(lag) for lag in result.lags],
            "orphan_reads": [
                {
                    **asdict(orphan),
                    "read_time": orphan.read_time.isoformat(),
                    "recorded_at": orphan.recorded_at.isoformat(),
                }
                for orphan in orphan_reads
            ],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    counts = result.counts
    table = Table(title=f"ledger (group {result.group})")
    table.add_column("what")
    table.add_column("rows", justify="right")
    for label, value in (
        ("predictions", counts.predictions),
        ("reads", counts.reads),
        ("predictions with a read", counts.labelled_predictions),
        ("orphan reads", counts.orphan_reads),
        ("rejected records", counts.rejects),
    ):
        table.add_row(label, str(value))
    _out.print(table)
    if lag_problem is not None:
        _out.print(f"[yellow]lag unavailable:[/] {lag_problem}")
    else:
        _out.print(_lag_table(result.lags))
        _out.print(f"total lag: {result.total_lag}")
    if orphan_reads:
        orphan_table = Table(title=f"orphan reads (first {len(orphan_reads)} of {counts.orphan_reads})")
        for column in ("read id", "prediction id", "read time", "recorded at"):
            orphan_table.add_column(column)
        for orphan in orphan_reads:
            orphan_table.add_row(
                orphan.read_id, orphan.prediction_id, orphan.read_time.isoformat(), orphan.recorded_at.isoformat()
            )
        _out.print(orphan_table)


def _kafka_security() -> KafkaSecuritySettings:
    from services.cli.channels import kafka_security

    return kafka_security()

"""``radguard read``: record one radiologist's read by hand, through the feedback service, as a reading system would."""

from __future__ import annotations

import asyncio
import enum
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stack.processes import StackError

_out = Console()


class LabelChoice(enum.StrEnum):
    """What the reader concluded."""

    POSITIVE = "positive"
    NEGATIVE = "negative"


class OutcomeChoice(enum.StrEnum):
    """How the read relates to the model's decision."""

    AGREE = "agree"
    OVERRIDE = "override"
    CORRECT = "correct"


def read(
    prediction_id: Annotated[str, typer.Argument(help="the prediction judged (the gateway's prediction id)")],
    label: Annotated[LabelChoice, typer.Option("--label", help="what the reader reported")],
    reader: Annotated[str, typer.Option("--reader", help="the reader's pseudonym (never a name)")],
    outcome: Annotated[
        OutcomeChoice, typer.Option("--outcome", help="agree, override or correct the model's decision")
    ] = OutcomeChoice.AGREE,
    category: Annotated[str, typer.Option("--finding", help="finding category code of a positive read")] = "NODULE",
    key: Annotated[
        str | None, typer.Option("--key", help="idempotency key (default: a fresh one); repeat it to retry safely")
    ] = None,
    read_time: Annotated[
        datetime | None,
        typer.Option("--read-time", help="when the reader signed, UTC (default: now); give it when retrying a --key"),
    ] = None,
    feedback: Annotated[
        str | None, typer.Option("--feedback", help="feedback service host:port (default: the stack's)")
    ] = None,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait")] = 10.0,
) -> None:
    """Record one radiologist's read of a prediction through the feedback service."""
    import grpc.aio

    from radguard.common.v1 import common_pb2
    from radguard.feedback.v1 import feedback_pb2, feedback_pb2_grpc
    from services.cli import channels
    from services.cli.simulate_commands import require_service, stack_endpoints
    from services.cli.traffic import bearer, stamp

    endpoints = stack_endpoints(feedback=feedback)
    request = feedback_pb2.RecordReadRequest(
        idempotency_key=key or f"cli-{uuid.uuid4()}",
        prediction_id=prediction_id,
        reader_pseudonym=reader,
        outcome=f"OUTCOME_{outcome.value.upper()}",
        ground_truth=common_pb2.LABEL_POSITIVE if label is LabelChoice.POSITIVE else common_pb2.LABEL_NEGATIVE,
        read_time=stamp(datetime.now(UTC) if read_time is None else read_time.replace(tzinfo=read_time.tzinfo or UTC)),
    )
    if label is LabelChoice.POSITIVE and category:
        request.finding.category_code = category

    async def call() -> feedback_pb2.RecordReadResponse:
        await require_service("feedback service", endpoints.feedback)
        async with channels.aio_channel(endpoints.feedback) as channel:
            reply: feedback_pb2.RecordReadResponse = await feedback_pb2_grpc.FeedbackStub(channel).RecordRead(
                request, timeout=timeout_s, metadata=bearer(endpoints.feedback_token)
            )
            return reply

    try:
        reply = asyncio.run(call())
    except grpc.aio.AioRpcError as exc:
        raise StackError(
            f"feedback service at {endpoints.feedback} answered {exc.code().name}: {exc.details()}"
        ) from None
    table = Table(title=f"read {reply.read.read_id}", show_header=False)
    rows = {
        "prediction": reply.read.prediction_id,
        "reader": reply.read.reader_pseudonym,
        "label": common_pb2.Label.Name(reply.read.ground_truth).removeprefix("LABEL_").lower(),
        "outcome": common_pb2.Outcome.Name(reply.read.outcome).removeprefix("OUTCOME_").lower(),
        "idempotency key": reply.read.idempotency_key,
        "stored": "now" if reply.created else "earlier (same key: nothing new stored)",
    }
    for name, value in rows.items():
        table.add_row(name, value)
    _out.print(table)

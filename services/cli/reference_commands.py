"""``radguard reference``: build a version's reference from a ledger period and renew it through governance.

``build`` reads the ledger (read-only) and writes a ``reference_profile.npz`` in the format the monitors
load, with the period's facts and each subgroup's power in its ``metadata`` member. ``propose`` hashes the
file and asks governance to renew the version's reference; the renewal takes effect when the signatures the
version's policy requires are in (``approve``, the same e-signatures as lifecycle transitions). ``list``
shows the reference in force and the history of renewals.

Heavy modules (asyncpg, numpy, the gRPC stubs) are imported inside the commands that use them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kernel.digest import sha256_file

if TYPE_CHECKING:
    from services.monitors.core.reference_build import BuiltReference

app = typer.Typer(help="Reference profiles: build, renew, list.", no_args_is_help=True)

TargetOption = Annotated[str | None, typer.Option("--target", help="governance host:port (default: the local stack's)")]
TokenOption = Annotated[str | None, typer.Option("--token", help="bearer token (default $RADGUARD_TOKEN)")]
RequestIdOption = Annotated[
    str | None, typer.Option("--request-id", help="idempotency key; repeat one to retry a command safely")
]


def _when(text: str, option: str) -> datetime:
    from stack.processes import StackError

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StackError(f"{option}: not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _rows(dsn: str, model: str, version: str, since: datetime, until: datetime) -> Any:
    import asyncpg

    from services.monitors.ledger.adapters.postgres_queries import PostgresLedgerQueries
    from services.monitors.ledger.queries import WindowSpec

    # Read-only on purpose: building a reference must never change the ledger it describes.
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=1, server_settings={"default_transaction_read_only": "on"}
    )
    try:
        from services.monitors.core.reference_build import with_twin_reads

        queries = PostgresLedgerQueries(pool)
        spec = WindowSpec(model, model_version=version, start=since, end=until, include_features=True)
        rows = (await queries.window(spec)).rows
        # A shadow period's predictions are labelled by the reads of the served predictions they shadowed.
        return with_twin_reads(rows, await queries.served_twin_reads(model, version, since, until))
    finally:
        await pool.close()


def _print_built(built: BuiltReference, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"wrote {out} ({out.stat().st_size:,} bytes, sha256 {sha256_file(out)})\n"
        f"period {built.start:%Y-%m-%d %H:%M}Z .. {built.end:%Y-%m-%d %H:%M}Z: {built.studies:,} predictions, "
        f"{built.reads:,} with a read ({built.read_positives:,} positive), threshold {built.threshold:g}, "
        f"label maturity {built.metadata['label_maturity']:.0%}"
    )
    table = Table(title="power per subgroup: " + built.metadata["power"]["statement"])
    for column in ("subgroup", "studies", "read-positives", "detectable drop"):
        table.add_column(column, justify="left" if column == "subgroup" else "right")
    weak = set(built.metadata["power"]["underpowered"])
    for power in built.powers:
        drop = "-" if power.detectable_drop == float("inf") else f"{power.detectable_drop:.3f}"
        style = "yellow" if power.subgroup in weak else None
        table.add_row(power.subgroup, f"{power.studies:,}", f"{power.read_positives:,}", drop, style=style)
    console.print(table)
    if weak:
        limit = built.metadata["power"]["underpowered_above"]
        console.print(
            f"[yellow]underpowered (cannot detect a drop of {limit:g}): {', '.join(sorted(weak))}[/] "
            "— a longer period, or judge these subgroups with care"
        )


@app.command("build")
def build(
    model: Annotated[str, typer.Option("--model", help="model name")],
    version: Annotated[str, typer.Option("--version", help="version label")],
    since: Annotated[str, typer.Option("--since", help="start of the period, ISO-8601 (UTC if no offset)")],
    until: Annotated[str, typer.Option("--until", help="end of the period (exclusive), ISO-8601")],
    out: Annotated[Path, typer.Option("--out", help="where to write reference_profile.npz")],
    min_reads: Annotated[int | None, typer.Option("--min-reads", help="fewest reads the period must hold")] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="operating threshold (default: the ledger's, one per period)")
    ] = None,
    dsn: Annotated[str | None, typer.Option("--dsn", help="ledger database (default: the local stack's)")] = None,
) -> None:
    """Build a reference profile from a version's predictions and reads in a ledger period."""
    import asyncio

    import asyncpg

    from services.monitors.core.reference_build import DEFAULT_MIN_READS, PeriodError, build_from_rows, write_profile
    from services.runtime.errors import InvalidArgument
    from stack.processes import StackError
    from stack.settings import load_stack_settings

    start, end = _when(since, "--since"), _when(until, "--until")
    if start >= end:
        raise StackError("--until: must be after --since")
    database = dsn or load_stack_settings().postgres_dsn
    try:
        rows = asyncio.run(_rows(database, model, version, start, end))
    except (OSError, asyncpg.PostgresError) as error:
        raise StackError(f"cannot read the ledger: {type(error).__name__}: {error}") from None
    except InvalidArgument as error:
        raise StackError(str(error)) from None
    try:
        built = build_from_rows(
            rows,
            model_name=model,
            model_version=version,
            since=start,
            until=end,
            min_reads=DEFAULT_MIN_READS if min_reads is None else min_reads,
            threshold=threshold,
        )
    except PeriodError as error:
        raise StackError(str(error)) from None
    write_profile(out, built.arrays)
    _print_built(built, out)


def _metadata(path: Path) -> dict[str, Any]:
    import numpy as np

    from stack.processes import StackError

    try:
        with np.load(path, allow_pickle=False) as archive:
            content = json.loads(str(archive["metadata"].reshape(-1)[0])) if "metadata" in archive.files else {}
    except (OSError, ValueError) as error:
        raise StackError(f"--profile: cannot read {path}: {error}") from None
    if not isinstance(content, dict) or content.get("labels") != "reads" or "period" not in content:
        raise StackError(
            f"--profile: {path} has no period metadata labelled by reads (build it with `reference build`)"
        )
    return content


def _period(content: dict[str, Any]) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    from radguard.governance.v1 import governance_pb2 as pb

    period = content["period"]
    arms = "/".join(period.get("arms", ()))
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(datetime.fromisoformat(period["since"]).astimezone(UTC))
    end.FromDatetime(datetime.fromisoformat(period["until"]).astimezone(UTC))
    return pb.ReferencePeriod(
        labelled_by="reads",
        description=(
            f"ledger period of {period['model_name']} version {period['model_version']} ({arms}), "
            f"{period['since']} .. {period['until']}, threshold {content.get('threshold')}"
        ),
        studies=int(content.get("studies", content["n"])),
        reads=int(content["reads"]),
        read_positives=int(content["read_positives"]),
        start_time=start,
        end_time=end,
    )


def print_renewal(renewal: Any) -> None:
    """One renewal: status, the reference it proposes and the one it replaces, signatures, what is missing."""
    from radguard.governance.v1 import governance_pb2 as pb
    from services.cli import governance_commands as gc

    status = pb.TransitionStatus.Name(renewal.status).removeprefix("TRANSITION_STATUS_").lower()
    console = gc._out
    console.print(
        f"reference renewal [bold]{renewal.renewal_id}[/] of {renewal.model.model_name} "
        f"{renewal.model.model_version}: [bold]{status}[/] (proposed by {renewal.requested_by} at "
        f"{gc._time(renewal.requested_at)}{': ' + renewal.reason if renewal.reason else ''})"
    )
    console.print(f"  proposed: {renewal.proposed.uri} ({renewal.proposed.sha256[:12]}…)")
    console.print(f"            {gc._period_text(renewal.proposed)}")
    console.print(f"  replaces: {renewal.previous.uri} ({renewal.previous.sha256[:12]}…)")
    for a in renewal.approvals:
        console.print(f"  signed by {a.signer} at {gc._time(a.signed_at)}: {a.meaning} ({a.algorithm}, key {a.key_id})")
    for unmet in renewal.unmet_requirements:
        console.print(f"  [yellow]waiting for: {unmet}[/]")
    if renewal.status == pb.TRANSITION_STATUS_APPLIED:
        route = f"; route revision {renewal.route_revision}" if renewal.route_revision else "; version on no route"
        console.print(f"  [green]in force since {gc._time(renewal.decided_at)}{route}[/]")
    if renewal.rejection_reason:
        console.print(f"  [red]rejected at {gc._time(renewal.decided_at)}: {renewal.rejection_reason}[/]")


@app.command("propose")
def propose(
    model: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str, typer.Argument(help="version label")],
    profile: Annotated[Path, typer.Option("--profile", help="a reference_profile.npz written by `reference build`")],
    reason: Annotated[str, typer.Option("--reason", help="why; recorded in the audit trail")],
    uri: Annotated[
        str | None, typer.Option("--uri", help="where governance and the monitors find it (default: file:// of PATH)")
    ] = None,
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Propose a built profile as the version's reference; it waits for the signatures its policy requires."""
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb
    from services.cli import governance_commands as gc
    from stack.processes import StackError

    if not profile.is_file():
        raise StackError(f"--profile: {profile} is not a file")
    content = _metadata(profile)
    request = pb.ProposeReferenceRequest(
        model=common_pb2.ModelRef(model_name=model, model_version=version),
        profile=pb.ReferenceProfile(
            uri=uri or profile.resolve().as_uri(), sha256=sha256_file(profile), period=_period(content)
        ),
        reason=reason,
        request_id=gc._request_id(request_id),
    )
    print_renewal(gc._call(target, token, lambda stub, md: stub.ProposeReference(request, metadata=md)))


@app.command("approve")
def approve(
    renewal_id: Annotated[str, typer.Argument(help="the pending reference renewal")],
    meaning: Annotated[str, typer.Option("--meaning", help="what your signature means")] = "approve reference",
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Sign an approval of a pending reference renewal as the token's identity (the Approve RPC)."""
    from radguard.governance.v1 import governance_pb2 as pb
    from services.cli import governance_commands as gc

    request = pb.ApproveRequest(renewal_id=renewal_id, meaning=meaning, request_id=gc._request_id(request_id))
    reply = gc._call(target, token, lambda stub, md: stub.Approve(request, metadata=md))
    a = reply.approval
    gc._out.print(f"signed by [bold]{a.signer}[/] at {gc._time(a.signed_at)} ({a.algorithm}, key {a.key_id})")
    print_renewal(reply.renewal)


@app.command("reject")
def reject(
    renewal_id: Annotated[str, typer.Argument(help="the pending reference renewal")],
    reason: Annotated[str, typer.Option("--reason", help="why; recorded in the audit trail")],
    target: TargetOption = None,
    token: TokenOption = None,
    request_id: RequestIdOption = None,
) -> None:
    """Refuse (a signer) or withdraw (its proposer) a pending reference renewal."""
    from radguard.governance.v1 import governance_pb2 as pb
    from services.cli import governance_commands as gc

    request = pb.RejectReferenceRenewalRequest(
        renewal_id=renewal_id, reason=reason, request_id=gc._request_id(request_id)
    )
    print_renewal(gc._call(target, token, lambda stub, md: stub.RejectReferenceRenewal(request, metadata=md)))


@app.command("list")
def list_renewals(
    model: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str | None, typer.Argument(help="version label (default: every version)")] = None,
    target: TargetOption = None,
    token: TokenOption = None,
) -> None:
    """The reference in force and the history of reference renewals, oldest first."""
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb
    from services.cli import governance_commands as gc

    if version:
        ref = common_pb2.ModelRef(model_name=model, model_version=version)
        v = gc._call(target, token, lambda stub, md: stub.GetVersion(pb.GetVersionRequest(model=ref), metadata=md))
        gc._out.print(
            f"in force for {model} {version}: {v.reference_profile.uri} ({v.reference_profile.sha256[:12]}…)\n"
            f"  {gc._period_text(v.reference_profile)}"
        )
    request = pb.ListReferenceRenewalsRequest(model_name=model, model_version=version or "")
    reply = gc._call(target, token, lambda stub, md: stub.ListReferenceRenewals(request, metadata=md))
    if not reply.renewals:
        gc._out.print("no reference renewals")
    for renewal in reply.renewals:
        print_renewal(renewal)

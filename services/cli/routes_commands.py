"""``radguard routes``: show and set model route tables on the compacted routes topic.

Governance owns routes once it exists; until then an operator publishes a default route here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from stack.processes import StackError

if TYPE_CHECKING:
    from services.gateway.routing import Route
    from services.runtime.kafka_security import KafkaSecuritySettings

app = typer.Typer(help="Show and set model route tables (stable / canary / shadow).", no_args_is_help=True)
_out = Console()

BootstrapOption = Annotated[
    str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers (default: the local stack's)")
]


def _bootstrap(value: str | None) -> str:
    from stack.settings import load_stack_settings

    return value or load_stack_settings().kafka_bootstrap


@app.command("set")
def set_route(
    model: Annotated[str, typer.Argument(help="model name, e.g. chest_nodule")],
    stable: Annotated[str, typer.Option("--stable", help="version that answers by default")],
    canary: Annotated[str, typer.Option("--canary", help="version under canary")] = "",
    canary_weight: Annotated[
        float, typer.Option("--canary-weight", min=0.0, max=1.0, help="share of studies sent to the canary, 0..1")
    ] = 0.0,
    shadow: Annotated[list[str] | None, typer.Option("--shadow", help="version scored silently (repeatable)")] = None,
    reason: Annotated[str, typer.Option("--reason", help="why the route changes")] = "set from the CLI",
    bootstrap: BootstrapOption = None,
) -> None:
    """Publish a new route table for MODEL (its revision is the current one plus one)."""
    import asyncio

    from services.gateway.adapters.routes import publish_route, read_routes
    from services.gateway.routing import BUCKETS, Route
    from services.runtime.errors import Unavailable

    servers = _bootstrap(bootstrap)
    try:
        current = asyncio.run(read_routes(servers, security=_kafka_security())).get(model)
    except Unavailable as exc:
        raise StackError(f"{exc.message} (is `radguard stack up` running?)") from None
    revision = (current.revision if current else 0) + 1
    try:
        route = Route(
            model_name=model,
            stable_version=stable,
            canary_version=canary,
            canary_weight_bp=round(canary_weight * BUCKETS),
            shadow_versions=tuple(shadow or ()),
            revision=revision,
            reason=reason,
        )
    except ValueError as exc:
        raise StackError(str(exc)) from None
    try:
        asyncio.run(publish_route(servers, route, security=_kafka_security()))
    except Unavailable as exc:
        raise StackError(f"{exc.message} (is `radguard stack up` running?)") from None
    _out.print(f"route for {model} is now revision {revision}")
    _print([route])


@app.command("show")
def show(bootstrap: BootstrapOption = None) -> None:
    """Print every model's current route table."""
    import asyncio

    from services.gateway.adapters.routes import read_routes
    from services.runtime.errors import Unavailable

    try:
        book = asyncio.run(read_routes(_bootstrap(bootstrap), security=_kafka_security()))
    except Unavailable as exc:
        raise StackError(f"{exc.message} (is `radguard stack up` running?)") from None
    routes = [r for name in book.models() if (r := book.get(name)) is not None]
    if not routes:
        _out.print("no routes published yet: `radguard routes set MODEL --stable VERSION`")
        return
    _print(routes)


def _print(routes: list[Route]) -> None:
    from services.gateway.routing import BUCKETS

    table = Table()
    for col in ("model", "revision", "stable", "canary", "canary share", "shadows", "served by", "reason"):
        table.add_column(col)
    for r in routes:
        table.add_row(
            r.model_name,
            str(r.revision),
            r.stable_version,
            r.canary_version or "-",
            f"{r.canary_weight_bp / BUCKETS:.1%}",
            ", ".join(r.shadow_versions) or "-",
            served_by(r),
            r.reason,
        )
    _out.print(table)


def served_by(route: Route) -> str:
    """Which Triton model version serves each label, and the reference it is judged against (its hash's head).

    "-" for a table without served entries: each label is then the same-named Triton model's version.
    """
    parts = []
    for entry in route.served:
        text = f"{entry.version}→{entry.triton_model}/{entry.triton_version}"
        if entry.reference_sha256:
            text += f" (reference {entry.reference_sha256[:8]})"
        parts.append(text)
    return ", ".join(parts) or "-"


def _kafka_security() -> KafkaSecuritySettings:
    from services.cli.channels import kafka_security

    return kafka_security()

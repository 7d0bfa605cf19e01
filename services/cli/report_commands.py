"""``radguard report review MODEL VERSION --out FILE``: the board's review pack as one self-contained HTML file.

The pack is the dashboard's (same APIs, same content): governance as the token's identity, monitoring
evidence from the monitor service's query API. Heavy modules are imported inside the command, so the CLI
starts fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Reports for the governance board.", no_args_is_help=True)

MONITORING_TARGET_ENV = "RADGUARD_MONITORING_TARGET"


@app.command("review")
def review(
    model: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str, typer.Argument(help="version label")],
    out: Annotated[Path, typer.Option("--out", help="the HTML file to write")],
    target: Annotated[
        str | None, typer.Option("--target", help="governance host:port (default: the local stack's)")
    ] = None,
    monitoring: Annotated[
        str | None,
        typer.Option(
            "--monitoring", help=f"monitor query API host:port (default ${MONITORING_TARGET_ENV} or the stack's)"
        ),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="bearer token (default $RADGUARD_TOKEN)")] = None,
) -> None:
    """Write the review pack of one version (plots embedded; pseudonyms and counts only)."""
    import asyncio

    from aiohttp import web

    from services.cli.governance_commands import _target, _token
    from services.dashboard.adapters.apis import ApiError, GovernanceApi, MonitoringApi
    from services.dashboard.review import render_review_pack
    from stack.processes import StackError
    from stack.settings import load_stack_settings

    governance_target = _target(target)
    bearer = _token(token)
    if monitoring is None:
        monitoring = os.environ.get(MONITORING_TARGET_ENV) or None
    if monitoring is None:
        stack = load_stack_settings()
        monitoring = f"{stack.host}:{stack.monitor_port}"

    async def build() -> str:
        gov = GovernanceApi(governance_target, 30.0)
        mon = MonitoringApi(monitoring, 30.0)
        try:
            return await render_review_pack(gov, mon, bearer, model, version)
        finally:
            await gov.close()
            await mon.close()

    try:
        html = asyncio.run(build())
    except web.HTTPNotFound as error:
        raise StackError(error.text or f"model '{model}' version '{version}' is not registered") from None
    except ApiError as error:
        raise StackError(str(error)) from None
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as error:
        raise StackError(f"--out {out}: {error.strerror}") from None
    typer.echo(f"review pack of {model} {version} written to {out} ({len(html.encode()) // 1024} KiB)")

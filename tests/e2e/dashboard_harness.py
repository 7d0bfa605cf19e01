"""What the dashboard's browser tests and the screenshot script share: a governed rollout on simulator
traffic, monitor findings written by the real monitor runner, the monitor query API and the dashboard
served in this process, and a headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from radguard.common.v1 import common_pb2
from radguard.governance.v1 import governance_pb2 as pb
from services.cli.governance_commands import version_from_repo
from services.dashboard.adapters.apis import GovernanceApi, MonitoringApi
from services.dashboard.app import build_app
from services.dashboard.settings import DashboardSettings
from services.gateway.app import Gateway
from services.monitors.query.servicer import register_query_service
from services.monitors.runner.app import build_monitor_runner
from services.monitors.runner.settings import MonitorRunnerSettings
from services.runtime.config import ServiceSettings, load_settings
from services.runtime.server import RadguardServer
from stack.settings import REPO_ROOT
from tests.e2e.traffic import MODEL, Traffic, wait_ledger
from tests.integration.governance_api.conftest import GovHarness

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO_ROOT / "tmp" / "artifacts"
V1 = common_pb2.ModelRef(model_name=MODEL, model_version="1")
V2 = common_pb2.ModelRef(model_name=MODEL, model_version="2")
#: Steps that never collect their reads: the rollout holds at its first step until a person acts.
POLICY = "e2e-monitor"


def rid(tag: str) -> str:
    return f"dash-{tag}-{uuid.uuid4().hex[:8]}"


async def wait_revision(gateways: list[Gateway], revision: int, timeout_s: float = 15.0) -> None:
    """Wait until every gateway holds ``revision`` (or newer) of the model's route table."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    for gw in gateways:
        while (route := gw.routes.get(MODEL)) is None or route.revision < revision:
            assert asyncio.get_running_loop().time() < deadline, f"a gateway did not apply revision {revision}: {route}"
            await asyncio.sleep(0.02)


async def move(gov: GovHarness, ref: common_pb2.ModelRef, state: int, signer: str = "") -> pb.Transition:
    """Request a transition as the operator; sign it as ``signer`` when it waits for a signature."""
    request = pb.RequestTransitionRequest(
        model=ref,
        to_state=state,  # type: ignore[arg-type]
        reason="board demo",
        request_id=rid("tr"),
    )
    transition: pb.Transition = await gov.stub.RequestTransition(request, metadata=gov.md("olga"))
    if transition.status == pb.TRANSITION_STATUS_PENDING and signer:
        approve = pb.ApproveRequest(
            transition_id=transition.transition_id, meaning=f"approve {ref.model_version}", request_id=rid("sign")
        )
        transition = (await gov.stub.Approve(approve, metadata=gov.md(signer))).transition
    return transition


async def governed_canary(gov: GovHarness, gateways: list[Gateway], traffic: Traffic, dsn: str) -> pb.Rollout:
    """v1 in production, v2 through shadow to a running canary; canary->production left pending for the board."""
    for n in (1, 2):
        message = version_from_repo(REPO_ROOT / "model_repo", MODEL, n, policy=POLICY)
        await gov.stub.RegisterVersion(
            pb.RegisterVersionRequest(version=message, request_id=rid(f"reg{n}")), metadata=gov.md("olga")
        )
        await move(gov, message.ref, pb.LIFECYCLE_STATE_VALIDATED)
    await move(gov, V1, pb.LIFECYCLE_STATE_PRODUCTION, "bert")
    await move(gov, V2, pb.LIFECYCLE_STATE_SHADOW, "bianca")
    await wait_revision(gateways, (await gov.app.service.get_routes(MODEL)).revision)
    await traffic.send(40)
    await wait_ledger(dsn, "shadow", "2", 30)
    await move(gov, V2, pb.LIFECYCLE_STATE_CANARY, "clara")
    rollout: pb.Rollout = await gov.stub.StartRollout(
        pb.StartRolloutRequest(candidate=V2, reason="canary of v2", request_id=rid("start")), metadata=gov.md("olga")
    )
    await wait_revision(gateways, (await gov.app.service.get_routes(MODEL)).revision)
    pending = await move(gov, V2, pb.LIFECYCLE_STATE_PRODUCTION)
    assert pending.status == pb.TRANSITION_STATUS_PENDING
    return rollout


async def monitor_pass(
    dsn: str, bootstrap: str, findings_topic: str, reports: Path, block_size: int, blocks_per_pass: int = 8
) -> int:
    """One pass of the real monitor runner over the test's ledger (every kind, every arm of v1 and v2)."""
    env = {
        "RADGUARD_POSTGRES_DSN": dsn,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RADGUARD_FINDINGS_TOPIC": findings_topic,
        "RADGUARD_MONITOR_MODEL": MODEL,
        "RADGUARD_MONITOR_VERSIONS": json.dumps(["1", "2"]),
        "RADGUARD_MONITOR_ARMS": json.dumps(["stable", "canary", "shadow"]),
        "RADGUARD_MONITOR_MODEL_REPO": str(REPO_ROOT / "model_repo"),
        "RADGUARD_MONITOR_REPORTS_DIR": str(reports),
        "RADGUARD_MONITOR_BLOCK_SIZE": str(block_size),
        "RADGUARD_MONITOR_FOLLOW_ROUTES": "false",
        "RADGUARD_MONITOR_BLOCK_SETTLE_S": "0",
        "RADGUARD_MONITOR_MAX_BLOCKS_PER_PASS": str(blocks_per_pass),
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
    }
    runner = await build_monitor_runner(load_settings(MonitorRunnerSettings, env))
    try:
        return len(await runner.run_once())
    finally:
        await runner.close()


@dataclass
class Served:
    """The dashboard in this process and its URL."""

    url: str
    monitoring_target: str
    app: web.Application


@asynccontextmanager
async def serve_dashboard(governance_target: str, dsn: str, reports: Path) -> AsyncIterator[Served]:
    """The monitor query API over ``dsn`` and the dashboard over it and governance, both on free ports."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    # The monitor service's server as its process builds it (interceptors map errors to status codes).
    env = {
        "RADGUARD_SERVICE_NAME": "monitor-query",
        "RADGUARD_GRPC_HOST": "127.0.0.1",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
        "RADGUARD_LOG_LEVEL": "warning",
    }
    server = RadguardServer(load_settings(ServiceSettings, env))
    register_query_service(server, pool, reports)
    await server.start()
    target = f"127.0.0.1:{server.port}"
    settings = DashboardSettings(governance_target=governance_target, monitoring_target=target, port=0)
    app = build_app(settings, GovernanceApi(governance_target, 10.0), MonitoringApi(target, 10.0))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = int(runner.addresses[0][1])
    try:
        yield Served(f"http://127.0.0.1:{http_port}", target, app)
    finally:
        await runner.cleanup()
        await server.stop(0)
        await pool.close()


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Debian Chromium under Playwright (its own browser download does not work here)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Any, url: str, token: str) -> None:
    """Sign in through the form."""
    await page.goto(f"{url}/signin")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_selector("[data-testid=whoami]")


async def charts_drawn(page: Any) -> dict[str, int]:
    """Per chart container: how many plotted SVG elements (traces) Plotly drew in it."""
    await page.wait_for_function("() => typeof Plotly !== 'undefined'")
    result: dict[str, int] = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('div.chart[data-figure]')].map(el =>
            [el.dataset.figure,
             el.querySelectorAll('svg.main-svg g.trace, svg.main-svg g.barlayer g.point').length]))"""
    )
    return result

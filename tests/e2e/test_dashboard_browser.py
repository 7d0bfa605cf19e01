"""The board's dashboard in a real browser (issue #14 acceptance): Debian's Chromium under Playwright against
the dashboard over the real stack's Kafka, PostgreSQL and Triton with simulator traffic.

A governed rollout is set up on simulator traffic (in-process governance and two gateways, a ledger writer);
the real monitor runner judges the ledger; the monitor query API and the dashboard are served in this
process. Then people act in the browser: an operator pauses and aborts, a clinician without the role finds
no button and a forged POST refused and audited, a board member signs the pending approval.
Screenshots of inventory, version, rollout and audit go to ``tmp/artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc.aio
import pytest
import pytest_asyncio

from radguard.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from services.dashboard.app import SESSIONS
from services.gateway.app import Gateway
from services.governance_api.adapters.triton import TritonModelControl
from sim import Hospital
from stack.settings import REPO_ROOT
from tests.e2e.dashboard_harness import (
    ARTIFACTS,
    charts_drawn,
    chromium,
    governed_canary,
    monitor_pass,
    serve_dashboard,
    sign_in,
    wait_revision,
)
from tests.e2e.traffic import MODEL, Traffic, wait_ledger
from tests.integration.conftest import StackEndpoints
from tests.integration.governance_api.conftest import GovHarness
from tests.integration.ledger.conftest import Topics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]


@pytest_asyncio.fixture(loop_scope="session")
async def restore_triton(stack: StackEndpoints) -> AsyncIterator[None]:
    """Leave chest_nodule with versions 1 and 2 loaded (the abort unloads the rolled-back version)."""
    yield
    control = TritonModelControl(stack.triton_grpc_url, REPO_ROOT / "model_repo")
    try:
        await control.load(MODEL, {1, 2})
    finally:
        await control.close()


async def served_findings(target: str, kind: str) -> list[str]:
    """Ids of the findings of one kind, newest first, from the monitoring query API."""
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await monitoring_pb2_grpc.MonitoringQueryStub(channel).QueryFindings(
            monitoring_pb2.QueryFindingsRequest(kind=kind, omit_statistics=True)
        )
    return [f.finding_id for f in reply.findings]


async def _audit_actions(dsn: str) -> list[tuple[str, str, str]]:
    con = await asyncpg.connect(dsn)
    try:
        rows = await con.fetch("select actor, action, after_json::text as after from gov_audit order by seq")
    finally:
        await con.close()
    return [(r["actor"], r["action"], r["after"] or "") for r in rows]


async def test_the_board_works_in_the_browser(
    sim_governance: GovHarness,
    gateways: list[Gateway],
    ledger: object,
    gov_dsn: str,
    e2e_topics: Topics,
    findings_topic: str,
    stack: StackEndpoints,
    restore_triton: None,
    tmp_path: Path,
) -> None:
    gov = sim_governance
    hospital = Hospital("baseline", seed=23)
    traffic = Traffic(hospital, f"127.0.0.1:{gateways[0].server.port}", stack.kafka_bootstrap, e2e_topics.reads)
    rollout = await governed_canary(gov, gateways, traffic, gov_dsn)
    # The monitors judge blocks of 200 (calibration wants at least 200 reads): one block per arm at least.
    await traffic.send(480)
    await wait_ledger(gov_dsn, "canary", "2", 200)
    reports = tmp_path / "reports"
    issued = await monitor_pass(gov_dsn, stack.kafka_bootstrap, findings_topic, reports, block_size=200)
    assert issued > 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    patient_ids = {s.patient_id for s in hospital.studies(traffic.next_index, 0)}

    async with serve_dashboard(gov.target, gov_dsn, reports) as served, chromium() as browser:
        url = served.url
        seen_html: list[str] = []

        # --- an operator: every page with real data and drawn charts -----------------------------------
        olga = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await sign_in(olga, url, gov.tokens["olga"])
        await olga.goto(url + "/")
        section = olga.locator(f"[data-testid=model-{MODEL}]")
        assert "canary 2 at 50%" in (await section.inner_text())
        await olga.screenshot(path=str(ARTIFACTS / "inventory.png"), full_page=True)
        seen_html.append(await olga.content())

        await olga.goto(f"{url}/models/{MODEL}/versions/2")
        await asyncio.to_thread((ARTIFACTS / "version.html").write_text, await olga.content(), encoding="utf-8")
        drawn = await charts_drawn(olga)
        for chart in ("ece", "reliability", "override", "forest", "drift_canary"):
            assert drawn.get(chart, 0) > 0, f"chart {chart} not drawn: {drawn}"
        assert "chest" in (await olga.locator("[data-testid=model-card]").inner_text()).lower()
        assert await olga.locator("[data-testid=validation] tr").count() > 1
        # The runner writes an Evidently report for drift breaches only; baseline traffic has none to link.
        assert await olga.locator("a:has-text('Evidently report of this window')").count() == 0
        drift_id = (await served_findings(served.monitoring_target, "drift"))[0]
        no_report = await olga.request.get(f"{url}/reports/{drift_id}")
        assert no_report.status == 404 and "report of finding" in await no_report.text()
        await olga.screenshot(path=str(ARTIFACTS / "version.png"), full_page=True)
        seen_html.append(await olga.content())

        await olga.goto(f"{url}/findings?kind=calibration")
        kinds = await olga.locator("[data-testid=findings] tr td:nth-child(2)").all_inner_texts()
        assert kinds and set(kinds) == {"calibration"}
        seen_html.append(await olga.content())

        await olga.goto(f"{url}/models/{MODEL}/rollout")
        assert (await olga.locator("[data-testid=rollout-status]").inner_text()) == "running"
        assert (await charts_drawn(olga)).get("timeline", 0) > 0
        await olga.screenshot(path=str(ARTIFACTS / "rollout.png"), full_page=True)

        # Pause from the UI: the rollout holds, and every gateway keeps the canary at its weight.
        before = (await gov.app.service.get_routes(MODEL)).revision
        await olga.click("[data-testid=pause-button]")
        await olga.wait_for_selector("[data-testid=rollout-status]:text('paused')")
        assert str((await gov.app.service.get_rollout(rollout.rollout_id)).status) == "paused"
        await wait_revision(gateways, before)
        for gw in gateways:
            route = gw.routes.get(MODEL)
            assert route is not None and (route.canary_version, route.canary_weight_bp) == ("2", 5000)

        # --- a clinician: no buttons; a forged POST is refused by governance and audited --------------
        clara = await browser.new_page()
        await sign_in(clara, url, gov.tokens["clara"])
        await clara.goto(f"{url}/models/{MODEL}/rollout")
        assert await clara.locator("[data-testid=rollout-controls]").count() == 0
        assert await clara.locator("[data-testid=approve-form]").count() == 0
        assert await clara.locator("[data-testid=rollback-form]").count() == 0
        csrf = await clara.locator("input[name=csrf_token]").first.get_attribute("value")
        forged = await clara.request.post(
            f"{url}/actions/rollout/abort",
            form={"csrf_token": csrf or "", "model": MODEL, "rollout_id": rollout.rollout_id, "reason": "forged"},
        )
        assert forged.status == 403 and "PERMISSION_DENIED" in await forged.text()
        assert str((await gov.app.service.get_rollout(rollout.rollout_id)).status) == "paused"
        assert any(a == ("clara", "access.denied") for a in ((x[0], x[1]) for x in await _audit_actions(gov_dsn)))
        # Without the session's CSRF token the dashboard refuses before asking governance.
        no_csrf = await clara.request.post(
            f"{url}/actions/rollout/abort", form={"model": MODEL, "rollout_id": rollout.rollout_id}
        )
        assert no_csrf.status == 403 and "csrf_token" in await no_csrf.text()

        # --- a board member signs the pending approval from the UI ---------------------------------------
        bianca = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await sign_in(bianca, url, gov.tokens["bianca"])
        await bianca.goto(f"{url}/models/{MODEL}/rollout")
        form = bianca.locator("[data-testid=approve-form]")
        assert await form.count() == 1
        await form.locator("input[name=meaning]").fill("approve production of v2")
        await form.locator("button").click()
        await bianca.wait_for_selector("[data-testid=approval]:has-text('approve production of v2')")
        signed = [x for x in await _audit_actions(gov_dsn) if x[0] == "bianca" and x[1] == "approval.sign"]
        assert signed and "approve production of v2" in signed[-1][2]
        await bianca.goto(f"{url}/audit?action=approval.sign")
        assert "Chain verified" in await bianca.locator("[data-testid=verdict]").inner_text()
        audit_text = await bianca.locator("[data-testid=audit]").inner_text()
        assert "bianca" in audit_text and "approve production of v2" in audit_text
        await bianca.goto(f"{url}/audit")
        await bianca.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=False)
        seen_html.append(await bianca.content())

        # --- review pack: one self-contained file ------------------------------------------------------
        await olga.goto(f"{url}/models/{MODEL}/versions/2")
        async with olga.expect_download() as download_info:
            await olga.click("[data-testid=review-pack]")
        saved = await (await download_info.value).path()
        pack = await asyncio.to_thread(Path(saved).read_text, encoding="utf-8")
        assert "Plotly.newPlot" in pack and not re.search(r"<script[^>]+src=", pack)
        seen_html.append(pack)

        # --- bad input ---------------------------------------------------------------------------------
        missing = await olga.goto(f"{url}/models/{MODEL}/versions/99")
        assert missing is not None and missing.status == 404
        missing = await olga.goto(f"{url}/models/no_such_model/rollout")
        assert missing is not None and missing.status == 404
        csrf = await olga.locator("input[name=csrf_token]").first.get_attribute("value")
        malformed = await olga.request.post(
            f"{url}/actions/approve", form={"csrf_token": csrf or "", "transition_id": "x"}
        )
        assert malformed.status == 400 and "meaning: required" in await malformed.text()

        # --- abort from the UI reaches every gateway's route table -------------------------------------
        await olga.goto(f"{url}/models/{MODEL}/rollout")
        await olga.click("[data-testid=abort-button]")
        await olga.wait_for_selector("[data-testid=rollout-status]:text('aborted')")
        routes = await gov.app.service.get_routes(MODEL)
        assert (routes.stable_version, routes.canary_version) == ("1", "")
        await wait_revision(gateways, routes.revision)
        assert all(gw.routes.get(MODEL).canary_version == "" for gw in gateways)  # type: ignore[union-attr]

        # --- an expired session goes back to sign-in and does nothing -----------------------------------
        served.app[SESSIONS].expire_all()
        await olga.goto(f"{url}/models/{MODEL}/rollout")
        assert olga.url.startswith(f"{url}/signin")
        audit_before = len(await _audit_actions(gov_dsn))
        stale = await olga.request.post(
            f"{url}/actions/rollback", form={"csrf_token": csrf or "", "model": MODEL, "reason": "stale"}
        )
        assert stale.url.startswith(f"{url}/signin")
        assert len(await _audit_actions(gov_dsn)) == audit_before

        # --- no patient identifiers anywhere ------------------------------------------------------------
        for html in seen_html:
            assert not any(pid in html for pid in patient_ids)

"""``radguard demo``: the governance story on the running stack, narrated step by step.

Each run registers its own model, ``chest_nodule-demo-<run>``, whose versions 1 and 2 are served by Triton's
``chest_nodule`` versions 1 and 2 (and judged against their reference profiles), so a demo can be run again on
the same stack: governance's audit is append-only and never reset, and one run never touches another's
registrations, routes, ledger rows or monitor charts.

v1 of chest_nodule goes into production at the hospital's three sites; v2 is registered, validated,
approved by two board members (ed25519 signatures), shadowed on real traffic and canaried. Mid-way, site C's
CR-90 changes to a low-dose protocol (the shipped ``cr90_protocol_change`` scenario, continuing the same
hospital's study sequence); the rollout's gates and the monitors see v2 fail there, the canary stops and v2
is rolled back by the governance controller, the gateway back on v1. The demo then checks that the ledger
holds every prediction and read the driver had acknowledged (by id) and that the audit chain verifies, and
prints a summary table. ``--healthy`` keeps the baseline hospital: v2 passes every step and becomes
production.

The demo works through the same APIs as any client: the gateway (Predict), the feedback service
(RecordRead), governance (register, transition, approve, rollout, audit), the ledger's database (read
only) and, for the monitors' pass on the canary, the monitor runner. Its principals (an operator, two board
members, a clinician) are added to the stack's governance tokens file with a per-run suffix.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stack.processes import StackError

if TYPE_CHECKING:
    from services.cli.traffic import DriverStats, HospitalDriver

_out = Console()
#: The Triton model whose versions every demo run registers under a name of its own.
MODEL = "chest_nodule"
POLICY = "fast-test"
CHANGED_SITE, CHANGED_SCANNER = "site-C", "CR-90"


@dataclass(frozen=True)
class DemoSize:
    """How much traffic each act sends.

    The canary phase is paced (``canary_rate`` studies per second): governance's controller evaluates the gates
    every 10 s on the reads that have arrived since the step began, so traffic sent as fast as the gateway
    answers would reach any cap between two evaluations and leave each step a single look at its evidence.
    """

    shadow_studies: int
    batch: int
    max_canary_studies: int
    monitor_block: int
    after_studies: int
    canary_rate: float


FULL = DemoSize(
    shadow_studies=60, batch=48, max_canary_studies=4800, monitor_block=120, after_studies=24, canary_rate=16.0
)
FAST = DemoSize(
    shadow_studies=30, batch=32, max_canary_studies=2400, monitor_block=120, after_studies=12, canary_rate=24.0
)


def demo_model_name(run: str) -> str:
    """The registry name of one demo run's model, e.g. ``chest_nodule-demo-20250101120000-3f2a``."""
    return f"{MODEL}-demo-{run}"


@dataclass
class DemoResult:
    """What the demo did and found (also written as JSON with ``--result-json``)."""

    healthy: bool
    #: The run's own registry name (what its routes, ledger rows, findings and audit entries are under).
    model_name: str = ""
    v2_state: str = ""
    rollout_status: str = ""
    rollout_reasons: list[str] = field(default_factory=list)
    routes: dict[str, Any] = field(default_factory=dict)
    after_answers: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, str]] = field(default_factory=list)
    by_site: dict[str, dict[str, float]] = field(default_factory=dict)
    sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    reads: int = 0
    ledger_predictions: int = 0
    ledger_reads: int = 0
    missing_predictions: int = 0
    missing_reads: int = 0
    audit_ok: bool = False
    audit_entries: int = 0
    audit_reason: str = ""
    wall_s: float = 0.0
    reports_dir: str = ""
    dashboard_url: str = ""
    review_pack: str = ""


class Governance:
    """The governance API as the demo's principals."""

    def __init__(self, target: str, tokens: dict[str, str]) -> None:
        from radguard.governance.v1 import governance_pb2_grpc
        from services.cli import channels

        self._channel = channels.aio_channel(target)
        self.stub = governance_pb2_grpc.GovernanceStub(self._channel)
        self.tokens = tokens

    def md(self, who: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[who]}"),)

    async def close(self) -> None:
        await self._channel.close(None)


def _rid(tag: str) -> str:
    return f"demo-{tag}-{uuid.uuid4().hex[:8]}"


def _say(step: str, text: str) -> None:
    _out.print(f"[bold cyan]{step}[/] {text}", highlight=False)


def _principals(run: str) -> dict[str, str]:
    """Add the demo's principals to the stack's governance tokens file; role name → token."""
    from services.governance_api.auth import add_token
    from stack.settings import load_stack_settings

    tokens_file = load_stack_settings().state_dir / "governance" / "tokens.json"
    roles = {"operator": "operator", "board-1": "board", "board-2": "board", "clinician": "clinician"}
    return {who: add_token(tokens_file, f"demo-{run}-{who}", role) for who, role in roles.items()}


async def _move(gov: Governance, model: str, version: str, state: Any, signer: str = "") -> Any:
    from radguard.common.v1 import common_pb2
    from radguard.governance.v1 import governance_pb2 as pb

    ref = common_pb2.ModelRef(model_name=model, model_version=version)
    request = pb.RequestTransitionRequest(model=ref, to_state=state, reason="demo", request_id=_rid("tr"))
    transition = await gov.stub.RequestTransition(request, metadata=gov.md("operator"))
    if transition.status == pb.TRANSITION_STATUS_PENDING and signer:
        approve = pb.ApproveRequest(
            transition_id=transition.transition_id, meaning=f"approve v{version}", request_id=_rid("sign")
        )
        reply = await gov.stub.Approve(approve, metadata=gov.md(signer))
        _say(
            "  signed",
            f"by {signer}: {reply.approval.algorithm} signature {reply.approval.signature[:8].hex()}…",
        )
        transition = reply.transition
    return transition


async def _versions(gov: Governance, model: str) -> dict[str, str]:
    from radguard.governance.v1 import governance_pb2 as pb

    reply = await gov.stub.ListVersions(pb.ListVersionsRequest(model_name=model), metadata=gov.md("operator"))
    return {
        v.ref.model_version: pb.LifecycleState.Name(v.state).removeprefix("LIFECYCLE_STATE_").lower()
        for v in reply.versions
    }


async def _by_site(dsn: str, prediction_ids: list[str]) -> dict[str, dict[str, float]]:
    """(arm v version, site, scanner) → reads, sensitivity, calibration gap, over the demo's own predictions."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            """select p.arm || ' v' || p.model_version as arm, p.site_id as site, p.manufacturer_model as scanner,
                      count(*) as reads, avg(p.probability) as mean_probability, avg(r.label) as positive_rate,
                      count(*) filter (where r.label = 1) as positives,
                      count(*) filter (where r.label = 1 and p.decision = 1) as detected
               from ledger_predictions p join ledger_reads r on r.prediction_id = p.prediction_id
               where p.prediction_id = any($1::uuid[]) and p.arm in ('stable', 'canary') and r.label is not null
               group by 1, 2, 3 order by 1, 2, 3""",
            prediction_ids,
        )
    finally:
        await connection.close()
    return {
        f"{r['arm']} {r['site']} {r['scanner']}": {
            "reads": float(r["reads"]),
            "sensitivity": r["detected"] / r["positives"] if r["positives"] else float("nan"),
            "calibration_gap": abs(float(r["mean_probability"]) - float(r["positive_rate"])),
        }
        for r in rows
    }


async def _monitor_pass(dsn: str, bootstrap: str, reports: Path, block: int, model: str) -> list[Any]:
    """One pass of the drift and calibration monitors over v2's canary window; findings go to governance.

    v2 is judged against the reference profile its route table names (as the stack's runner does).
    """
    from kernel.serving import ServedVersion
    from services.monitors.runner.app import build_monitor_runner
    from services.monitors.runner.ports import MonitorTarget
    from services.monitors.runner.settings import MonitorRunnerSettings
    from services.monitors.runner.targets import FixedTargets
    from services.runtime.config import load_settings

    # What the route table says serves and judges v2 (once the canary is stopped it is off the table: then
    # the reference in Triton's version folder, which is what v2 was registered with).
    route = await _current_route(bootstrap, model)
    entry = next((s for s in route.served if s.version == "2"), None) if route is not None else None
    served = ServedVersion(**asdict(entry)) if entry is not None else ServedVersion("2", MODEL, 2)
    env = {
        "RADGUARD_POSTGRES_DSN": dsn,
        "RADGUARD_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RADGUARD_MONITOR_MODEL": model,
        "RADGUARD_MONITOR_VERSIONS": json.dumps(["2"]),
        "RADGUARD_MONITOR_ARMS": json.dumps(["canary"]),
        "RADGUARD_MONITOR_KINDS": json.dumps(["drift", "calibration"]),
        "RADGUARD_MONITOR_REPORTS_DIR": str(reports),
        "RADGUARD_MONITOR_BLOCK_SIZE": str(block),
        "RADGUARD_MONITOR_FOLLOW_ROUTES": "false",
        "RADGUARD_GRPC_PORT": "0",
        "RADGUARD_METRICS_ENABLED": "false",
    }
    from stack.settings import load_stack_settings

    env["RADGUARD_MONITOR_MODEL_REPO"] = str(load_stack_settings().model_repo)
    runner = await build_monitor_runner(load_settings(MonitorRunnerSettings, env))
    runner.targets = FixedTargets([MonitorTarget(model, "2", "canary", served)])
    try:
        issued = await runner.run_once()
        await runner.producer.flush()
    finally:
        await runner.close()
    return list(issued)


#: The smallest canary window the demo's monitor pass looks at.
_MIN_MONITOR_BLOCK = 30


def _report_findings(issued: list[Any], result: DemoResult) -> None:
    """Print the monitors' findings and keep them in the result."""
    for item in issued:
        f = item.finding
        where = most_shifted_subgroup(f.statistics)
        result.findings.append(
            {"kind": str(f.kind.value), "severity": str(f.severity.value), "summary": f.summary, "subgroup": where}
        )
        _say("finding", f"{f.kind.value} {f.severity.value}: {f.summary}")
        if where:
            _say("  where", f"the largest shift is in the subgroup {where}")


def most_shifted_subgroup(statistics: Any) -> str:
    """The subgroup (e.g. ``site=site-C``) with the largest statistic (KS D for drift), or "" for none."""
    per_subgroup = [st for st in statistics if st.subgroup]
    ks = [st for st in per_subgroup if st.name == "ks_statistic"]
    per_subgroup = ks or per_subgroup
    if not per_subgroup:
        return ""
    return str(max(per_subgroup, key=lambda st: st.value).subgroup)


async def _current_route(bootstrap: str, model: str) -> Any:
    from services.gateway.adapters.routes import read_routes

    return (await read_routes(bootstrap)).get(model)


async def run_demo(size: DemoSize, *, healthy: bool, seed: int, read_delay_scale: float) -> DemoResult:  # noqa: PLR0912, PLR0915 - one story, told in order
    """The story; raises StackError with one line when a step cannot go on."""
    from radguard.governance.v1 import governance_pb2 as pb
    from services.cli.governance_commands import version_from_repo
    from services.cli.simulate_commands import drive, require_service, stack_endpoints
    from services.cli.traffic import FeedbackReads, HospitalDriver, wait_for_ledger
    from sim import Hospital
    from stack.settings import load_stack_settings

    started = time.monotonic()
    settings = load_stack_settings()
    endpoints = stack_endpoints()
    governance_target = f"{settings.host}:{settings.governance_port}"
    for name, target in (
        ("gateway", endpoints.gateway),
        ("feedback service", endpoints.feedback),
        ("governance service", governance_target),
    ):
        await require_service(name, target)
    run = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:4]}"
    model = demo_model_name(run)
    result = DemoResult(healthy=healthy, model_name=model)
    gov = Governance(governance_target, _principals(run))
    reads = FeedbackReads(endpoints.feedback, endpoints.feedback_token)
    all_stats: list[DriverStats] = []

    def driver(scenario: str, next_index: int) -> HospitalDriver:
        return HospitalDriver(
            Hospital(scenario, seed=seed),
            endpoints.gateway,
            reads,
            gateway_token=endpoints.gateway_token,
            concurrency=4,
            model=model,
            read_delay_scale=read_delay_scale,
            next_index=next_index,
        )

    try:
        _out.rule(f"1. the registry: {model}, v1 in production, v2 registered, validated and approved")
        for n in (1, 2):
            message = version_from_repo(settings.model_repo, MODEL, n, model_name=model, policy=POLICY)
            await gov.stub.RegisterVersion(
                pb.RegisterVersionRequest(version=message, request_id=_rid(f"reg{n}")), metadata=gov.md("operator")
            )
            await _move(gov, model, str(n), pb.LIFECYCLE_STATE_VALIDATED)
            _say("registered", f"{model} v{n} (Triton {MODEL} version {n}, policy {POLICY}), validated")
        await _move(gov, model, "1", pb.LIFECYCLE_STATE_PRODUCTION, "board-1")
        _say("production", "v1 serves sites A, B and C")
        await _move(gov, model, "2", pb.LIFECYCLE_STATE_SHADOW, "board-2")
        _say("shadow", "v2 scores every study silently next to v1")

        _out.rule("2. shadow: the hospital's normal traffic")
        baseline = driver("baseline", 0)
        await drive(baseline, studies=size.shadow_studies, duration_s=None, rate=None, title="shadow traffic")
        all_stats.append(baseline.stats)
        _say("shadow", f"{baseline.stats.answered} studies answered, {baseline.stats.reads} reads recorded")
        await asyncio.sleep(2.0)  # the ledger catches up before the shadow evidence is checked

        _out.rule("3. canary")
        await _move(gov, model, "2", pb.LIFECYCLE_STATE_CANARY, "clinician")
        rollout = await gov.stub.StartRollout(
            pb.StartRolloutRequest(
                candidate=_ref(model, "2"),
                reason="canary of v2",
                request_id=_rid("start"),
            ),
            metadata=gov.md("operator"),
        )
        _say("canary", f"rollout {rollout.rollout_id}: v2 takes {rollout.weight_bp / 100:.0f}% of the studies")
        await _move(gov, model, "2", pb.LIFECYCLE_STATE_PRODUCTION, "board-1")
        _say("signed", "canary→production waits for the last step's gates")

        scenario = "baseline" if healthy else "cr90_protocol_change"
        if not healthy:
            _out.rule(f"4. {CHANGED_SITE} moves its {CHANGED_SCANNER} to a low-dose protocol")
        else:
            _out.rule("4. the hospital carries on as before")
        canary = driver(scenario, baseline.next_index)
        reports = settings.state_dir / "demo" / run / "reports"
        monitored = False
        while True:
            status = (
                await gov.stub.GetRollout(
                    pb.GetRolloutRequest(rollout_id=rollout.rollout_id), metadata=gov.md("operator")
                )
            ).status
            if status != pb.ROLLOUT_STATUS_RUNNING:
                break
            if canary.stats.sent >= size.max_canary_studies:
                raise StackError(f"the rollout still runs after {canary.stats.sent} canary-phase studies")
            await drive(canary, studies=size.batch, duration_s=None, rate=size.canary_rate, title="canary traffic")
            canary_answers = canary.stats.answered_by_arm.get(("canary", "2"), 0)
            if not healthy and not monitored and canary_answers >= size.monitor_block:
                await asyncio.sleep(2.0)
                issued = await _monitor_pass(
                    settings.postgres_dsn, settings.kafka_bootstrap, reports, size.monitor_block, model
                )
                monitored = True
                _report_findings(issued, result)
            step = await gov.stub.GetRollout(
                pb.GetRolloutRequest(rollout_id=rollout.rollout_id), metadata=gov.md("operator")
            )
            _say("canary", f"v2 at {step.weight_bp / 100:.0f}%, {canary.stats.answered} studies answered")
        all_stats.append(canary.stats)
        # A gate stopped the canary first: the monitors still look at the window v2 served (a block of at most
        # three quarters of its predictions, so that the ledger surely holds one).
        block = min(size.monitor_block, canary.stats.answered_by_arm.get(("canary", "2"), 0) * 3 // 4)
        if not healthy and not monitored and block >= _MIN_MONITOR_BLOCK:
            await asyncio.sleep(2.0)
            _report_findings(
                await _monitor_pass(settings.postgres_dsn, settings.kafka_bootstrap, reports, block, model), result
            )
        final = await gov.stub.GetRollout(
            pb.GetRolloutRequest(rollout_id=rollout.rollout_id), metadata=gov.md("operator")
        )
        result.rollout_status = pb.RolloutStatus.Name(final.status).removeprefix("ROLLOUT_STATUS_").lower()
        result.rollout_reasons = list(final.reasons)
        for reason in final.reasons:
            _say("decision", reason)

        _out.rule("5. after the decision")
        deadline = time.monotonic() + 30
        while True:
            route = await _current_route(settings.kafka_bootstrap, model)
            expected = "2" if healthy else "1"
            if route is not None and route.stable_version == expected and not route.canary_version:
                break
            if time.monotonic() > deadline:
                raise StackError(f"the route never settled on v{expected}: {route}")
            await asyncio.sleep(0.5)
        result.routes = {"stable": route.stable_version, "canary": route.canary_version, "revision": route.revision}
        _say("routes", f"revision {route.revision}: stable v{route.stable_version}, no canary")
        after = driver(scenario, canary.next_index)
        await drive(after, studies=size.after_studies, duration_s=None, rate=None, title="traffic after")
        all_stats.append(after.stats)
        result.after_answers = {f"{a} v{v}": n for (a, v), n in after.stats.answered_by_arm.items()}
        _say("gateway", f"the next {after.stats.answered} studies: {result.after_answers}")
        result.v2_state = (await _versions(gov, model)).get("2", "")
        _say("registry", f"v2 is {result.v2_state}")

        _out.rule("6. the books")
        prediction_ids = [i for s in all_stats for i in s.prediction_ids]
        read_ids = [i for s in all_stats for i in s.read_prediction_ids]
        merged = _merge(all_stats)
        predicted, read = await wait_for_ledger(settings.postgres_dsn, merged, timeout_s=60)
        result.sent = sum(s.sent for s in all_stats)
        for s in all_stats:
            for name, count in s.errors.items():
                result.errors[name] = result.errors.get(name, 0) + count
        result.answered, result.reads = len(prediction_ids), len(read_ids)
        result.ledger_predictions, result.ledger_reads = len(predicted), len(read)
        result.missing_predictions = len(set(prediction_ids) - predicted)
        result.missing_reads = len(set(read_ids) - read)
        result.by_site = await _by_site(settings.postgres_dsn, prediction_ids)
        verdict = await gov.stub.VerifyAudit(pb.VerifyAuditRequest(), metadata=gov.md("operator"))
        result.audit_ok, result.audit_entries, result.audit_reason = (
            verdict.ok,
            verdict.entries_checked,
            verdict.reason,
        )
        result.reports_dir = str(reports) if reports.exists() else ""
        result.dashboard_url = settings.dashboard_url
        result.review_pack = await _review_pack(
            f"{settings.host}:{settings.governance_port}",
            f"{settings.host}:{settings.monitor_port}",
            gov.tokens["operator"],
            model,
            "2",
            settings.state_dir / "demo" / run / f"review-{model}-2.html",
        )
    finally:
        await gov.close()
        await reads.close()
    result.wall_s = time.monotonic() - started
    return result


async def _review_pack(governance: str, monitoring: str, token: str, model: str, version: str, out: Path) -> str:
    """The board's review pack of ``version`` (as `radguard report review` writes it), or "" with the reason said."""
    from services.dashboard.adapters.apis import GovernanceApi, MonitoringApi
    from services.dashboard.review import render_review_pack

    gov, mon = GovernanceApi(governance, 30.0), MonitoringApi(monitoring, 30.0)
    try:
        html = await render_review_pack(gov, mon, token, model, version)
        await asyncio.to_thread(_write, out, html)
    except Exception as error:  # the pack is a pointer for the reader; the story itself is already told
        _say("review pack", f"not written: {type(error).__name__}: {str(error)[:200]}")
        return ""
    finally:
        await gov.close()
        await mon.close()
    _say("review pack", f"v{version}'s review pack for the board: {out}")
    return str(out)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _ref(model: str, version: str) -> Any:
    from radguard.common.v1 import common_pb2

    return common_pb2.ModelRef(model_name=model, model_version=version)


def _merge(all_stats: list[DriverStats]) -> DriverStats:
    from services.cli.traffic import DriverStats

    merged = DriverStats()
    for s in all_stats:
        merged.prediction_ids += s.prediction_ids
        merged.read_prediction_ids += s.read_prediction_ids
    return merged


def worst_canary_scanner(result: DemoResult, min_reads: int = 20) -> str | None:
    """The canary's (site, scanner) with the largest calibration gap among those with ``min_reads`` reads."""
    assessed = {
        key: row for key, row in result.by_site.items() if key.startswith("canary ") and row["reads"] >= min_reads
    }
    return max(assessed, key=lambda key: assessed[key]["calibration_gap"]) if assessed else None


def summary_table(result: DemoResult) -> Table:
    """The board's one table."""
    table = Table(title="radguard demo: summary", show_header=False, title_justify="left")
    table.add_column(style="cyan")
    table.add_column()
    ok = "[green]yes[/]"
    no = "[bold red]no[/]"
    table.add_row(
        "story", "healthy v2 promoted" if result.healthy else f"{CHANGED_SITE} {CHANGED_SCANNER} protocol change"
    )
    table.add_row("model", f"{result.model_name} (served by Triton {MODEL} versions 1 and 2)")
    table.add_row("rollout", f"{result.rollout_status}: {'; '.join(result.rollout_reasons) or '-'}")
    table.add_row("v2 now", result.v2_state)
    table.add_row(
        "route", f"stable v{result.routes.get('stable', '?')}, canary {result.routes.get('canary') or 'none'}"
    )
    table.add_row("after the decision", ", ".join(f"{k}: {v}" for k, v in sorted(result.after_answers.items())))
    for item in result.findings:
        where = f" [largest shift: {item['subgroup']}]" if item.get("subgroup") else ""
        table.add_row(f"finding ({item['kind']})", f"{item['severity']}: {item['summary']}{where}")
    if (worst := worst_canary_scanner(result)) is not None:
        gap = result.by_site[worst]["calibration_gap"]
        table.add_row("canary's worst scanner", f"{worst.removeprefix('canary v2 ')} (calibration gap {gap:.3f})")
    table.add_row("studies", f"{result.sent} sent, {result.answered} answered, {result.reads} reads recorded")
    table.add_row("errors", ", ".join(f"{k} {v}" for k, v in sorted(result.errors.items())) or "none")
    lost = result.missing_predictions + result.missing_reads
    table.add_row(
        "ledger",
        f"{result.ledger_predictions} predictions, {result.ledger_reads} reads: "
        + (
            ok
            if lost == 0
            else f"{no} ({result.missing_predictions} predictions, {result.missing_reads} reads missing)"
        ),
    )
    table.add_row(
        "audit chain", (ok if result.audit_ok else f"{no} {result.audit_reason}") + f" ({result.audit_entries} entries)"
    )
    table.add_row("monitor reports", result.reports_dir or "-")
    table.add_row("dashboard", result.dashboard_url or "-")
    table.add_row("review pack (v2)", result.review_pack or "-")
    table.add_row("wall time", f"{result.wall_s:.0f} s")
    return table


def demo(
    healthy: Annotated[
        bool, typer.Option("--healthy", help="the variant where v2 is healthy and becomes production")
    ] = False,
    fast: Annotated[bool, typer.Option("--fast", help="a shorter story (CI)")] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, help="the simulated hospital's seed")] = 21,
    read_delay_scale: Annotated[
        float, typer.Option("--read-delay-scale", min=0.0, help="wall seconds per simulated minute of read delay")
    ] = 0.0,
    up: Annotated[bool, typer.Option("--up/--no-up", help="bring the stack up first when it is not running")] = True,
    result_json: Annotated[Path | None, typer.Option("--result-json", help="also write the result here")] = None,
) -> None:
    """The governance story end to end on the running stack: canary, protocol change, rollback."""
    if up:
        from stack.manager import Stack
        from stack.settings import load_stack_settings

        stack = Stack(load_stack_settings())
        if any(s.state != "ready" for s in stack.status()):
            _say("stack", "bringing the stack up…")
            stack.up(progress=lambda component, message: None)
    result = asyncio.run(
        run_demo(FAST if fast else FULL, healthy=healthy, seed=seed, read_delay_scale=read_delay_scale)
    )
    _out.print(summary_table(result))
    if result_json is not None:
        result_json.write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
    good = result.missing_predictions == 0 and result.missing_reads == 0 and result.audit_ok
    if not good:
        raise typer.Exit(1)

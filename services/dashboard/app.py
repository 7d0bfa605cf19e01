"""The dashboard's HTTP application (aiohttp + Jinja2): pages, sign-in, actions and the review pack.

Every read goes through the governance API (as the signed-in person's token) or the monitor service's
query API; every action is a governance call, so roles, policy and audit are governance's. Forms carry the
session's CSRF token; a malformed form is answered 400 naming the field; an expired session goes back to
sign-in before anything is done.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from services.dashboard import charts, evidence
from services.dashboard.adapters.apis import ApiError, GovernanceApi, MonitoringApi
from services.dashboard.sessions import COOKIE, Session, SessionStore
from services.dashboard.settings import DashboardSettings

TEMPLATES = Path(__file__).with_name("templates")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_KINDS = ("", "drift", "calibration", "bias", "performance")
_ARMS = ("", "stable", "canary", "shadow")
_SEVERITIES = ("", "info", "warning", "breach")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SETTINGS = web.AppKey("settings", DashboardSettings)
GOVERNANCE = web.AppKey("governance", GovernanceApi)
MONITORING = web.AppKey("monitoring", MonitoringApi)
SESSIONS = web.AppKey("sessions", SessionStore)
JINJA = web.AppKey("jinja", jinja2.Environment)
PLOTLY_JS = web.AppKey("plotly_js", Path)
SESSION = web.RequestKey("session", Session)


class FormError(Exception):
    """A form field is missing or malformed (answered 400 naming it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def plotly_js_path() -> Path:
    """plotly.js as shipped inside the plotly Python package (served locally; no CDN)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise RuntimeError("the plotly package is not installed")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session: Session | None = request.get(SESSION)
    body = (
        request.app[JINJA]
        .get_template(template)
        .render(
            session=session,
            csrf=session.csrf if session else "",
            path=request.path_qs,
            generated_at=evidence.now_text(),
            **context,
        )
    )
    return web.Response(text=body, status=status, content_type="text/html", headers=_SECURITY_HEADERS)


_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _name(value: str, field: str) -> str:
    if not _NAME.match(value):
        raise web.HTTPNotFound(text=f"unknown {field}")
    return value


def _field(
    form: Any, name: str, *, pattern: re.Pattern[str] | None = None, limit: int = 200, required: bool = True
) -> str:
    value = form.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FormError(name, "required")
        return ""
    if not isinstance(value, str):
        raise FormError(name, "must be text")
    value = value.strip()
    if len(value) > limit or any(ord(c) < 32 for c in value):
        raise FormError(name, f"must be at most {limit} printable characters")
    if pattern is not None and not pattern.match(value):
        raise FormError(name, "malformed")
    return value


# --- middleware ------------------------------------------------------------------------------------------


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the live session; pages other than sign-in, health and static files need one."""
    store = request.app[SESSIONS]
    session = store.get(request.cookies.get(COOKIE))
    if session is not None:
        request[SESSION] = session
    public = request.path in ("/signin", "/healthz") or request.path.startswith("/static/")
    if session is None and not public:
        target = "/signin?next=" + quote(request.path_qs if request.method == "GET" else "/", safe="")
        # A POST on an expired session does nothing: back to sign-in (303 so the browser GETs it).
        raise web.HTTPSeeOther(target)
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors as pages: 404 for unknown things, 400 naming a form field, 403 for refusals."""
    try:
        return await handler(request)
    except FormError as error:
        return render(request, "error.html", status=400, title="Bad request", message=str(error))
    except web.HTTPNotFound as error:
        return render(request, "error.html", status=404, title="Not found", message=error.text or "not found")
    except ApiError as error:
        status = {
            "NOT_FOUND": 404,
            "INVALID_ARGUMENT": 400,
            "PERMISSION_DENIED": 403,
            "FAILED_PRECONDITION": 409,
            "UNAUTHENTICATED": 401,
        }.get(error.code, 502)
        title = {403: "Not allowed", 404: "Not found", 401: "Signed out", 409: "Not possible now"}.get(status, "Error")
        return render(request, "error.html", status=status, title=title, message=f"{error.code}: {error.details}")


def _session(request: web.Request) -> Session:
    session: Session | None = request.get(SESSION)
    if session is None:
        raise web.HTTPSeeOther("/signin")
    return session


async def _form(request: web.Request) -> Any:
    """The posted form after the CSRF check."""
    form = await request.post()
    session = _session(request)
    if not session.csrf_ok(str(form.get("csrf_token", ""))):
        raise web.HTTPForbidden(text="csrf_token: missing or not this session's; reload the page and try again")
    return form


# --- sign-in -------------------------------------------------------------------------------------------


async def signin_page(request: web.Request) -> web.Response:
    return render(request, "signin.html", title="Sign in", next=request.query.get("next", "/"), error="")


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = str(form.get("token", "")).strip()
    next_url = str(form.get("next", "/"))
    if not next_url.startswith("/") or next_url.startswith("//"):
        next_url = "/"
    if not token or len(token) > 512:
        return render(request, "signin.html", status=400, title="Sign in", next=next_url, error="token: required")
    try:
        principal, role = await request.app[GOVERNANCE].who_am_i(token)
    except ApiError as error:
        message = "token: not accepted by governance" if error.code == "UNAUTHENTICATED" else str(error)
        return render(request, "signin.html", status=401, title="Sign in", next=next_url, error=message)
    session_id, _ = request.app[SESSIONS].create(token, principal, role)
    response = web.HTTPSeeOther(next_url)
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="Strict",
        secure=request.app[SETTINGS].secure_cookies,
        path="/",
    )
    raise response


async def signout(request: web.Request) -> web.StreamResponse:
    await _form(request)
    request.app[SESSIONS].drop(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(COOKIE, path="/")
    raise response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def plotly_js(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(request.app[PLOTLY_JS], headers={"Cache-Control": "public, max-age=86400"})


# --- pages ---------------------------------------------------------------------------------------------


async def inventory(request: web.Request) -> web.Response:
    session = _session(request)
    gov, mon = request.app[GOVERNANCE], request.app[MONITORING]
    versions = await gov.versions(session.token)
    models: dict[str, list[dict[str, Any]]] = {}
    for v in versions:
        models.setdefault(v.ref.model_name, []).append(evidence.version_row(v))
    names = sorted(models)

    async def about(name: str) -> dict[str, Any]:
        rollout, (breaches, _) = await asyncio.gather(
            gov.rollout(session.token, name),
            mon.findings(model_name=name, min_severity="breach", page_size=1, omit_statistics=True),
        )
        routes = await gov.audit_all(session.token, subject=f"routes/{name}", action="routes.update")
        revisions = evidence.route_revisions(routes)
        return {
            "name": name,
            "versions": sorted(models[name], key=lambda r: r["version"]),
            "rollout": evidence.rollout_view(rollout) if rollout is not None else None,
            "routes": revisions[-1] if revisions else None,
            "breach": evidence.finding_row(breaches[0]) if breaches else None,
        }

    rows = await asyncio.gather(*(about(n) for n in names))
    return render(request, "inventory.html", title="Inventory", models=rows)


async def version_context(
    gov: GovernanceApi, mon: MonitoringApi, token: str, model: str, label: str, window: str = ""
) -> dict[str, Any]:
    """Everything the version page and the review pack show (API reads run concurrently)."""
    try:
        v = await gov.version(token, model, label)
    except ApiError as error:
        if error.code in ("NOT_FOUND", "INVALID_ARGUMENT"):
            raise web.HTTPNotFound(text=f"model '{model}' version '{label}' is not registered") from None
        raise
    arms = ("stable", "canary")

    def series(kind: str, metric: str, arm: str) -> Awaitable[Any]:
        return mon.series(model_name=model, model_version=label, arm=arm, kind=kind, metric=metric, limit=500)

    ece = [series("calibration", "ece", arm) for arm in arms]
    override = [series("performance", "override_rate", arm) for arm in arms]
    diagram_query: dict[str, str] = (
        {"finding_id": window} if window else {"model_name": model, "model_version": label, "arm": "stable"}
    )
    results = await asyncio.gather(
        *ece,
        *override,
        mon.reliability(**diagram_query),
        mon.reliability(model_name=model, model_version=label, arm="canary") if not window else asyncio.sleep(0),
        *(mon.findings(model_name=model, model_version=label, arm=arm, kind="bias", page_size=1) for arm in arms),
        *(mon.findings(model_name=model, model_version=label, arm=arm, kind="drift", page_size=1) for arm in arms),
        mon.findings(model_name=model, model_version=label, page_size=30, omit_statistics=True),
        mon.findings(model_name=model, model_version=label, kind="calibration", page_size=30, omit_statistics=True),
        gov.transitions(token, model, label),
        gov.renewals(token, model, label),
    )
    ece_s, override_s = results[0:2], results[2:4]
    diagram = results[4] if results[4] is not None else results[5]
    bias = {arm: found[0][0] for arm, found in zip(arms, results[6:8], strict=True) if found[0]}
    drift = {arm: found[0][0] for arm, found in zip(arms, results[8:10], strict=True) if found[0]}
    recent, windows, transitions = results[10][0], results[11][0], results[12]
    figures: dict[str, Any] = {}
    ece_series = {arm: evidence.points(s) for arm, s in zip(arms, ece_s, strict=True)}
    if any(ece_series.values()):
        figures["ece"] = charts.series_with_band("ECE over time (95% CI band)", "ECE", ece_series)
    override_series = {arm: evidence.points(s) for arm, s in zip(arms, override_s, strict=True)}
    if any(override_series.values()):
        figures["override"] = charts.series_with_band(
            "Override rate over time (95% CI band)", "override rate", override_series
        )
    if diagram is not None and diagram.bins:
        figures["reliability"] = evidence.reliability_figure(diagram)
    forest, forest_table = evidence.forest_figure(bias)
    if forest is not None:
        figures["forest"] = forest
    drift_tables: dict[str, list[dict[str, Any]]] = {}
    drift_reports: dict[str, str] = {}
    for arm, finding in drift.items():
        figure, table = evidence.drift_figure(finding)
        if figure is not None:
            figures[f"drift_{arm}"] = figure
        drift_tables[arm] = table
        if finding.has_report:
            drift_reports[arm] = finding.finding_id
    return {
        "v": evidence.version_row(v),
        "card": v.model_card,
        "intended_use": v.intended_use,
        "lineage": {
            "training_data": v.lineage.training_data,
            "code_revision": v.lineage.code_revision,
            "parent_version": v.lineage.parent_version,
        },
        "artifact": v.artifact_sha256,
        "threshold": v.operating_threshold,
        "calibration": {"temperature": v.calibration.temperature, "revision": v.calibration.revision},
        "validation_dataset": v.validation.dataset,
        "validation": evidence.metric_rows(v.validation.overall),
        "validation_subgroups": [
            {"subgroup": s.subgroup, **evidence.metric_rows([s.metric])[0]} for s in v.validation.subgroups
        ],
        "figures": figures,
        "forest_table": forest_table,
        "drift_tables": drift_tables,
        "drift_reports": drift_reports,
        "recent": [evidence.finding_row(f) for f in recent],
        "windows": [evidence.finding_row(f) for f in windows],
        "selected_window": window,
        "transitions": [evidence.transition_view(t) for t in transitions],
        "reference": evidence.reference_view(v.reference_profile),
        "renewals": [evidence.renewal_view(r) for r in results[13]],
    }


async def version_page(request: web.Request) -> web.Response:
    session = _session(request)
    model = _name(request.match_info["model"], "model")
    label = _name(request.match_info["version"], "version")
    window = request.query.get("window", "")
    if window and not re.match(r"^[0-9a-fA-F-]{36}$", window):
        raise FormError("window", "must be a finding id")
    started = time.perf_counter()
    context = await version_context(
        request.app[GOVERNANCE], request.app[MONITORING], session.token, model, label, window
    )
    query_ms = (time.perf_counter() - started) * 1000
    transitions = context["transitions"]
    for t in transitions:
        t["can_approve"] = t["pending"] and any(evidence.may_approve(session.role, raw) for raw in [_Unmet(t["unmet"])])
    for r in context["renewals"]:
        r["can_approve"] = r["pending"] and evidence.may_approve(session.role, _Unmet(r["unmet"]))
    response = render(request, "version.html", title=f"{model} {label}", model=model, query_ms=query_ms, **context)
    response.headers["Server-Timing"] = f"api;dur={query_ms:.1f}"
    return response


class _Unmet:
    """Adapter so :func:`evidence.may_approve` reads a view's unmet list like a Transition message."""

    def __init__(self, unmet: list[str]) -> None:
        self.unmet_requirements = unmet


async def rollout_page(request: web.Request) -> web.Response:
    session = _session(request)
    gov = request.app[GOVERNANCE]
    model = _name(request.match_info["model"], "model")
    versions = await gov.versions(session.token, model)
    if not versions:
        raise web.HTTPNotFound(text=f"model '{model}' is not registered")
    rollout, transitions, routes = await asyncio.gather(
        gov.rollout(session.token, model),
        gov.transitions(session.token, model),
        gov.audit_all(session.token, subject=f"routes/{model}", action="routes.update"),
    )
    revisions = evidence.route_revisions(routes)
    views = [evidence.transition_view(t) for t in transitions]
    for view, raw in zip(views, transitions, strict=True):
        view["can_approve"] = view["pending"] and evidence.may_approve(session.role, raw)
    figures = {"timeline": evidence.timeline_figure(revisions)} if revisions else {}
    return render(
        request,
        "rollout.html",
        title=f"{model} rollout",
        model=model,
        rollout=evidence.rollout_view(rollout) if rollout is not None else None,
        transitions=list(reversed(views)),
        revisions=list(reversed(revisions)),
        figures=figures,
        can_control=evidence.may_control_rollouts(session.role),
        versions=sorted(v.ref.model_version for v in versions),
    )


async def findings_page(request: web.Request) -> web.Response:
    q = request.query
    filters = {
        "model_name": q.get("model", ""),
        "model_version": q.get("version", ""),
        "kind": q.get("kind", ""),
        "arm": q.get("arm", ""),
        "min_severity": q.get("severity", ""),
    }
    for key, value in (("model", filters["model_name"]), ("version", filters["model_version"])):
        if value and not _NAME.match(value):
            raise FormError(key, "must be 1-128 letters, digits, '_', '.' or '-'")
    for key, value, allowed in (
        ("kind", filters["kind"], _KINDS),
        ("arm", filters["arm"], _ARMS),
        ("severity", filters["min_severity"], _SEVERITIES),
    ):
        if value not in allowed:
            raise FormError(key, f"must be one of {', '.join(a for a in allowed if a)}")
    page = q.get("page", "")
    if page and not page.isdigit():
        raise FormError("page", "malformed")
    found, next_token = await request.app[MONITORING].findings(
        **filters, page_size=100, page_token=page, omit_statistics=True
    )
    return render(
        request,
        "findings.html",
        title="Findings",
        findings=[evidence.finding_row(f) for f in found],
        filters={
            "model": filters["model_name"],
            "version": filters["model_version"],
            "kind": filters["kind"],
            "arm": filters["arm"],
            "severity": filters["min_severity"],
        },
        next_page=next_token,
        kinds=_KINDS,
        arms=_ARMS,
        severities=_SEVERITIES,
    )


async def audit_page(request: web.Request) -> web.Response:
    session = _session(request)
    gov = request.app[GOVERNANCE]
    q = request.query
    subject, action = q.get("subject", ""), q.get("action", "")
    for key, value in (("subject", subject), ("action", action)):
        if len(value) > 200 or any(ord(c) < 32 for c in value):
            raise FormError(key, "must be at most 200 printable characters")
    verdict, entries = await asyncio.gather(
        gov.verify(session.token), gov.audit_all(session.token, subject=subject, action=action)
    )
    rows = [evidence.audit_row(e) for e in reversed(entries[-500:])]
    return render(
        request,
        "audit.html",
        title="Audit trail",
        verdict={
            "ok": verdict.ok,
            "first_bad": verdict.first_bad_seq if verdict.HasField("first_bad_seq") else None,
            "reason": verdict.reason,
            "checked": verdict.entries_checked,
            "head": verdict.head_hash[:16],
        },
        entries=rows,
        total=len(entries),
        subject=subject,
        action=action,
    )


async def report_page(request: web.Request) -> web.StreamResponse:
    finding_id = request.match_info["finding_id"]
    if not re.match(r"^[0-9a-fA-F-]{36}$", finding_id):
        raise web.HTTPNotFound(text="unknown finding")
    content = await request.app[MONITORING].report(finding_id)
    # The Evidently page runs its own scripts; keep it in a sandboxed document of its own.
    return web.Response(
        body=content,
        content_type="text/html",
        headers={"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"},
    )


async def review_pack(request: web.Request) -> web.StreamResponse:
    from services.dashboard.review import render_review_pack

    session = _session(request)
    model = _name(request.match_info["model"], "model")
    label = _name(request.match_info["version"], "version")
    html = await render_review_pack(
        request.app[GOVERNANCE], request.app[MONITORING], session.token, model, label, request.app[JINJA]
    )
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"Content-Disposition": f'attachment; filename="review-{model}-{label}.html"'},
    )


# --- actions -------------------------------------------------------------------------------------------


async def approve_action(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    session = _session(request)
    renewal_id = _field(form, "renewal_id", pattern=_ID, required=False)
    transition_id = "" if renewal_id else _field(form, "transition_id", pattern=_ID)
    meaning = _field(form, "meaning")
    back = _field(form, "back", required=False, limit=300) or "/"
    await request.app[GOVERNANCE].approve(session.token, transition_id, meaning, renewal_id=renewal_id)
    raise web.HTTPSeeOther(back if back.startswith("/") and not back.startswith("//") else "/")


async def rollout_action(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    session = _session(request)
    command = request.match_info["command"]
    if command not in ("pause", "resume", "abort"):
        raise web.HTTPNotFound(text=f"unknown rollout action {command}")
    model = _field(form, "model", pattern=_NAME)
    rollout_id = _field(form, "rollout_id", pattern=_ID)
    reason = _field(form, "reason", required=False)
    await request.app[GOVERNANCE].rollout_command(session.token, command, rollout_id, reason)
    raise web.HTTPSeeOther(f"/models/{model}/rollout")


async def rollback_action(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    session = _session(request)
    model = _field(form, "model", pattern=_NAME)
    to_version = _field(form, "to_version", pattern=_NAME, required=False)
    reason = _field(form, "reason", required=False)
    await request.app[GOVERNANCE].rollback(session.token, model, to_version, reason)
    raise web.HTTPSeeOther(f"/models/{model}/rollout")


# --- assembly ------------------------------------------------------------------------------------------


def templates() -> jinja2.Environment:
    """The page templates (autoescaped)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html"]), enable_async=False
    )
    return env


def build_app(settings: DashboardSettings, governance: GovernanceApi, monitoring: MonitoringApi) -> web.Application:
    """The application wired to its two API clients."""
    app = web.Application(middlewares=[error_middleware, session_middleware], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[GOVERNANCE] = governance
    app[MONITORING] = monitoring
    app[SESSIONS] = SessionStore(settings.session_ttl_s)
    app[JINJA] = templates()
    app[PLOTLY_JS] = plotly_js_path()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/static/plotly.min.js", plotly_js)
    app.router.add_get("/signin", signin_page)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
    app.router.add_get("/", inventory)
    app.router.add_get("/models/{model}/versions/{version}", version_page)
    app.router.add_get("/models/{model}/versions/{version}/review-pack", review_pack)
    app.router.add_get("/models/{model}/rollout", rollout_page)
    app.router.add_get("/findings", findings_page)
    app.router.add_get("/reports/{finding_id}", report_page)
    app.router.add_get("/audit", audit_page)
    app.router.add_post("/actions/approve", approve_action)
    app.router.add_post("/actions/rollout/{command}", rollout_action)
    app.router.add_post("/actions/rollback", rollback_action)

    async def close_clients(_: web.Application) -> None:
        await governance.close()
        await monitoring.close()

    app.on_cleanup.append(close_clients)
    return app

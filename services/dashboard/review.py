"""The review pack: one self-contained HTML file (plotly.js and every figure inside) for a board meeting.

Used by the dashboard's button and by ``radguard report review``; it reads the same APIs as the pages.
"""

from __future__ import annotations

import jinja2

from services.dashboard import evidence
from services.dashboard.adapters.apis import GovernanceApi, MonitoringApi
from services.dashboard.app import plotly_js_path, templates, version_context


async def render_review_pack(
    governance: GovernanceApi,
    monitoring: MonitoringApi,
    token: str,
    model: str,
    version: str,
    env: jinja2.Environment | None = None,
) -> str:
    """The pack's HTML for one version (raises aiohttp's HTTPNotFound for an unknown version)."""
    context = await version_context(governance, monitoring, token, model, version)
    rollout = await governance.rollout(token, model)
    routes = await governance.audit_all(token, subject=f"routes/{model}", action="routes.update")
    revisions = evidence.route_revisions(routes)
    if revisions:
        context["figures"]["timeline"] = evidence.timeline_figure(revisions)
    verdict = await governance.verify(token)
    env = env or templates()
    return env.get_template("review.html").render(
        model=model,
        plotly_js=plotly_js_path().read_text(encoding="utf-8"),
        rollout=evidence.rollout_view(rollout)
        if rollout is not None and rollout.candidate.model_version == version
        else None,
        revisions=revisions,
        verdict={"ok": verdict.ok, "checked": verdict.entries_checked, "reason": verdict.reason},
        generated_at=evidence.now_text(),
        **context,
    )

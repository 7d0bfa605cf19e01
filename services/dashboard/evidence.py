"""Turns API answers into what the pages show: tables, figures and the review pack's content.

Pure functions over protobuf messages from the two APIs; the handlers fetch, these shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from services.dashboard import charts
from services.dashboard.adapters.apis import DECISION_NAMES, OUTCOME_NAMES, ROLE_NAMES, ROLLOUT_NAMES, STATE_NAMES

#: Who may press which button (the governance service's own rules; it refuses anyone else anyway).
ROLLOUT_ROLES = frozenset({"operator", "board", "service"})
APPROVER_ROLES = frozenset({"board", "clinician"})
_FROM_ROLES = re.compile(r"from (?P<roles>[a-z_ ]+?) for ")
FOREST_METRICS = ("sensitivity", "specificity")


def when(stamp: Timestamp | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SSZ`` ("-" when unset)."""
    if stamp is None or (not stamp.seconds and not stamp.nanos):
        return "-"
    return stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat()


def share(bp: int) -> str:
    return f"{bp / 100:.1f}%".replace(".0%", "%")


def may_control_rollouts(role: str) -> bool:
    return role in ROLLOUT_ROLES


def may_approve(role: str, transition: Any) -> bool:
    """Whether ``role`` can help a pending transition: a role its unmet approvals name (or any approver)."""
    if role not in APPROVER_ROLES:
        return False
    named = set()
    for text in transition.unmet_requirements:
        match = _FROM_ROLES.search(text)
        if match:
            named |= {r.strip() for r in match["roles"].split(" or ")}
    return not named or role in named


def version_row(v: Any) -> dict[str, Any]:
    return {
        "model": v.ref.model_name,
        "version": v.ref.model_version,
        "state": STATE_NAMES.get(v.state, "unspecified"),
        "registered_by": v.registered_by,
        "registered_at": when(v.registered_at),
        "changed_at": when(v.state_changed_at),
        "policy": v.policy_ref,
    }


def metric_rows(metrics: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": m.name,
            "value": f"{m.value:.3f}",
            "ci": f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.HasField("ci_low") and m.HasField("ci_high") else "-",
            "level": f"{m.ci_level:.0%}" if m.HasField("ci_level") else "",
            "support": m.support,
        }
        for m in metrics
    ]


def rollout_view(r: Any) -> dict[str, Any]:
    return {
        "id": r.rollout_id,
        "candidate": r.candidate.model_version,
        "stable": r.stable_version,
        "status": ROLLOUT_NAMES.get(r.status, "unspecified"),
        "step": r.step_index + 1,
        "steps": [{"n": i + 1, "weight": share(s.weight_bp), "min_reads": s.min_reads} for i, s in enumerate(r.plan)],
        "weight": share(r.weight_bp),
        "decision": DECISION_NAMES.get(r.last_decision, "unspecified"),
        "gates": [
            {
                "gate": g.gate,
                "outcome": OUTCOME_NAMES.get(g.outcome, "unspecified"),
                "observed": f"{g.observed:.4f}",
                "limit": f"{g.limit:.4f}",
                "detail": g.detail,
            }
            for g in r.gates
        ],
        "reasons": list(r.reasons),
        "started_by": r.started_by,
        "started_at": when(r.started_at),
        "updated_at": when(r.updated_at),
        "policy": r.policy_ref,
        "active": r.status in (1, 2),
        "paused": r.status == 2,
    }


def reference_view(profile: Any) -> dict[str, Any]:
    """A ReferenceProfile as the version page shows it: where, which bytes, which period, chosen by whom."""
    period = profile.period if profile.HasField("period") else None
    text = "period not recorded"
    if period is not None:
        dates = f"{when(period.start_time)} .. {when(period.end_time)}; " if period.HasField("start_time") else ""
        text = (
            f"{period.description}; {dates}labelled by {period.labelled_by}; {period.studies:,} studies, "
            f"{period.reads:,} reads, {period.read_positives:,} positive; chosen by {period.chosen_by or '-'}"
        )
    return {"uri": profile.uri, "sha256": profile.sha256[:12] + "…", "period": text}


def renewal_view(r: Any) -> dict[str, Any]:
    """One reference renewal: what it proposes, what it replaces, its signatures and what it still needs."""
    from services.dashboard.adapters.apis import TRANSITION_NAMES

    return {
        "id": r.renewal_id,
        "version": r.model.model_version,
        "proposed": reference_view(r.proposed),
        "previous": reference_view(r.previous),
        "status": TRANSITION_NAMES.get(r.status, "unspecified"),
        "pending": r.status == 1,
        "requested_by": r.requested_by,
        "requested_at": when(r.requested_at),
        "reason": r.reason,
        "unmet": list(r.unmet_requirements),
        "decided_at": when(r.decided_at) if r.HasField("decided_at") else "",
        "route_revision": r.route_revision,
        "rejection_reason": r.rejection_reason,
        "approvals": [
            {
                "signer": a.signer,
                "role": ROLE_NAMES.get(a.role, "?"),
                "meaning": a.meaning,
                "signed_at": when(a.signed_at),
                "algorithm": a.algorithm,
                "signature": a.signature.hex()[:32] + "…",
            }
            for a in r.approvals
        ],
    }


def transition_view(t: Any) -> dict[str, Any]:
    from services.dashboard.adapters.apis import TRANSITION_NAMES

    return {
        "id": t.transition_id,
        "version": t.model.model_version,
        "from": STATE_NAMES.get(t.from_state, "?"),
        "to": STATE_NAMES.get(t.to_state, "?"),
        "status": TRANSITION_NAMES.get(t.status, "unspecified"),
        "requested_by": t.requested_by,
        "requested_at": when(t.requested_at),
        "reason": t.reason,
        "unmet": list(t.unmet_requirements),
        "pending": t.status == 1,
        "approvals": [
            {
                "signer": a.signer,
                "role": ROLE_NAMES.get(a.role, "?"),
                "meaning": a.meaning,
                "signed_at": when(a.signed_at),
                "algorithm": a.algorithm,
                "key_id": a.key_id,
                "signature": a.signature.hex()[:32] + "…",
            }
            for a in t.approvals
        ],
    }


def audit_row(e: Any) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "time": when(e.time),
        "actor": e.actor,
        "role": ROLE_NAMES.get(e.actor_role, "?"),
        "action": e.action,
        "subject": e.subject,
        "after": _short_json(e.after_json),
        "hash": e.hash[:16],
    }


def _short_json(text: str, limit: int = 240) -> str:
    if not text:
        return ""
    try:
        compact = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    except ValueError:
        compact = text
    return compact if len(compact) <= limit else compact[: limit - 1] + "…"


def route_revisions(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """The route tables' history from ``routes.update`` audit entries, oldest first."""
    out = []
    for e in sorted(entries, key=lambda x: x.seq):
        try:
            table = json.loads(e.after_json)
        except ValueError:
            continue
        stable, canary = str(table.get("stable_version", "")), str(table.get("canary_version", ""))
        weight = int(table.get("canary_weight_bp", 0) or 0)
        shares: dict[str, float] = {}
        if stable:
            shares[stable] = (10000 - (weight if canary else 0)) / 10000
        if canary:
            shares[canary] = shares.get(canary, 0.0) + weight / 10000
        out.append(
            {
                "seq": e.seq,
                "time": when(e.time),
                "iso": iso(e.time),
                "revision": table.get("revision"),
                "stable": stable or "-",
                "canary": canary or "-",
                "weight": share(weight) if canary else "-",
                "shadows": ", ".join(table.get("shadow_versions", []) or []) or "-",
                "reason": str(table.get("reason", "")),
                "actor": e.actor,
                "shares": shares,
            }
        )
    return out


def timeline_figure(revisions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return charts.route_timeline("What served when (share per version)", [(r["iso"], r["shares"]) for r in revisions])


def finding_row(f: Any) -> dict[str, Any]:
    return {
        "id": f.finding_id,
        "kind": f.kind,
        "model": f.model_name,
        "version": f.model_version,
        "arm": f.arm,
        "severity": f.severity,
        "summary": f.summary,
        "window": f"{when(f.window_start)} – {when(f.window_end)}",
        "count": f.window_count,
        "labelled": f.window_labelled,
        "created": when(f.created_at),
        "has_report": f.has_report,
    }


def points(series: Sequence[Any]) -> list[charts.Point]:
    return [
        charts.Point(
            at=iso(p.window_end if p.HasField("window_end") else p.created_at),
            value=p.value,
            low=p.ci_low if p.HasField("ci_low") else None,
            high=p.ci_high if p.HasField("ci_high") else None,
        )
        for p in series
    ]


def reliability_figure(diagram: Any) -> dict[str, Any]:
    bins = [
        (
            b.mean_predicted,
            b.observed_rate,
            b.ci_low if b.HasField("ci_low") else None,
            b.ci_high if b.HasField("ci_high") else None,
            b.count,
        )
        for b in diagram.bins
    ]
    f = diagram.finding
    title = f"Reliability diagram, {f.arm} window ending {when(f.window_end)}"
    return charts.reliability_diagram(title, bins)


def forest_figure(findings_by_arm: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Subgroup sensitivity and specificity with CIs per arm (latest bias finding of each), and a table."""
    rows: list[charts.Interval] = []
    table: list[dict[str, Any]] = []
    overall: float | None = None
    for arm, finding in findings_by_arm.items():
        for s in finding.statistics:
            if s.name not in FOREST_METRICS or not s.subgroup:
                continue
            low = s.ci_low if s.HasField("ci_low") else None
            high = s.ci_high if s.HasField("ci_high") else None
            rows.append(charts.Interval(f"{s.name} · {s.subgroup}", f"{arm}", s.value, low, high))
            table.append(
                {
                    "arm": arm,
                    "metric": s.name,
                    "subgroup": s.subgroup,
                    "value": f"{s.value:.3f}",
                    "ci": f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else "-",
                    "n": s.n if s.HasField("n") else "",
                    "severity": s.severity,
                }
            )
        for s in finding.statistics:
            if s.name == "sensitivity" and not s.subgroup and arm == "stable":
                overall = s.value
    if not rows:
        return None, table
    figure = charts.forest_plot(
        "Subgroups: sensitivity and specificity (95% CI; dashed: overall sensitivity, stable)", rows, overall
    )
    return figure, table


def drift_figure(finding: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Per-descriptor drift of one drift finding (subgroups such as site or scanner kept apart)."""
    features: list[tuple[str, float, bool]] = []
    table = []
    for s in finding.statistics:
        if not s.feature or not (s.HasField("p_value_adjusted") or s.HasField("p_value")):
            continue
        p = s.p_value_adjusted if s.HasField("p_value_adjusted") else s.p_value
        moved = s.severity in ("warning", "breach") or p < 0.05
        label = s.feature + (f" [{s.subgroup}]" if s.subgroup else "")
        features.append((label, p, moved))
        table.append(
            {
                "feature": s.feature,
                "subgroup": s.subgroup or "all",
                "test": s.test,
                "statistic": f"{s.value:.4f}",
                "p": f"{p:.3g}",
                "severity": s.severity,
                "moved": moved,
            }
        )
    if not features:
        return None, table
    features.sort(key=lambda f: f[1])
    top = features[:40]
    return charts.drift_bars(
        f"Drift per descriptor ({finding.arm}, window ending {when(finding.window_end)})", top
    ), table


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")

"""EvidenceSource over the ledger (``ledger_predictions`` ⨝ latest ``ledger_reads``) and ``monitor_findings``.

A prediction's read is its latest read by ``read_time``; an override is a read whose outcome is
``override``, or, for reads without that outcome, a label that disagrees with the decision. Subgroup
attributes are named by the shared vocabulary (:mod:`kernel.vocabulary`): site, manufacturer, scanner model,
sex and age band, with the labels the gateway wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from governance.domain.gates import ArmEvidence, FindingRef
from kernel import vocabulary

#: Upper bound of predictions one window reads (newest first beyond it are ignored).
MAX_WINDOW = 200_000

_EVIDENCE = """
select p.probability, p.decision, p.manufacturer, p.manufacturer_model, p.site_id, p.sex,
       p.age_band, r.label, r.outcome
from ledger_predictions p
left join lateral (
    select label, outcome from ledger_reads lr
    where lr.prediction_id = p.prediction_id
    order by lr.read_time desc, lr.event_time desc limit 1
) r on true
where p.model_name = $1 and p.model_version = $2 and p.arm = $3 and p.event_time >= $4
order by p.event_time
limit $5
"""

_BREACHES = """
select finding_id::text as finding_id, kind, summary from monitor_findings
where model_name = $1 and model_version = $2 and severity = 'breach'
  and coalesce(window_end, created_at) >= $3
order by created_at
"""


class PostgresEvidenceSource:
    """Arm evidence and open breach findings from the monitors' tables."""

    def __init__(self, pool: asyncpg.Pool, max_window: int = MAX_WINDOW) -> None:
        self._pool = pool
        self._max_window = max_window

    async def arm_evidence(self, model_name: str, version: str, arm: str, since: datetime) -> ArmEvidence:
        rows = await self._pool.fetch(_EVIDENCE, model_name, version, arm, since, self._max_window)
        labels: list[int | None] = []
        decisions: list[bool] = []
        overrides: list[bool | None] = []
        for row in rows:
            decision = bool(row["decision"]) if row["decision"] is not None else row["probability"] >= 0.5
            decisions.append(decision)
            label = row["label"]
            labels.append(None if label is None else int(label))
            if label is None:
                overrides.append(None)
            elif row["outcome"] in ("agree", "override"):
                overrides.append(row["outcome"] == "override")
            else:
                overrides.append(bool(label) != decision)
        return ArmEvidence(
            scores=[float(r["probability"]) for r in rows],
            labels=labels,
            decisions=decisions,
            overrides=overrides,
            subgroups={
                vocabulary.SITE: [r["site_id"] for r in rows],
                vocabulary.MANUFACTURER: [r["manufacturer"] for r in rows],
                vocabulary.MANUFACTURER_MODEL: [r["manufacturer_model"] for r in rows],
                vocabulary.SEX: [r["sex"] for r in rows],
                vocabulary.AGE_BAND: [r["age_band"] for r in rows],
            },
        )

    async def open_breaches(self, model_name: str, version: str, since: datetime) -> Sequence[FindingRef]:
        rows = await self._pool.fetch(_BREACHES, model_name, version, since)
        return [FindingRef(r["finding_id"], r["kind"], True, r["summary"]) for r in rows]

"""SQL over the findings table shared by the runner's store and ``radguard findings``.

A module of text only: the CLI lists findings with it without importing the monitors' statistics (scipy,
numpy) or the Kafka client that the store's module brings in.
"""

from __future__ import annotations

#: The newest findings, optionally of one model and one severity: ($1 model or null, $2 severity or null, $3 limit).
RECENT_FINDINGS = """
select finding_id::text as finding_id, kind, model_name, model_version, arm, severity, summary, window_count,
       window_labelled, report_uri, created_at
from monitor_findings
where ($1::text is null or model_name = $1) and ($2::text is null or severity = $2)
order by created_at desc, finding_id desc
limit $3
"""

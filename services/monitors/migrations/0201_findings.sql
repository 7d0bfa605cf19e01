-- Findings of the monitors (drift, calibration, bias, performance): one row per monitor, version, arm and
-- window. The same finding is published on radguard.findings.v1; the id is the event's id, so a republish
-- after a crash cannot duplicate a row.

create table monitor_findings (
    finding_id uuid primary key,
    kind text not null check (kind in ('drift', 'calibration', 'bias', 'performance')),
    model_name text not null,
    model_version text not null,
    arm text not null,
    window_start timestamptz,
    window_end timestamptz,
    window_count integer not null check (window_count >= 0),
    window_labelled integer not null check (window_labelled >= 0 and window_labelled <= window_count),
    severity text not null check (severity in ('info', 'warning', 'breach')),
    summary text not null,
    statistics jsonb not null,
    spec_ref text not null,
    report_uri text not null default '',
    created_at timestamptz not null default now()
);

create index monitor_findings_model_idx on monitor_findings (model_name, created_at desc);
create index monitor_findings_version_idx on monitor_findings (model_name, model_version, arm, created_at desc);
create index monitor_findings_created_idx on monitor_findings (created_at desc);

-- Findings leave through an outbox: the runner writes a finding, its outbox row and its charts' state in one
-- transaction, and a relay publishes pending rows to radguard.findings.v1 (so a finding stored while Kafka
-- is down is published when Kafka returns).

create table monitor_findings_outbox (
    id bigint generated always as identity primary key,
    event_id uuid not null,
    topic text not null,
    key bytea,
    payload bytea not null,
    -- Kafka headers as [[name, value], ...]; values are ASCII text.
    headers jsonb not null default '[]',
    created_at timestamptz not null default now(),
    published_at timestamptz,
    attempts integer not null default 0
);

create index monitor_findings_outbox_pending on monitor_findings_outbox (id) where published_at is null;
create index monitor_findings_outbox_published on monitor_findings_outbox (published_at)
    where published_at is not null;

-- One CUSUM chart per monitor of each target (model version and arm), fed one step per block of new,
-- non-overlapping predictions. The block cursor (the newest prediction judged) is the same for every
-- monitor of a target; it is kept on each row so a row alone says what its chart has seen.
create table monitor_sequential_state (
    model_name text not null,
    model_version text not null,
    arm text not null,
    kind text not null check (kind in ('drift', 'calibration', 'bias', 'performance')),
    statistic double precision not null check (statistic >= 0),
    steps integer not null check (steps >= 0),
    alarms integer not null check (alarms >= 0),
    since_alarm integer not null check (since_alarm >= 0),
    cusum_k double precision not null,
    cusum_h double precision not null,
    last_event_time timestamptz,
    last_prediction_id text not null,
    updated_at timestamptz not null default now(),
    primary key (model_name, model_version, arm, kind)
);

-- Feedback: radiologists' reads, one per client idempotency key, and the outbox their ReadEvents leave
-- through. A read and its outbox row are written in one transaction; a relay publishes pending outbox
-- rows to Kafka and marks them published (at least once; consumers deduplicate on the event id).

create table feedback_reads (
    read_id uuid primary key,
    idempotency_key text not null unique,
    prediction_id uuid not null,
    reader_pseudonym text not null default '',
    outcome text not null check (outcome in ('agree', 'override', 'correct')),
    label smallint not null check (label in (0, 1)),
    finding_category text,
    finding_x_min double precision,
    finding_y_min double precision,
    finding_x_max double precision,
    finding_y_max double precision,
    finding_size_mm double precision,
    read_time timestamptz not null,
    recorded_at timestamptz not null,
    -- A location is all four coordinates or none; a size or location needs a category.
    check (num_nulls(finding_x_min, finding_y_min, finding_x_max, finding_y_max) in (0, 4)),
    check (finding_category is not null or num_nonnulls(finding_x_min, finding_size_mm) = 0)
);

create index feedback_reads_prediction on feedback_reads (prediction_id);

create table feedback_outbox (
    id bigint generated always as identity primary key,
    event_id uuid not null,
    topic text not null,
    key bytea,
    payload bytea not null,
    -- Kafka headers as [[name, value], ...] (trace context); values are ASCII text.
    headers jsonb not null default '[]',
    created_at timestamptz not null default now(),
    published_at timestamptz,
    attempts integer not null default 0
);

-- The relay reads only pending rows, oldest first.
create index feedback_outbox_pending on feedback_outbox (id) where published_at is null;
-- Pruning finds old published rows.
create index feedback_outbox_published on feedback_outbox (published_at) where published_at is not null;

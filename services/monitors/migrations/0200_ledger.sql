-- The event ledger: every prediction and every radiologist read, once each (unique on the event's id),
-- plus the Kafka offsets each consumer group has written up to. The ledger writer commits a batch's rows
-- and its offsets in one transaction and resumes from these offsets, never from Kafka's.

create table ledger_predictions (
    prediction_id uuid primary key,
    event_time timestamptz not null,
    model_name text not null,
    model_version text not null,
    arm text not null check (arm in ('unspecified', 'stable', 'canary', 'shadow')),
    study_uid text not null,
    series_uid text not null,
    accession text not null,
    patient_pseudonym text not null,
    sex text not null check (sex in ('unspecified', 'female', 'male', 'other')),
    age_years integer,
    age_band text not null,
    site_id text not null,
    modality text not null,
    body_part text not null,
    manufacturer text not null,
    manufacturer_model text not null,
    protocol_name text not null,
    view_position text not null,
    pixel_spacing_row_mm double precision not null,
    pixel_spacing_col_mm double precision not null,
    raw_score double precision not null,
    probability double precision not null,
    decision smallint check (decision in (0, 1)),
    threshold double precision not null,
    descriptors jsonb not null,
    embedding real[] not null,
    latency_ms double precision not null,
    route_revision bigint not null,
    request_id text not null,
    served_prediction_id uuid,
    producer text not null,
    trace_id text not null,
    -- Where the event was first consumed from (a replay keeps the first).
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    -- When the row was written; minus event_time, the pipeline's end-to-end lag.
    recorded_at timestamptz not null default clock_timestamp()
);

-- The monitors' windows: per model version and arm over time, and per subgroup within a version.
create index ledger_predictions_version_arm_time on ledger_predictions (model_name, model_version, arm, event_time);
create index ledger_predictions_time on ledger_predictions (event_time);
create index ledger_predictions_site on ledger_predictions (model_name, model_version, site_id, event_time);
create index ledger_predictions_scanner
    on ledger_predictions (model_name, model_version, manufacturer, manufacturer_model, event_time);
create index ledger_predictions_sex_age on ledger_predictions (model_name, model_version, sex, age_band, event_time);
-- Pairs a shadow prediction with the served one of the same request.
create index ledger_predictions_served on ledger_predictions (served_prediction_id)
    where served_prediction_id is not null;

create table ledger_reads (
    read_id uuid primary key,
    -- No foreign key on purpose: a read may arrive before its prediction (an orphan until then).
    prediction_id uuid not null,
    event_time timestamptz not null,
    read_time timestamptz not null,
    reader_pseudonym text not null,
    outcome text not null check (outcome in ('unspecified', 'agree', 'override', 'correct')),
    label smallint check (label in (0, 1)),
    finding_category text not null,
    finding_x_min double precision,
    finding_y_min double precision,
    finding_x_max double precision,
    finding_y_max double precision,
    finding_size_mm double precision,
    idempotency_key text not null,
    producer text not null,
    trace_id text not null,
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    recorded_at timestamptz not null default clock_timestamp()
);

-- The join (a prediction's latest read) and time windows over reads.
create index ledger_reads_prediction on ledger_reads (prediction_id, read_time desc, read_id desc);
create index ledger_reads_read_time on ledger_reads (read_time);

-- Consumed records that could not become rows, with the reason (nothing is dropped silently).
create table ledger_rejects (
    consumer_group text not null,
    kafka_topic text not null,
    kafka_partition integer not null,
    kafka_offset bigint not null,
    reason text not null,
    payload bytea,
    recorded_at timestamptz not null default clock_timestamp(),
    primary key (consumer_group, kafka_topic, kafka_partition, kafka_offset)
);

-- Per consumer group and partition: the next offset to read, and running counts of what was consumed.
create table ledger_consumer_offsets (
    consumer_group text not null,
    topic text not null,
    partition integer not null check (partition >= 0),
    next_offset bigint not null check (next_offset >= 0),
    records bigint not null default 0,
    duplicates bigint not null default 0,
    rejected bigint not null default 0,
    updated_at timestamptz not null default now(),
    primary key (consumer_group, topic, partition)
);

-- A prediction with its read: the latest read by read time (a later read supersedes an earlier one),
-- null read columns while it has none. read_count says how many reads it has.
create view ledger_labelled_predictions as
select
    p.*,
    r.read_id,
    r.read_time,
    r.label,
    r.outcome,
    r.reader_pseudonym,
    r.read_count
from ledger_predictions p
left join lateral (
    select
        lr.read_id,
        lr.read_time,
        lr.label,
        lr.outcome,
        lr.reader_pseudonym,
        count(*) over () as read_count
    from ledger_reads lr
    where lr.prediction_id = p.prediction_id
    order by lr.read_time desc, lr.read_id desc
    limit 1
) r on true;

-- Reads whose prediction the ledger has not (yet) seen.
create view ledger_orphan_reads as
select r.*
from ledger_reads r
where not exists (select 1 from ledger_predictions p where p.prediction_id = r.prediction_id);

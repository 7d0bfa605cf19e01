-- Governance: the model registry, lifecycle transitions and their e-signed approvals, rollouts, route tables
-- (every revision kept: "which version served which arm at time T"), the append-only audit chain, the
-- outbox of route tables and audit entries for Kafka, and idempotent command results.
--
-- Records are stored as their JSON form (governance.domain.codec) in `doc`, with the columns queries
-- filter on alongside; `row_version` guards concurrent updates (optimistic concurrency).

create table gov_versions (
    model_name text not null,
    version text not null,
    state text not null check (state in
        ('registered', 'validated', 'shadow', 'canary', 'production', 'retired', 'rolled_back', 'rejected')),
    registered_at timestamptz not null,
    row_version bigint not null,
    doc jsonb not null,
    primary key (model_name, version)
);

create index gov_versions_registered on gov_versions (registered_at desc, model_name desc, version desc);

create table gov_transitions (
    transition_id text primary key,
    model_name text not null,
    version text not null,
    status text not null check (status in ('pending', 'applied', 'rejected')),
    requested_at timestamptz not null,
    row_version bigint not null,
    doc jsonb not null,
    foreign key (model_name, version) references gov_versions (model_name, version)
);

-- At most one pending transition per version.
create unique index gov_transitions_one_pending on gov_transitions (model_name, version) where status = 'pending';
create index gov_transitions_version on gov_transitions (model_name, version, requested_at);

create table gov_approvals (
    approval_id text primary key,
    transition_id text not null references gov_transitions (transition_id),
    signer text not null,
    signed_at timestamptz not null,
    doc jsonb not null
);

create index gov_approvals_transition on gov_approvals (transition_id, signed_at);

create table gov_rollouts (
    rollout_id text primary key,
    model_name text not null,
    status text not null check (status in ('running', 'paused', 'completed', 'aborted')),
    started_at timestamptz not null,
    row_version bigint not null,
    doc jsonb not null
);

-- At most one running or paused rollout per model.
create unique index gov_rollouts_one_active on gov_rollouts (model_name) where status in ('running', 'paused');
create index gov_rollouts_model on gov_rollouts (model_name, started_at desc);

create table gov_routes (
    model_name text not null,
    revision bigint not null check (revision >= 1),
    updated_at timestamptz not null,
    doc jsonb not null,
    primary key (model_name, revision)
);

create table gov_audit (
    seq bigint primary key check (seq >= 1),
    prev_hash text not null,
    hash text not null,
    actor text not null,
    actor_role text not null,
    action text not null,
    subject text not null,
    before_json text not null,
    after_json text not null,
    time timestamptz not null,
    request_id text not null
);

create index gov_audit_subject on gov_audit (subject, seq);
create index gov_audit_time on gov_audit (time);

-- The chain head, kept apart from the entries: appends lock this row (serialising seq and prev_hash), and
-- verification compares the last entry with it, so truncating the log is detected too.
create table gov_audit_head (
    id smallint primary key check (id = 1),
    seq bigint not null,
    hash text not null
);

insert into gov_audit_head (id, seq, hash) values (1, 0, repeat('0', 64));

create function gov_audit_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'gov_audit is append-only: % refused', tg_op using errcode = 'insufficient_privilege';
end
$$;

create trigger gov_audit_no_update_delete before update or delete on gov_audit
    for each row execute function gov_audit_append_only();
create trigger gov_audit_no_truncate before truncate on gov_audit
    for each statement execute function gov_audit_append_only();

create table gov_outbox (
    id bigint generated always as identity primary key,
    kind text not null check (kind in ('route', 'audit')),
    key text not null,
    payload jsonb not null,
    created_at timestamptz not null default clock_timestamp(),
    published_at timestamptz
);

create index gov_outbox_pending on gov_outbox (id) where published_at is null;

create table gov_requests (
    request_id text primary key,
    result jsonb not null,
    created_at timestamptz not null default clock_timestamp()
);

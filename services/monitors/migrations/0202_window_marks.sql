-- The window the monitor runner judged last, per model version and arm. A pass that finds the same window
-- again (same predictions, same reads) issues nothing; keeping the mark here makes that hold across
-- restarts of the runner, which would otherwise repeat its latest findings once.

create table monitor_window_marks (
    model_name text not null,
    model_version text not null,
    arm text not null,
    window_count integer not null check (window_count >= 0),
    window_labelled integer not null check (window_labelled >= 0 and window_labelled <= window_count),
    last_event_time timestamptz,
    last_prediction_id text not null,
    updated_at timestamptz not null default now(),
    primary key (model_name, model_version, arm)
);

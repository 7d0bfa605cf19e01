-- Dead letters of the findings outbox, as in the feedback and governance outboxes: a row Kafka refuses for
-- good is set aside with the reason instead of blocking the relay. Pending rows are those neither published
-- nor quarantined.

alter table monitor_findings_outbox
    add column quarantined_at timestamptz,
    add column quarantine_reason text,
    add column replayed_at timestamptz;

drop index monitor_findings_outbox_pending;
create index monitor_findings_outbox_pending on monitor_findings_outbox (id)
    where published_at is null and quarantined_at is null;
create index monitor_findings_outbox_quarantined on monitor_findings_outbox (id) where quarantined_at is not null;

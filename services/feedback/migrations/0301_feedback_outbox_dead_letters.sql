-- Dead letters of the feedback outbox: a row Kafka refuses for good (e.g. larger than the broker's message
-- limit) is set aside with the reason instead of blocking the relay; `radguard deadletter replay` sends it
-- again and records when. Pending rows are those neither published nor quarantined.

alter table feedback_outbox
    add column quarantined_at timestamptz,
    add column quarantine_reason text,
    add column replayed_at timestamptz;

drop index feedback_outbox_pending;
create index feedback_outbox_pending on feedback_outbox (id) where published_at is null and quarantined_at is null;
create index feedback_outbox_quarantined on feedback_outbox (id) where quarantined_at is not null;

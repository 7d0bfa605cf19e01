-- Dead letters of the governance outbox: a row Kafka refuses for good, or whose payload cannot become its
-- event, is set aside with the reason instead of blocking the relay; `radguard deadletter replay` sends it
-- again and records when. Pending rows are those neither published nor quarantined.

alter table gov_outbox
    add column quarantined_at timestamptz,
    add column quarantine_reason text,
    add column replayed_at timestamptz;

drop index gov_outbox_pending;
create index gov_outbox_pending on gov_outbox (id) where published_at is null and quarantined_at is null;
create index gov_outbox_quarantined on gov_outbox (id) where quarantined_at is not null;

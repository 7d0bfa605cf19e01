-- A chart's accumulated evidence was gathered against one reference profile. When governance renews the
-- version's reference (a new route revision names another profile), the chart starts again from zero instead of
-- carrying evidence measured against the old one. `reference` identifies the profile the chart judged against:
-- its sha256 as the route table records it, else its location; empty for the model repository's default.
alter table monitor_sequential_state add column reference text not null default '';

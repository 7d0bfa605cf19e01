-- A monitor's chart runs one CUSUM per scope (the whole window, a site, a subgroup), so a change local to one
-- site or subgroup is not diluted by every other test of the block. Each scope's value is kept here as
-- {"scope": value}; `statistic` stays the largest of them.
alter table monitor_sequential_state add column scopes jsonb not null default '{}';

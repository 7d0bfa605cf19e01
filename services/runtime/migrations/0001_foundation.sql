-- Foundation: a small key/value table for facts about the database itself.
create table if not exists radguard_meta (
    key text primary key,
    value text not null,
    updated_at timestamptz not null default now()
);

insert into radguard_meta (key, value) values ('foundation_schema_version', '1')
on conflict (key) do nothing;

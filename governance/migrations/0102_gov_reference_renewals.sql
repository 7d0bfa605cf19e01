-- Reference renewals: a request to replace a registered version's reference profile, pending until the
-- approvals its policy requires are signed. The reference in force lives on the version (gov_versions.doc);
-- each renewal keeps the one it replaced, so the rows of a version are the history of its references.
-- Approvals now sign either a transition or a renewal (exactly one of the two columns is set).

create table gov_reference_renewals (
    renewal_id text primary key,
    model_name text not null,
    version text not null,
    status text not null check (status in ('pending', 'applied', 'rejected')),
    requested_at timestamptz not null,
    row_version bigint not null,
    doc jsonb not null,
    foreign key (model_name, version) references gov_versions (model_name, version)
);

-- At most one pending renewal per version.
create unique index gov_reference_renewals_one_pending on gov_reference_renewals (model_name, version)
    where status = 'pending';
create index gov_reference_renewals_version on gov_reference_renewals (model_name, version, requested_at);

alter table gov_approvals
    alter column transition_id drop not null,
    add column renewal_id text references gov_reference_renewals (renewal_id),
    add constraint gov_approvals_one_subject check (num_nonnulls(transition_id, renewal_id) = 1);

create index gov_approvals_renewal on gov_approvals (renewal_id, signed_at) where renewal_id is not null;

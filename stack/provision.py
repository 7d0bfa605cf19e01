"""Prepare a hospital's own PostgreSQL and Kafka for radguard: ``python -m stack.provision``.

The Helm chart runs this as its pre-install/pre-upgrade Job, before any radguard process of the new release
starts. It applies every pending migration (:data:`stack.migrations.MIGRATION_DIRS`) and creates the topics
of :data:`stack.topics.TOPICS` that do not exist yet; both steps leave what is already there alone, so a
second run changes nothing. Settings come from ``RADGUARD_*`` variables like the services':
``RADGUARD_POSTGRES_DSN`` (a role allowed to change the schema), ``RADGUARD_KAFKA_BOOTSTRAP_SERVERS`` and
``RADGUARD_KAFKA_REPLICATION_FACTOR``; ``RADGUARD_PROVISION_GRANTS=true`` also gives radguard's service
roles (:mod:`stack.roles`, created beforehand by the hospital's DBA) their privileges on the tables.
Exit status: 0 done, 1 a service refused or is unreachable, 2 bad settings (one line per variable).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping

import asyncpg
from pydantic import Field

from services.runtime.config import ConfigError, ServiceSettings, load_settings
from services.runtime.kafka import ensure_topics
from stack.migrations import apply_migrations
from stack.roles import apply_grants
from stack.topics import TOPICS


class ProvisionSettings(ServiceSettings):
    """What the provisioning run reads, on top of the shared PostgreSQL and Kafka settings."""

    service_name: str = "radguard-provision"
    kafka_replication_factor: int = Field(default=1, ge=1, description="replicas of each topic created")
    kafka_topics_timeout_s: float = Field(default=60.0, gt=0, description="time the brokers get to create them")
    provision_grants: bool = Field(
        default=False,
        description="also give each service role (stack.roles) its privileges; the DSN must own the database",
    )


def provision(settings: ProvisionSettings) -> list[str]:
    """Apply pending migrations, then create missing topics; returns one line per change made."""
    dsn = settings.postgres_dsn.get_secret_value()
    done = [f"applied migration {name}" for name in asyncio.run(apply_migrations(dsn))]
    if settings.provision_grants:
        done += asyncio.run(_grants(dsn))
    created = ensure_topics(
        settings.kafka_bootstrap_servers,
        TOPICS,
        replication_factor=settings.kafka_replication_factor,
        bootstrap_timeout_ms=settings.kafka_bootstrap_timeout_ms,
        timeout_ms=int(settings.kafka_topics_timeout_s * 1000),
    )
    done += [f"created topic {name}" for name in created]
    return done


async def _grants(dsn: str) -> list[str]:
    con = await asyncpg.connect(dsn)
    try:
        database = str(await con.fetchval("select current_database()"))
        return await apply_grants(con, database)
    finally:
        await con.close()


def main(env: Mapping[str, str] | None = None) -> int:
    """Run once; print what changed (or that nothing had to). Returns the exit status."""
    try:
        settings = load_settings(ProvisionSettings, env)
    except ConfigError as error:
        for line in error.problems:
            print(f"provision: {line}", file=sys.stderr)
        return 2
    try:
        done = provision(settings)
    except Exception as error:  # any refusal or outage ends the Job with a message, never a traceback
        print(f"provision: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for line in done or ["nothing to do: schema and topics are current"]:
        print(f"provision: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

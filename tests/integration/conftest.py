"""The real stack for integration tests, brought up by the same code as ``radguard stack up``.

If a developer's stack is already running in the state folder, it is reused and left running;
otherwise the session starts it and takes it down at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.runtime.migrate import run_migrations
from stack.manager import Stack
from stack.processes import is_ours
from stack.roles import OWNER_ROLE, apply_grants, service_role
from stack.settings import load_stack_settings


@dataclass(frozen=True)
class StackEndpoints:
    """Where the real servers listen."""

    kafka_bootstrap: str
    postgres_dsn: str
    triton_grpc_url: str
    triton_http_url: str


@pytest.fixture(scope="session")
def real_stack() -> Iterator[Stack]:
    """The running :class:`Stack` (started here unless it already runs)."""
    stack = Stack(load_stack_settings())
    was_running = all(stack.running(c) for c in stack.components)
    stack.up(progress=lambda comp, msg: print(f"[stack] {comp}: {msg}"))
    yield stack
    if not was_running and os.environ.get("RADGUARD_KEEP_STACK") != "1":
        stack.down()


@pytest.fixture(scope="session")
def stack(real_stack: Stack) -> StackEndpoints:
    """Endpoints of the real Kafka, PostgreSQL and Triton."""
    s = real_stack.settings
    return StackEndpoints(
        kafka_bootstrap=s.kafka_bootstrap,
        postgres_dsn=s.postgres_dsn,
        triton_grpc_url=s.triton_grpc_url,
        triton_http_url=f"{s.host}:{s.triton_http_port}",
    )


def kill_component(stack: Stack, name: str, timeout_s: float = 15.0) -> int:
    """SIGKILL one of the stack's processes and wait until it is really gone; returns its pid.

    Waiting matters: ``up`` right after ``kill`` may still see the dying process and start nothing.
    """
    import signal
    import time

    comp = stack.component(name)
    record = stack.running(comp)
    assert record is not None, f"{name} is not running"
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    # This pid, not the component: the supervisor may already have started a new one for radguard's processes.
    while is_ours(record):
        assert time.monotonic() < deadline, f"{name} (pid {record.pid}) survived SIGKILL"
        time.sleep(0.05)
    return record.pid


def wait_restarted(stack: Stack, name: str, old_pid: int, timeout_s: float = 60.0) -> int:
    """Wait until the supervisor has restarted a killed process of radguard's and it is ready; its new pid."""
    import time

    comp = stack.component(name)
    deadline = time.monotonic() + timeout_s
    while True:
        record = stack.running(comp)
        if record is not None and record.pid != old_pid and comp.is_ready():
            return record.pid
        assert time.monotonic() < deadline, f"{name} not restarted and ready within {timeout_s:.0f}s"
        time.sleep(0.1)


def service_dsn(dsn: str, component: str) -> str:
    """``dsn`` with the user replaced by the login role the stack gives ``component`` (see stack/roles.py)."""
    role = service_role(component)
    assert role is not None, f"{component} has no database role"
    return _with_user(dsn, role.name)


def _with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def scratch_database(server_dsn: str, prefix: str, migration_dirs: Sequence[Path]) -> AsyncIterator[str]:
    """A new database on the stack's PostgreSQL with the given migrations applied; dropped afterwards.

    Set up as ``radguard stack up`` sets up its own: owned by the owner role, migrated as that role, with
    each service role's grants, so a service under test can connect with :func:`service_dsn`. The DSN
    yielded is the administrator's. The drop retries for a while: PostgreSQL may still be coming back
    from a restart test.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'create database "{name}" owner "{OWNER_ROLE}"')
    finally:
        await admin.close()
    parts = urlsplit(server_dsn)
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    await run_migrations(_with_user(dsn, OWNER_ROLE), migration_dirs)
    admin = await asyncpg.connect(dsn)
    try:
        await apply_grants(admin, name)
    finally:
        await admin.close()
    try:
        yield dsn
    finally:
        for _ in range(20):
            try:
                admin = await asyncpg.connect(server_dsn)
                break
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(1)
        else:
            return
        try:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await admin.close()

"""PostgreSQL from Debian's binaries: a private cluster in the state folder on its own port.

PostgreSQL refuses to run as root, so when the stack is driven by root the cluster belongs to the
unprivileged ``postgres`` account that Debian's package creates. If that account cannot reach the
state folder (for example a clone inside a 0700 temp dir), the data directory lives in
``/var/tmp/radguard-postgres/<hash of the state folder>`` and the state folder holds a link to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path

from stack.components.base import Component, running_as_root
from stack.processes import ProcessRecord, StackError, port_open, process_cmdline, spawn

_INSTALL_HINT = "apt-get install -y postgresql-15"
_SERVICE_USER = "postgres"


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with initdb, or pg_config's bindir."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    raise StackError(f"PostgreSQL server binaries (initdb, postgres) not found: install them with `{_INSTALL_HINT}`")


class Postgres(Component):
    """A private PostgreSQL cluster."""

    name = "postgres"
    stop_signal = 2  # SIGINT: "fast" shutdown (SIGTERM would wait for every client to leave)

    def ports(self) -> dict[str, int]:
        return {"RADGUARD_STACK_POSTGRES_PORT": self.settings.postgres_port}

    @property
    def run_as(self) -> str | None:
        return _SERVICE_USER if running_as_root() else None

    def check_prerequisites(self) -> None:
        find_bindir()
        if self.run_as:
            try:
                pwd.getpwnam(self.run_as)
            except KeyError:
                raise StackError(
                    f"running as root needs the unprivileged '{self.run_as}' account: "
                    f"create it with `{_INSTALL_HINT}` (or `useradd --system {self.run_as}`)"
                ) from None

    @property
    def data_link(self) -> Path:
        return self.home / "data"

    def data_dir(self) -> Path:
        """The cluster's data directory (resolved through the link, if any)."""
        return self.data_link.resolve() if self.data_link.is_symlink() else self.data_link

    def _can_reach(self, path: Path) -> bool:
        if not self.run_as:
            return True
        probe = subprocess.run(["test", "-w", str(path), "-a", "-x", str(path)], user=self.run_as, check=False)
        return probe.returncode == 0

    def _chown(self, path: Path) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.data_link.exists():
            self._chown(self.home)
            if self._can_reach(self.home):
                self.data_link.mkdir(mode=0o700)
            else:
                digest = hashlib.sha256(str(self.layout.root.resolve()).encode()).hexdigest()[:16]
                outside = Path("/var/tmp/radguard-postgres") / digest  # noqa: S108 - private 0700 dir, fixed owner
                outside.parent.mkdir(parents=True, exist_ok=True)
                outside.parent.chmod(0o755)
                outside.mkdir(mode=0o700, exist_ok=True)
                self.data_link.symlink_to(outside)
            self._chown(self.data_dir())
        data = self.data_dir()
        if (data / "PG_VERSION").exists():
            return
        result = subprocess.run(
            [
                str(find_bindir() / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                self.settings.postgres_user,
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            user=self.run_as,
            cwd="/",
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-2:]
            raise StackError("initdb failed: " + " | ".join(tail))

    def _clear_stale_locks(self, data: Path) -> None:
        """Remove lock files left by a postmaster that was killed.

        PostgreSQL refuses to start while the pid recorded in ``postmaster.pid`` or in the socket's
        ``.s.PGSQL.<port>.lock`` still exists — and a killed postmaster that nobody has reaped yet
        (a zombie) still exists. A lock whose pid is gone or a zombie is stale and removed; a live
        postmaster on the same data is reported instead.
        """
        for lock in [data / "postmaster.pid", *data.glob(".s.PGSQL.*.lock")]:
            try:
                pid = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            deadline = time.monotonic() + 10
            while process_cmdline(pid) is not None:  # alive and not a zombie
                if time.monotonic() > deadline:
                    raise StackError(f"another PostgreSQL (pid {pid}) is running on {data}: stop it first")
                time.sleep(0.2)
            lock.unlink(missing_ok=True)

    def start(self) -> ProcessRecord:
        data = self.data_dir()
        self._clear_stale_locks(data)
        argv = [
            str(find_bindir() / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.settings.postgres_port),
            "-k",
            str(data),
            "-c",
            f"listen_addresses={self.settings.host}",
            "-c",
            "logging_collector=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]
        return spawn(
            self.name, argv, log_path=self.layout.log(self.name), marker=str(data), user=self.run_as, cwd=Path("/")
        )

    def is_ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.postgres_port):
            return False
        isready = find_bindir() / "pg_isready"
        result = subprocess.run(
            [
                str(isready),
                "-h",
                self.settings.host,
                "-p",
                str(self.settings.postgres_port),
                "-U",
                self.settings.postgres_user,
                "-d",
                "postgres",
                "-t",
                "2",
            ],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def after_ready(self) -> list[str]:
        # Its own thread and loop: `up` may be called from code that already runs an event loop.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._provision()).result()

    async def _provision(self) -> list[str]:
        """Database, roles, migrations as the owner role, then each service role's grants (all idempotent)."""
        import asyncpg

        from stack.migrations import apply_migrations
        from stack.roles import OWNER_ROLE, apply_grants, ensure_roles, take_ownership

        done: list[str] = []
        db = self.settings.postgres_db
        admin_dsn = self.settings.postgres_dsn.rsplit("/", 1)[0] + "/postgres"
        con = await asyncpg.connect(admin_dsn)
        try:
            exists = await con.fetchval("select 1 from pg_database where datname = $1", db)
            if not exists:
                await con.execute(f'create database "{db}"')
                done.append(f"created database {db}")
            done.extend(await ensure_roles(con, db))
        finally:
            await con.close()
        con = await asyncpg.connect(self.settings.postgres_dsn)
        try:
            # A database migrated before the owner role existed still belongs to the superuser.
            done.extend(await take_ownership(con))
            applied = await apply_migrations(self.settings.role_dsn(OWNER_ROLE))
            done.extend(f"applied migration {name}" for name in applied)
            done.extend(await apply_grants(con, db))
        finally:
            await con.close()
        return done

    def version(self) -> str:
        try:
            out = subprocess.run(
                [str(find_bindir() / "postgres"), "--version"], capture_output=True, text=True, check=False
            ).stdout
        except StackError:
            return "unknown"
        match = re.search(r"(\d+(?:\.\d+)+)", out)
        return match.group(1) if match else out.strip()

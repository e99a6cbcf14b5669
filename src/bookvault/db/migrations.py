"""Versioned SQL migrations, one folder per service.

Files are named `NNNN_description.sql` inside `bookvault.<service>.migrations`
and applied in order, each in its own transaction, under an advisory lock so two
processes migrating at once cannot interleave.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from importlib import resources

import asyncpg

from bookvault.config import SERVICE_NAMES, Settings, with_database

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Arbitrary constant shared by every migrator of a database.
_LOCK_KEY = 0x626F6F6B7661  # "bookva"


class MigrationError(RuntimeError):
    """A migration file is misnamed or failed to apply."""


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def discover(service: str) -> list[Migration]:
    package = resources.files(f"bookvault.{service}") / "migrations"
    found: list[Migration] = []
    for entry in package.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{service}: migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{service}: two migrations share a version number")
    return found


async def apply(dsn: str, service: str) -> list[Migration]:
    """Apply pending migrations of `service` to the database at `dsn`; return them."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            applied: list[Migration] = []
            for migration in discover(service):
                if migration.version in done:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            migration.version,
                            migration.name,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"{service}: migration {migration.version:04d}_{migration.name} failed: {exc}"
                    ) from exc
                applied.append(migration)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def ensure_database(admin_dsn: str, database: str) -> bool:
    """Create `database` if it does not exist; True when it was created."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
        raise MigrationError(f"refusing to create database with unsafe name {database!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if exists:
            return False
        # CREATE DATABASE takes no parameters; the name was checked against a strict pattern above.
        await conn.execute(f'CREATE DATABASE "{database}"')
        return True
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await conn.close()


async def migrate_all(
    settings: Settings, report: Callable[[str], None] = lambda _line: None
) -> dict[str, list[Migration]]:
    """Create every service's database and apply its migrations."""
    if settings.database_url is None:
        raise MigrationError("no database configured: set BOOKVAULT_DATABASE_URL or run `bookvault up`")
    results: dict[str, list[Migration]] = {}
    for service in SERVICE_NAMES:
        if await ensure_database(settings.database_url, service):
            report(f"created database {service}")
        applied = await apply(with_database(settings.database_url, service), service)
        for migration in applied:
            report(f"{service}: applied {migration.version:04d}_{migration.name}")
        results[service] = applied
    return results

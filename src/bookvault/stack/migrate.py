"""Every service's database created and migrated, as `bookvault.db.migrations` defines it.

A service whose package has no `migrations` folder (yet) still gets its
database; it is reported and skipped instead of failing the whole stack.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from importlib import resources

from bookvault.config import SERVICE_NAMES, Settings, with_database
from bookvault.db import migrations
from bookvault.stack.errors import StackError


def has_migrations(service: str) -> bool:
    try:
        if importlib.util.find_spec(f"bookvault.{service}") is None:
            return False
        return (resources.files(f"bookvault.{service}") / "migrations").is_dir()
    except (ModuleNotFoundError, TypeError):
        return False


async def migrate(settings: Settings, report: Callable[[str], None] = lambda _line: None) -> None:
    if settings.database_url is None:
        raise StackError("no database configured: set BOOKVAULT_DATABASE_URL or run `bookvault up`")
    for service in SERVICE_NAMES:
        if await migrations.ensure_database(settings.database_url, service):
            report(f"created database {service}")
        if not has_migrations(service):
            report(f"{service}: no migrations to apply")
            continue
        try:
            applied = await migrations.apply(with_database(settings.database_url, service), service)
        except migrations.MigrationError as exc:
            raise StackError(str(exc)) from exc
        for migration in applied:
            report(f"{service}: applied {migration.version:04d}_{migration.name}")
        if not applied:
            report(f"{service}: up to date")

"""Database work as counted by PostgreSQL itself (pg_stat_statements), so the
ladder reports queries the database really ran, whatever the app believes."""

from __future__ import annotations

import asyncpg

__all__ = ["statement_calls"]


async def statement_calls(admin_dsn: str, database: str) -> int | None:
    """Total statements executed in `database` so far; None when unavailable."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        value = await conn.fetchval(
            """SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)""",
            database,
        )
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()
    return int(value)

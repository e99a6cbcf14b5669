"""What `bookvault status` reports: every component's state, replication, Redis memory,
and the circuit breakers and bulkheads of each process (read from its /metrics).

Every probe has a short timeout and reports a component it cannot reach as
down instead of failing, so the report works while parts of the stack are down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.error
import urllib.request
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import RedisError

from bookvault.config import SERVICE_NAMES, Settings
from bookvault.stack.masking import mask_password
from bookvault.stack.processes import pid_alive
from bookvault.stack.services import is_healthy
from bookvault.stack.state import StackRecord
from bookvault.stack.table import render
from bookvault.workers.backlog import event_backlog

PROBE_TIMEOUT_S = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class StatusReport:
    running: bool
    settings: Settings
    record: StackRecord | None
    components: list[dict[str, Any]]
    postgres: dict[str, Any]
    redis: dict[str, Any]
    breakers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # Outbox backlogs and consumer-group lag (bookvault.workers.backlog).
    events: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "running": self.running,
            "status": self.record.status if self.record else "stopped",
            "reason": self.record.reason if self.record else None,
            "supervisor_pid": self.record.supervisor_pid if self.record and self.running else None,
            "state_dir": str(settings.state_dir),
            "profile": self.record.profile if self.record else settings.profile,
            "gateway_url": settings.gateway_url,
            "services": {name: settings.service_url(name) for name in SERVICE_NAMES},
            "postgres": {
                "primary_dsn": settings.database_url,
                "replica_dsns": list(settings.replica_urls),
                **self.postgres,
            },
            "redis_url": settings.redis_url,
            "redis": self.redis,
            "components": self.components,
            "breakers": self.breakers,
            "events": self.events,
        }


async def _postgres(settings: Settings) -> dict[str, Any]:
    if settings.database_url is None:
        return {"primary": {"state": "unknown"}, "replicas": []}
    primary: dict[str, Any] = {"state": "down"}
    current_lsn: str | None = None
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=PROBE_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        primary["error"] = str(exc) or type(exc).__name__
        conn = None
    try:
        if conn is not None:
            row = await conn.fetchrow(
                """SELECT pg_current_wal_lsn()::text AS lsn,
                          (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming') AS streaming"""
            )
            current_lsn = row["lsn"] if row else None
            primary = {
                "state": "up",
                "current_lsn": current_lsn,
                "streaming_replicas": row["streaming"] if row else 0,
            }
        replicas = await asyncio.gather(*(_replica(url, conn, current_lsn) for url in settings.replica_urls))
    finally:
        if conn is not None:
            await conn.close()
    return {"primary": primary, "replicas": list(replicas)}


async def _replica(url: str, primary: asyncpg.Connection | None, primary_lsn: str | None) -> dict[str, Any]:
    report: dict[str, Any] = {"dsn": mask_password(url), "state": "down"}
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_S)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        report["error"] = str(exc) or type(exc).__name__
        return report
    try:
        row = await conn.fetchrow(
            """SELECT pg_is_in_recovery() AS in_recovery,
                      pg_last_wal_replay_lsn()::text AS replay_lsn,
                      EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS since_replay,
                      (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver"""
        )
    finally:
        await conn.close()
    if row is None:
        return report
    replay_lsn = row["replay_lsn"]
    lag_bytes: int | None = None
    if primary is not None and primary_lsn is not None and replay_lsn is not None:
        # asyncpg sends pg_lsn parameters as integers; passing text and casting keeps the LSN form.
        diff = "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)"
        lag_bytes = int(await primary.fetchval(diff, primary_lsn, replay_lsn))
    if lag_bytes is None:
        lag_seconds = None
    elif lag_bytes <= 0:
        lag_seconds = 0.0  # caught up: the last replayed transaction's age is not lag
    else:
        lag_seconds = round(float(row["since_replay"] or 0.0), 3)
    report.update(
        state="up",
        in_recovery=row["in_recovery"],
        streaming=row["receiver"] == "streaming",
        replay_lsn=replay_lsn,
        lag_bytes=max(lag_bytes, 0) if lag_bytes is not None else None,
        lag_seconds=lag_seconds,
    )
    return report


async def _redis(settings: Settings) -> dict[str, Any]:
    if settings.redis_url is None:
        return {"state": "unknown"}
    client = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
    )
    try:
        info = await client.info("memory")
    except (RedisError, OSError) as exc:
        return {"state": "down", "error": str(exc)}
    finally:
        await client.aclose()
    return {
        "state": "up",
        "maxmemory": int(info.get("maxmemory", 0)),
        "maxmemory_human": info.get("maxmemory_human"),
        "maxmemory_policy": info.get("maxmemory_policy"),
        "used_memory_human": info.get("used_memory_human"),
    }


async def _component(
    entry: dict[str, Any], record_state: str, pid: int | None, ticks: int | None
) -> dict[str, Any]:
    if record_state == "external":
        return {**entry, "state": "external", "pid": None}
    if pid is None or not pid_alive(pid, ticks):
        state = (
            "restarting"
            if record_state == "restarting"
            else ("stopped" if record_state == "stopped" else "down")
        )
        return {**entry, "state": state, "pid": None}
    if entry["kind"] == "service":
        healthy = await asyncio.to_thread(is_healthy, f"{entry['address']}/healthz", PROBE_TIMEOUT_S)
        return {**entry, "state": "running" if healthy else "unhealthy", "pid": pid}
    return {**entry, "state": "running", "pid": pid}


def breaker_rows(process: str, metrics_text: str) -> list[dict[str, Any]]:
    """One row per dependency guarded in `process`, from its Prometheus exposition."""
    rows: dict[str, dict[str, Any]] = {}
    fields = {
        "bookvault_breaker_failure_rate": "failure_rate",
        "bookvault_breaker_slow_call_rate": "slow_call_rate",
        "bookvault_breaker_not_permitted_calls_total": "not_permitted",
        "bookvault_bulkhead_in_flight": "bulkhead_in_flight",
        "bookvault_bulkhead_max_concurrent_calls": "bulkhead_max",
        "bookvault_bulkhead_rejected_calls_total": "bulkhead_rejected",
    }
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            dependency = sample.labels.get("dependency")
            if dependency is None:
                continue
            row = rows.setdefault(dependency, {"process": process, "dependency": dependency, "state": None})
            if sample.name == "bookvault_breaker_state":
                if sample.value == 1.0:
                    row["state"] = sample.labels.get("state")
            elif sample.name in fields:
                value = sample.value
                rate = fields[sample.name].endswith("_rate")
                row[fields[sample.name]] = (None if value < 0 else round(value, 1)) if rate else int(value)
    return list(rows.values())


def _read_metrics(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 - our own http:// URL
            body: bytes = response.read()
            return body.decode("utf-8", "replace")
    except (OSError, urllib.error.URLError):
        return None


async def _breakers(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    running = [c for c in components if c["kind"] == "service" and c["state"] == "running"]
    texts = await asyncio.gather(
        *(asyncio.to_thread(_read_metrics, f"{c['address']}/metrics") for c in running)
    )
    rows: list[dict[str, Any]] = []
    for component, text in zip(running, texts, strict=True):
        if text is not None:
            rows.extend(breaker_rows(component["name"], text))
    return rows


async def collect(settings: Settings, record: StackRecord | None, running: bool) -> StatusReport:
    components: list[dict[str, Any]] = []
    if record is not None:
        components = list(
            await asyncio.gather(
                *(
                    _component(
                        {"name": c.name, "kind": c.kind, "address": c.address, "restarts": c.restarts},
                        c.state,
                        c.pid,
                        c.start_ticks,
                    )
                    for c in record.components
                )
            )
        )
    if running:
        postgres_report, redis_report = await asyncio.gather(_postgres(settings), _redis(settings))
    else:
        postgres_report, redis_report = {"primary": {"state": "down"}, "replicas": []}, {"state": "down"}
    breakers = await _breakers(components) if running else []
    events = await event_backlog(settings) if running else {}
    return StatusReport(
        running, settings, record, components, postgres_report, redis_report, breakers, events
    )


def render_text(report: StatusReport) -> str:
    data = report.as_json()
    headline = (
        f"BookVault is {data['status']} (profile {data['profile']}, supervisor pid {data['supervisor_pid']})"
        if report.running
        else f"BookVault is not running (last status: {data['status']})"
    )
    rows = [
        [c["name"], c["state"], str(c["pid"] or "-"), str(c["restarts"]), c["address"]]
        for c in report.components
    ]
    lines = [headline, f"state dir: {data['state_dir']}", ""]
    if rows:
        lines.append(render(["COMPONENT", "STATE", "PID", "RESTARTS", "ADDRESS"], rows))
    if report.running:
        primary = report.postgres["primary"]
        lines.append("")
        lines.append(
            f"postgres primary: {primary.get('state')}, WAL at {primary.get('current_lsn', '-')}, "
            f"{primary.get('streaming_replicas', 0)} streaming replica(s)"
        )
        for replica in report.postgres["replicas"]:
            if replica["state"] != "up":
                lines.append(f"replica {replica['dsn']}: down ({replica.get('error', '')})")
                continue
            lines.append(
                f"replica {replica['dsn']}: {'streaming' if replica['streaming'] else 'not streaming'}, "
                f"replayed to {replica['replay_lsn']}, "
                f"lag {replica['lag_bytes']} bytes / {replica['lag_seconds']} s"
            )
        redis_info = report.redis
        if redis_info.get("state") == "up":
            lines.append(
                f"redis: maxmemory {redis_info['maxmemory_human']} ({redis_info['maxmemory_policy']}), "
                f"used {redis_info['used_memory_human']}"
            )
        else:
            lines.append(f"redis: {redis_info.get('state')} {redis_info.get('error', '')}".rstrip())
        if report.breakers:
            lines.append("")
            lines.append(render_breakers(report.breakers))
        lines.extend(render_events(report.events))
    return "\n".join(lines)


def render_events(events: dict[str, Any]) -> list[str]:
    """One line per outbox (backlog) and per consumer group (lag)."""
    lines = []
    for outbox in events.get("outbox", []):
        if outbox["state"] == "up":
            lines.append(
                f"outbox {outbox['service']}: {outbox['pending']} unpublished, oldest {outbox['oldest_s']} s"
            )
        else:
            lines.append(f"outbox {outbox['service']}: {outbox['state']} {outbox.get('error', '')}".rstrip())
    for stream in events.get("streams", []):
        if stream["state"] == "up":
            lines.append(
                f"stream {stream['stream']} group {stream['group']}: lag {stream['lag']} "
                f"({stream['pending']} delivered, not acked)"
            )
        else:
            lines.append(f"stream {stream['stream']} group {stream['group']}: down {stream.get('error', '')}")
    return ["", *lines] if lines else []


def render_breakers(rows: list[dict[str, Any]]) -> str:
    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:g}%"

    table = [
        [
            row["process"],
            row["dependency"],
            row["state"] or "-",
            rate(row.get("failure_rate")),
            rate(row.get("slow_call_rate")),
            str(row.get("not_permitted", "-")),
            f"{row['bulkhead_in_flight']}/{row['bulkhead_max']}" if "bulkhead_max" in row else "-",
            str(row.get("bulkhead_rejected", "-")),
        ]
        for row in rows
    ]
    return render(
        ["PROCESS", "DEPENDENCY", "BREAKER", "FAILED", "SLOW", "REFUSED", "BULKHEAD", "REJECTED"], table
    )

"""Settings for every BookVault process.

Values come from, in order of precedence: environment variables prefixed
`BOOKVAULT_`, an optional `bookvault.toml` (path in `BOOKVAULT_CONFIG`, else
`./bookvault.toml`), then the defaults below. A child process started by the
stack receives the resolved settings as environment variables, so every process
of one stack agrees on ports, DSNs and keys.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit, urlunsplit

Profile = Literal["baseline", "optimized"]
SERVICE_NAMES: tuple[str, ...] = ("catalog", "borrowing", "accounts")

# Every pattern has its own switch (BOOKVAULT_<NAME>=on|off). Unset, it follows
# the profile: off in `baseline`, on in `optimized`.
PATTERN_SWITCHES: tuple[str, ...] = (
    "compression",
    "tuned_pools",
    "gateway_cache",
    "cache",
    "coalescing",
    "breakers",
    "retries",
    "bulkheads",
    "replicas",
    "rate_limit",
    "materialized_views",
)
# Patterns whose code exists and honours its switch. A switch for a pattern not
# listed here changes nothing, and reports (status, bench) say "not built".
BUILT_PATTERNS: frozenset[str] = frozenset(
    {
        "cache",
        "coalescing",
        "tuned_pools",
        "gateway_cache",
        "compression",
        "rate_limit",
        "breakers",
        "retries",
        "bulkheads",
        "replicas",
        "materialized_views",
    }
)


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message says which and why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    profile: Profile = "baseline"
    state_dir: Path = Path(".bookvault")
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    catalog_port: int = 8081
    borrowing_port: int = 8082
    accounts_port: int = 8083
    postgres_port: int = 54320
    replica_port: int = 54321
    redis_port: int = 6380
    gateway_workers: int = 1
    # External infrastructure; when set, the stack uses it instead of starting its own.
    database_url: str | None = None
    replica_urls: tuple[str, ...] = ()
    redis_url: str | None = None
    # Auth: the algorithm list is fixed here, never taken from a token header.
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_secret: str | None = None
    jwt_issuer: str = "bookvault"
    # Token revocation at the gateway (always on when Redis is configured): the longest
    # token lifetime the gateway accepts, which is how long a revocation of a member's
    # tokens is kept; and whether authenticated requests get 503 while the revocation
    # list cannot be kept current (default: the last known list keeps being applied).
    jwt_max_ttl_s: int = 7 * 24 * 3600
    revocation_fail_closed: bool = False
    # Gateway
    max_body_bytes: int = 1024 * 1024
    upstream_timeout_s: float = 10.0
    upstream_connect_timeout_s: float = 2.0
    trusted_proxies: tuple[str, ...] = ()
    # Gateway response cache (switch `gateway_cache`): default freshness per path prefix
    # ("prefix=seconds") for responses that state none, and the in-process entry bound.
    gateway_cache_ttls: tuple[str, ...] = (
        "/api/catalog/v1/books=30",
        "/api/catalog/v1/search=30",
        "/api/catalog/v1/stats=60",
    )
    gateway_cache_max_entries: int = 10_000
    # Rate limiting (switch `rate_limit`): a token bucket per client on each route's policy.
    rate_limit_rate: float = 100.0
    rate_limit_burst: int = 200
    rate_limit_payments_rate: float = 10.0
    rate_limit_payments_burst: int = 20
    rate_limit_timeout_s: float = 0.1
    rate_limit_fail_closed: tuple[str, ...] = ()
    rate_limit_empty_key_status: int = 403
    rate_limit_shadow: bool = False
    # Services
    pool_min_size: int = 2
    pool_max_size: int = 10
    # Pool timings, HikariCP's names in brackets, defaults from seed 002's tuned pool:
    # acquire timeout [connectionTimeout], idle timeout [idleTimeout], max lifetime
    # [maxLifetime], leak detection [leakDetectionThreshold] (0 turns it off).
    pool_acquire_timeout_s: float = 20.0
    pool_idle_timeout_s: float = 600.0
    pool_max_lifetime_s: float = 1800.0
    pool_leak_detection_s: float = 60.0
    # Read replicas (switch `replicas`): a replica further behind than either limit
    # serves no reads; a principal's write position is remembered this long.
    replica_max_lag_bytes: int = 16 * 1024 * 1024
    replica_max_lag_seconds: float = 5.0
    replica_poll_interval_s: float = 0.25
    write_position_ttl_s: float = 30.0
    # Read models (switch `materialized_views`): genre statistics are refreshed once
    # book edits have been quiet this long, and never later than the max delay.
    stats_refresh_quiet_s: float = 1.0
    stats_refresh_max_delay_s: float = 10.0
    catalog_timeout_s: float = 2.0
    # Where borrowing reaches the catalog; None means the catalog's own port on `host`
    # (tests point it at a fault proxy).
    catalog_url: str | None = None
    # Resilience (the `breakers`, `retries` and `bulkheads` switches): breaker wait in
    # OPEN and slow-call threshold, and per-dependency bulkhead sizes.
    breaker_wait_s: float = 10.0
    breaker_slow_call_s: float = 1.0
    catalog_bulkhead_calls: int = 20
    upstream_bulkhead_calls: int = 100
    bulkhead_max_wait_s: float = 0.5
    max_page_size: int = 100
    loan_days: int = 14
    late_fee_cents_per_day: int = 25
    # Workers (bookvault.workers): `bookvault up` runs between workers_min and
    # workers_max worker processes, one more for each workers_lag_per_worker events
    # their consumer group is behind.
    workers_min: int = 1
    workers_max: int = 4
    workers_lag_per_worker: int = 1000
    log_level: str = "info"
    access_log: bool = False
    # Pattern switches; None means "as the profile says".
    compression: bool | None = None
    tuned_pools: bool | None = None
    gateway_cache: bool | None = None
    cache: bool | None = None
    coalescing: bool | None = None
    breakers: bool | None = None
    retries: bool | None = None
    bulkheads: bool | None = None
    replicas: bool | None = None
    rate_limit: bool | None = None
    materialized_views: bool | None = None

    # --- derived values -------------------------------------------------

    def pattern_on(self, name: str) -> bool:
        """Whether pattern `name` is switched on (explicitly, or by the profile)."""
        if name not in PATTERN_SWITCHES:
            raise ConfigError(f"unknown pattern switch {name!r}")
        explicit: bool | None = getattr(self, name)
        return self.profile == "optimized" if explicit is None else explicit

    def pattern_states(self) -> dict[str, str]:
        """Each pattern as "on", "off" or "not built", for status and reports."""
        return {
            name: ("not built" if name not in BUILT_PATTERNS else "on" if self.pattern_on(name) else "off")
            for name in PATTERN_SWITCHES
        }

    @property
    def jwt_key_file(self) -> Path:
        return self.state_dir / "secrets" / "jwt.key"

    def service_port(self, name: str) -> int:
        ports = {
            "gateway": self.gateway_port,
            "catalog": self.catalog_port,
            "borrowing": self.borrowing_port,
            "accounts": self.accounts_port,
        }
        try:
            return ports[name]
        except KeyError:
            raise ConfigError(f"unknown service {name!r}") from None

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{self.service_port(name)}"

    def resolved_catalog_url(self) -> str:
        """The catalog's base URL as borrowing calls it."""
        return self.catalog_url or self.service_url("catalog")

    @property
    def gateway_url(self) -> str:
        return self.service_url("gateway")

    def service_database_url(self, service: str) -> str:
        """The DSN of a service's own database on the cluster."""
        if self.database_url is None:
            raise ConfigError("no database configured: set BOOKVAULT_DATABASE_URL or run `bookvault up`")
        return with_database(self.database_url, service)

    def service_replica_urls(self, service: str) -> tuple[str, ...]:
        return tuple(with_database(url, service) for url in self.replica_urls)

    def resolved_jwt_secret(self) -> str:
        """The signing key: from settings, else the stack's key file."""
        if self.jwt_secret:
            return self.jwt_secret
        try:
            return self.jwt_key_file.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"no JWT key: set BOOKVAULT_JWT_SECRET or run `bookvault up` (expected {self.jwt_key_file})"
            ) from None

    def as_environment(self) -> dict[str, str]:
        """These settings as `BOOKVAULT_*` variables, for child processes."""
        env: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                text = ",".join(value)
            elif isinstance(value, bool):
                text = "on" if value else "off"
            else:
                text = str(value)
            env[f"BOOKVAULT_{field.name.upper()}"] = text
        return env


def with_database(dsn: str, database: str) -> str:
    """Return `dsn` pointing at `database` instead of its own database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "on", "yes"}:
        return True
    if lowered in {"0", "false", "off", "no"}:
        return False
    raise ConfigError(f"{name} must be on/off, got {text!r}")


def _convert(name: str, annotation: Any, raw: Any) -> Any:
    """Turn a raw TOML or environment value into the field's type."""
    try:
        if annotation is bool:
            return raw if isinstance(raw, bool) else _parse_bool(name, str(raw))
        if annotation is int:
            return int(raw)
        if annotation is float:
            return float(raw)
        if annotation is Path:
            return Path(str(raw))
        if get_origin(annotation) is tuple:
            if isinstance(raw, list):
                return tuple(str(item) for item in raw)
            return tuple(item.strip() for item in str(raw).split(",") if item.strip())
        if get_origin(annotation) is Literal:
            allowed = get_args(annotation)
            if raw not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
            return raw
        return None if raw in ("", None) else str(raw)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{name}: cannot read {raw!r} ({exc})") from None


def _field_types() -> dict[str, Any]:
    hints = get_type_hints(Settings)
    # `X | None` fields are read as X; None is expressed by leaving them unset.
    return {
        name: next(arg for arg in get_args(hint) if arg is not type(None))
        if get_origin(hint) is UnionType
        else hint
        for name, hint in hints.items()
    }


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment, the optional TOML file and `overrides`."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_path = Path(env.get("BOOKVAULT_CONFIG", "bookvault.toml"))
    if config_path.is_file():
        try:
            file_values = tomllib.loads(config_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
        values.update(file_values.get("bookvault", file_values))
    known = {field.name for field in dataclasses.fields(Settings)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{config_path}: unknown setting {key!r}")
    for name in known:
        env_name = f"BOOKVAULT_{name.upper()}"
        if env_name in env:
            values[name] = env[env_name]
    values.update({k: v for k, v in overrides.items() if v is not None})
    types = _field_types()
    converted = {
        name: _convert(f"BOOKVAULT_{name.upper()}", types[name], raw) for name, raw in values.items()
    }
    settings = Settings(**converted)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    for proxy in settings.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"BOOKVAULT_TRUSTED_PROXIES: {proxy!r} is not an IP network") from None
    if settings.jwt_max_ttl_s < 1:
        raise ConfigError("BOOKVAULT_JWT_MAX_TTL_S must be at least 1 second")
    if settings.gateway_workers < 1:
        raise ConfigError("BOOKVAULT_GATEWAY_WORKERS must be at least 1")
    if not 1 <= settings.workers_min <= settings.workers_max:
        raise ConfigError("BOOKVAULT_WORKERS_MIN must be at least 1 and at most BOOKVAULT_WORKERS_MAX")
    if settings.workers_lag_per_worker < 1:
        raise ConfigError("BOOKVAULT_WORKERS_LAG_PER_WORKER must be at least 1")
    if not 1 <= settings.max_page_size <= 1000:
        raise ConfigError("BOOKVAULT_MAX_PAGE_SIZE must be between 1 and 1000")
    if not (settings.rate_limit_rate > 0 and settings.rate_limit_payments_rate > 0):
        raise ConfigError("BOOKVAULT_RATE_LIMIT_RATE and BOOKVAULT_RATE_LIMIT_PAYMENTS_RATE must be positive")
    if settings.rate_limit_burst < 1 or settings.rate_limit_payments_burst < 1:
        raise ConfigError("BOOKVAULT_RATE_LIMIT_BURST and BOOKVAULT_RATE_LIMIT_PAYMENTS_BURST must be >= 1")
    if not settings.rate_limit_timeout_s > 0:
        raise ConfigError("BOOKVAULT_RATE_LIMIT_TIMEOUT_S must be positive")
    if not 400 <= settings.rate_limit_empty_key_status <= 599:
        raise ConfigError("BOOKVAULT_RATE_LIMIT_EMPTY_KEY_STATUS must be a 4xx or 5xx status")
    if not (settings.pool_acquire_timeout_s > 0 and settings.pool_max_lifetime_s > 0):
        raise ConfigError(
            "BOOKVAULT_POOL_ACQUIRE_TIMEOUT_S and BOOKVAULT_POOL_MAX_LIFETIME_S must be positive"
        )
    if settings.pool_idle_timeout_s < 0 or settings.pool_leak_detection_s < 0:
        raise ConfigError(
            "BOOKVAULT_POOL_IDLE_TIMEOUT_S and BOOKVAULT_POOL_LEAK_DETECTION_S cannot be negative"
        )
    if settings.replica_max_lag_bytes < 0 or settings.replica_max_lag_seconds < 0:
        raise ConfigError(
            "BOOKVAULT_REPLICA_MAX_LAG_BYTES and BOOKVAULT_REPLICA_MAX_LAG_SECONDS cannot be negative"
        )
    if not (settings.replica_poll_interval_s > 0 and settings.write_position_ttl_s > 0):
        raise ConfigError(
            "BOOKVAULT_REPLICA_POLL_INTERVAL_S and BOOKVAULT_WRITE_POSITION_TTL_S must be positive"
        )
    if settings.write_position_ttl_s <= settings.replica_max_lag_seconds:
        # A position forgotten while a replica may still be that far behind would
        # let the writer read the replica's older state.
        raise ConfigError("BOOKVAULT_WRITE_POSITION_TTL_S must exceed BOOKVAULT_REPLICA_MAX_LAG_SECONDS")
    if not 0 <= settings.stats_refresh_quiet_s <= settings.stats_refresh_max_delay_s:
        raise ConfigError(
            "BOOKVAULT_STATS_REFRESH_QUIET_S must be between 0 and BOOKVAULT_STATS_REFRESH_MAX_DELAY_S"
        )

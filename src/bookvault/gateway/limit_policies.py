"""The gateway's rate-limit policies: which one a request falls under, and whose
quota it spends.

One token bucket policy per route (`catalog`, `borrowing`, `accounts`) with the
default rate and burst, plus `payments` (`POST /api/accounts/v1/members/{id}/payments`
or `/charges`), stricter. A request spends the quota of its caller on its policy:
the member (token `sub`) when authenticated, else the client IP the gateway
resolved from the socket (or a trusted proxy's vouched chain).
"""

from __future__ import annotations

import dataclasses

from bookvault.config import ConfigError, Settings
from bookvault.gateway.exchange import Exchange

__all__ = ["PAYMENTS", "PolicySpec", "client_key", "is_payment", "policy_specs"]

PAYMENTS = "payments"
_PAYMENT_PREFIX = "/api/accounts/v1/members/"
_PAYMENT_ACTIONS = frozenset({"payments", "charges"})


@dataclasses.dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    replenish_rate: float  # tokens per second
    burst_capacity: int
    fail_closed: bool  # refuse (503) rather than fall back when Redis cannot decide


def policy_specs(settings: Settings, routes: tuple[str, ...]) -> dict[str, PolicySpec]:
    """Every policy by name: one per route in `routes`, and `payments`."""
    names = (*routes, PAYMENTS)
    unknown = set(settings.rate_limit_fail_closed) - set(names)
    if unknown:
        raise ConfigError(
            f"BOOKVAULT_RATE_LIMIT_FAIL_CLOSED: unknown policies {sorted(unknown)}; "
            f"choose from {', '.join(names)}"
        )
    closed = frozenset(settings.rate_limit_fail_closed)
    specs = {
        name: PolicySpec(name, settings.rate_limit_rate, settings.rate_limit_burst, name in closed)
        for name in routes
    }
    specs[PAYMENTS] = PolicySpec(
        PAYMENTS,
        settings.rate_limit_payments_rate,
        settings.rate_limit_payments_burst,
        PAYMENTS in closed,
    )
    return specs


def is_payment(method: str, path: str) -> bool:
    """`POST /api/accounts/v1/members/{id}/payments` or `.../charges`."""
    if method != "POST" or not path.startswith(_PAYMENT_PREFIX):
        return False
    member, _, action = path[len(_PAYMENT_PREFIX) :].partition("/")
    return bool(member) and action in _PAYMENT_ACTIONS


def client_key(exchange: Exchange) -> str:
    """`member:<sub>` when authenticated, else `ip:<client>`; "" when neither is known."""
    principal = exchange.principal
    if principal is not None:
        return "member:" + principal.subject if principal.subject else ""
    return "ip:" + exchange.client if exchange.client else ""

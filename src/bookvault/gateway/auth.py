"""Authentication and coarse authorisation at the edge.

The gateway turns away what it can decide from the token and the path alone;
the services verify the forwarded `Authorization` header again and make the
fine-grained decisions, so a service reached directly is no weaker.
"""

from __future__ import annotations

from bookvault.auth import PUBLIC_ROLES, AuthError, Principal, TokenCodec
from bookvault.gateway.exchange import Exchange, GatewayProblem, Handler, Reply
from bookvault.gateway.revocations import RevocationList
from bookvault.gateway.routing import Route

__all__ = ["EdgeAuth", "authenticate", "authorise", "member_in_path"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bookvault"'}
_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="bookvault", error="invalid_token"'}
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_RETRY_SOON = {"Retry-After": "1"}
_REVOCATIONS_UNKNOWN = "token revocations cannot be checked right now; try again shortly"
# Paths whose next segment is a member id: only that member (or an admin) may go there.
MEMBER_SCOPED_PREFIXES: tuple[str, ...] = ("/api/accounts/v1/members/", "/api/borrowing/v1/members/")


def authenticate(codec: TokenCodec, authorization: str | None) -> Principal | None:
    """The verified caller, None when anonymous; a bad token is a 401 problem."""
    try:
        principal = codec.verify_header(authorization)
    except AuthError as exc:
        raise GatewayProblem(401, str(exc), headers=_INVALID_TOKEN) from None
    if principal is not None and principal.role not in PUBLIC_ROLES:
        # Internal credentials are for service-to-service calls, never for the edge.
        raise GatewayProblem(403, f"tokens with role {principal.role!r} are not accepted here")
    return principal


def member_in_path(path: str) -> str | None:
    """The member id a member-scoped path is about, or None for other paths."""
    for prefix in MEMBER_SCOPED_PREFIXES:
        if path.startswith(prefix):
            member, _, _ = path[len(prefix) :].partition("/")
            return member or None
    return None


def authorise(route: Route, method: str, path: str, principal: Principal | None) -> None:
    """Refuse, with a 401 or 403 problem, what the edge can already tell is not allowed."""
    if principal is None:
        if route.anonymous_reads and method in _SAFE_METHODS:
            return
        raise GatewayProblem(401, "this request needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if principal.is_privileged:
        return
    member = member_in_path(path)
    if member is not None and not _same_member(member, principal.subject):
        raise GatewayProblem(403, "members may only access their own data")


def _same_member(path_id: str, subject: str) -> bool:
    if path_id == subject:
        return True
    # "007" and "7" are the same member to a service that parses integers.
    return _is_number(path_id) and _is_number(subject) and int(path_id) == int(subject)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


class EdgeAuth:
    """The pipeline stage: sets `exchange.principal` or answers 401/403.

    Revoked tokens are refused by the codec (401). With `revocations` set to fail
    closed, a token is not trusted at all while the revocation list is not current:
    503 with `Retry-After`, since the token may be fine and the caller should retry.
    """

    __slots__ = ("_codec", "_revocations")

    def __init__(self, codec: TokenCodec, revocations: RevocationList | None = None) -> None:
        self._codec = codec
        self._revocations = revocations

    async def __call__(self, exchange: Exchange, call_next: Handler) -> Reply:
        principal = authenticate(self._codec, exchange.head.authorization)
        if principal is not None and self._revocations is not None and self._revocations.unavailable:
            raise GatewayProblem(503, _REVOCATIONS_UNKNOWN, headers=_RETRY_SOON)
        authorise(exchange.route, exchange.method, exchange.path, principal)
        exchange.principal = principal
        return await call_next(exchange)
